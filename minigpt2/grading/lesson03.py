"""Checks of lesson 03 (attention): scores, the causal mask, the masked softmax, one head."""

from __future__ import annotations

import math

import torch

from minigpt2.attention import causal_mask, scaled_dot_product_attention
from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_tensor, seeded_randn
from minigpt2.i18n.messages import _

NEG_INF = float("-inf")
# the package's finished attention (and PyTorch's): lesson 03 builds it, piece by piece
PACKAGE_ATTENTION = ("minigpt2.attention.causal_mask", "minigpt2.attention.attention_weights",
                     "minigpt2.attention.scaled_dot_product_attention", "minigpt2.attention.CausalSelfAttention",
                     "torch.nn.functional.scaled_dot_product_attention",
                     "torch.nn.functional.multi_head_attention_forward")


# --------------------------------------------------------------------------- 03.1


@exercise("03.1", "Scaled attention scores", points=1, name="attention_scores", forbid=PACKAGE_ATTENTION)
def check_attention_scores(attention_scores):
    # (q shape, k shape): one sequence, a batch, batch and heads with fewer queries than keys
    cases = [((5, 8), (5, 8)), ((2, 7, 16), (2, 7, 16)), ((2, 3, 4, 6), (2, 3, 9, 6))]
    for seed, (q_shape, k_shape) in enumerate(cases):
        q, k = seeded_randn(*q_shape, seed=seed), seeded_randn(*k_shape, seed=seed + 10)
        d, T = q.size(-1), q.size(-2)
        raw = q @ k.transpose(-2, -1)  # (..., T_q, T_k)
        got = call(attention_scores, q.clone(), k.clone())
        expect_tensor(
            got,
            raw / math.sqrt(d),
            what=_("attention_scores(q of shape {q_shape}, k of shape {k_shape})").format(
                q_shape=q_shape, k_shape=k_shape),
            mistakes=[
                Mistake(raw, _("missing √d: you return q·kᵀ unscaled. Divide by math.sqrt(d), d = q.size(-1), so the "
                        "scores keep unit variance and the softmax does not saturate.")),
                Mistake(raw / d, _("you divided by d; divide by √d (math.sqrt(d)) instead.")),
                Mistake(raw * math.sqrt(d), _("you multiplied by √d; divide by it.")),
                Mistake(raw / math.sqrt(T), _("you divided by √T, the sequence length; the scale is √d, the size of "
                        "each query vector (q.size(-1)).")),
                Mistake(k @ q.transpose(-2, -1) / math.sqrt(d), _("your scores are transposed (k·qᵀ): row i must be "
                        "query i and column j key j, so compute q @ k.transpose(-2, -1).")),
            ],
        )


# --------------------------------------------------------------------------- 03.2


@exercise("03.2", "The causal mask", points=1, name="make_causal_mask", forbid=PACKAGE_ATTENTION)
def check_make_causal_mask(make_causal_mask):
    for T in (4, 7, 1):  # T = 1 last: there the mistakes look alike
        expected = causal_mask(T)
        got = call(make_causal_mask, T)
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(_("make_causal_mask({T}) should return a torch.Tensor, but it returns a "
                                "{got_type}.").format(T=T, got_type=type(got).__name__))
        zeros_and_ones = got.dtype != torch.bool and torch.isin(got, torch.tensor([0, 1], dtype=got.dtype)).all()
        as_bool = got.bool() if zeros_and_ones else got
        expect_tensor(
            as_bool,
            expected,
            what=f"make_causal_mask({T})",
            mistakes=[
                Mistake(expected.T, _("your mask is transposed: row i (the query) must allow columns 0…i (the keys "
                        "before it), i.e. True on and BELOW the diagonal — torch.tril, not torch.triu.")),
                Mistake(~expected, _("your mask is inverted: it is True where attending is forbidden. The convention "
                        "here (and PyTorch's) is True = may attend.")),
                Mistake(torch.ones(T, T, dtype=torch.bool).tril(-1), _("your mask leaves out the diagonal: a "
                        "position may attend to itself (position 0 has nothing else to attend to).")),
                Mistake(torch.ones(T, T, dtype=torch.bool), _("your mask allows everything: positions must not see "
                        "the keys after them.")),
            ],
        )
        if got.dtype != torch.bool:
            raise CheckFailed(_("make_causal_mask({T}) has the right pattern but dtype {got_dtype}; return a bool "
                    "tensor (dtype=torch.bool, or .bool()): True = may attend.").format(T=T, got_dtype=got.dtype))


# --------------------------------------------------------------------------- 03.3


def _softmax_masked(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, NEG_INF), dim=-1)


@exercise("03.3", "Masked softmax", points=2, name="masked_softmax", forbid=PACKAGE_ATTENTION)
def check_masked_softmax(masked_softmax):
    for seed, lead in enumerate([(), (3,), (2, 4)]):
        T = 5 + seed
        scores = seeded_randn(*lead, T, T, seed=seed) * 2
        mask = causal_mask(T)
        what = _("masked_softmax(scores of shape {scores_shape}, causal_mask({T}))").format(
            scores_shape=tuple(scores.shape), T=T)
        got = call(masked_softmax, scores.clone(), mask.clone())
        inverted = torch.softmax(scores.masked_fill(mask, NEG_INF), dim=-1)
        if (isinstance(got, torch.Tensor) and got.shape == inverted.shape
                and torch.allclose(got, inverted, equal_nan=True)):
            raise CheckFailed(_("you filled -inf where the mask is True; True means 'may attend', so fill where it "
                    "is False: scores.masked_fill(~mask, float('-inf')). (The last row came out all NaN: every key "
                    "of it was masked.)"))
        expect_tensor(
            got,
            _softmax_masked(scores, mask),
            what=what,
            mistakes=[
                Mistake(torch.softmax(scores * mask, dim=-1) * mask, _("you masked by multiplying: scores * mask "
                        "makes the future's scores 0, not -inf, and a score of 0 still takes weight e⁰ = 1 in the "
                        "softmax's sum; multiplying the weights by the mask afterwards then leaves rows that do "
                        "not sum to 1. Use scores.masked_fill(~mask, float('-inf')) before the softmax.")),
                Mistake(torch.softmax(scores, dim=-1) * mask, _("mask applied after softmax: zeroing weights after "
                        "the softmax leaves rows that do not sum to 1, and the future still leaks in through the "
                        "softmax's denominator. Set the masked scores to -inf BEFORE the softmax.")),
                Mistake(torch.softmax(scores.masked_fill(~mask, NEG_INF), dim=-2), _("softmax over the wrong axis: "
                        "each query's weights (a row, the LAST axis) must sum to 1; use dim=-1.")),
                Mistake(torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1), _("you filled the masked scores with "
                        "0; a score of 0 still gets weight e⁰ = 1 in the softmax. Fill with float('-inf').")),
                Mistake(_softmax_masked(scores, mask.T), _("transposed mask: your weights let each query see the "
                        "keys AFTER it. Row i (query) may see columns 0…i.")),
                Mistake(torch.softmax(scores, dim=-1), _("the mask is not applied: positions attend to the future.")),
            ],
        )


# --------------------------------------------------------------------------- 03.4


@exercise("03.4", "One causal attention head", points=2, name="causal_attention", forbid=PACKAGE_ATTENTION)
def check_causal_attention(causal_attention):
    for seed, (lead, T, d) in enumerate([((), 6, 8), ((2,), 7, 16), ((2, 3), 5, 4)]):
        q, k, v = (seeded_randn(*lead, T, d, seed=3 * seed + i) for i in range(3))
        what = _("causal_attention on q, k, v of shape {q_shape}").format(q_shape=tuple(q.shape))
        got = call(causal_attention, q.clone(), k.clone(), v.clone())
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(_("{what} should return a pair (out, weights); it returns {got_type}").format(
                what=what, got_type=type(got).__name__)
                              + (_(" of length {n_got}").format(n_got=len(got))
                                 if isinstance(got, (tuple, list)) else "") + ".")
        out, weights = got
        mask = causal_mask(T)
        raw = q @ k.transpose(-2, -1)  # (..., T, T)
        scaled = raw / math.sqrt(d)
        ref_out, ref_weights = scaled_dot_product_attention(q, k, v, mask)

        def mistakes(pick):  # the same mistakes, seen in the weights (pick=0) or the output (pick=1)
            def both(weights_):
                return (weights_, weights_ @ v)[pick]

            return [
                Mistake(both(_softmax_masked(raw, mask)), _("missing √d: divide the scores by math.sqrt(d) before "
                        "the softmax.")),
                Mistake(both(torch.softmax(scaled * mask, dim=-1) * mask), _("you masked by multiplying (softmax(s * "
                        "mask) * mask): a score of 0 still takes weight in the softmax, so the rows do not sum to "
                        "1. Set the future's scores to -inf before the softmax: masked_fill(~mask, float('-inf')).")),
                Mistake(both(torch.softmax(scaled, dim=-1) * mask), _("mask applied after softmax: set the future's "
                        "scores to -inf before the softmax, so every row sums to 1 and no future score leaks in.")),
                Mistake(both(torch.softmax(scaled.masked_fill(~mask, NEG_INF), dim=-2)), _("softmax over the wrong "
                        "axis: normalise each query's row of scores, dim=-1.")),
                Mistake(both(_softmax_masked(scaled, mask.T)), _("transposed mask: queries attend to the keys after "
                        "them. Keep the lower triangle (torch.tril): row i may see columns 0…i.")),
                Mistake(both(torch.softmax(scaled, dim=-1)),
                        _("no causal mask: every position attends to the future.")),
            ]

        expect_tensor(weights, ref_weights, what=_("the weights of {what}").format(what=what), mistakes=mistakes(0))
        expect_tensor(out, ref_out, what=_("the output of {what}").format(what=what), mistakes=mistakes(1))
