"""Checks of lesson 09 (sampling): top-k, top-p with the boundary token kept, one attention step
with the KV cache, perplexity."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_tensor, name_mistake, seeded_randn
from minigpt2.i18n.messages import _
from minigpt2.sampling import top_k_filter, top_p_filter

NEG_INF = float("-inf")


_randn = functools.partial(seeded_randn, scale=2.0)  # logits spread enough for the filters to matter


def _call_without_changing(fn, *args):
    """Call the learner's fn on copies, and fail if it changed its first argument in place."""
    before = args[0].clone()
    got = call(fn, *args)
    if not torch.equal(args[0], before):
        raise CheckFailed(
            _("`{fn_name}` changed the logits it was given, in place: the caller's logits must stay as they were. "
                    "Use masked_fill (which returns a new tensor), not masked_fill_ or an indexed assignment.").format(
                    fn_name=fn.__name__)
        )
    return got


# --------------------------------------------------------------------------- 09.1


def _top_k_mask(logits, k, keep):
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(~keep(logits, kth), NEG_INF)


@exercise("09.1", "Top-k filtering", points=1, name="top_k_filter",
          forbid=("minigpt2.sampling.top_k_filter", "minigpt2.sampling.TopK"))
def check_top_k_filter(top_k_filter_fn):
    cases = [((3, 17), 4), ((2, 5, 30), 1), ((1, 12), 12), ((4, 9), 3)]
    for seed, (shape, k) in enumerate(cases):
        logits = _randn(*shape, seed=seed)
        got = _call_without_changing(top_k_filter_fn, logits.clone(), k)
        smallest = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
        expect_tensor(
            got,
            top_k_filter(logits, k),
            what=_("top_k_filter(logits of shape {shape}, k={k})").format(shape=shape, k=k),
            mistakes=[
                Mistake(top_k_filter(logits, k).softmax(-1), _("you returned probabilities; return the filtered "
                        "LOGITS (the others set to -inf): the softmax comes later, in sampling.")),
                Mistake(_top_k_mask(logits, k, lambda l, kth: l > kth), _("you also removed the k-th largest token: "
                        "keep every logit >= the k-th largest, remove only those strictly below it.")),
                Mistake(logits.masked_fill(logits < torch.topk(logits, k, dim=-1).values[..., -1:], 0.0),
                        _("removed tokens got the logit 0, which still has a probability after the softmax: set them "
                                "to float('-inf').")),
                Mistake(logits.masked_fill(logits > smallest, NEG_INF), _("you kept the k SMALLEST logits: keep the "
                        "k largest (torch.topk returns the largest by default).")),
                Mistake(torch.topk(logits, k, dim=-1).values, _("you returned the k largest values themselves; "
                        "return a tensor of the logits' shape, every other logit set to -inf.")),
            ],
        )
    V = 10
    logits = _randn(2, V, seed=9)
    try:
        got = _call_without_changing(top_k_filter_fn, logits.clone(), 25)
    except CheckFailed as err:
        if err.raised == "IndexError" or (err.raised == "RuntimeError" and "out of range" in str(err)):
            raise CheckFailed(_("top_k_filter(logits of {V} tokens, k=25) raised an error: a k above the vocabulary "
                    "should keep every token. Clamp it: k = min(k, logits.size(-1)).").format(V=V)) from None
        raise
    expect_tensor(got, logits, what=_("top_k_filter(logits of {V} tokens, k=25), which should keep every token").format(
        V=V))


# --------------------------------------------------------------------------- 09.2


def _top_p_variant(logits, p, *, drop_boundary=False, sort=True, descending=True, unsort=True, on_logits=False,
                   fill=NEG_INF):
    """top-p with one mistake switched on."""
    if sort:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=descending)
    else:
        sorted_logits, order = logits, torch.arange(logits.size(-1)).expand_as(logits)
    values = sorted_logits if on_logits else sorted_logits.softmax(-1)
    cumulative = values.cumsum(-1)
    drop_sorted = cumulative > p if drop_boundary else cumulative - values >= p
    if not unsort:
        return sorted_logits.masked_fill(drop_sorted, fill)
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, fill)


@exercise("09.2", "Top-p nucleus filtering", points=2, name="top_p_filter",
          forbid=("minigpt2.sampling.top_p_filter", "minigpt2.sampling.TopP"))
def check_top_p_filter(top_p_filter_fn):
    boundary = torch.tensor([[0.15, 0.5, 0.05, 0.3], [0.3, 0.05, 0.15, 0.5]], dtype=torch.float64).log()
    cases = [(boundary, 0.6), (boundary, 0.9), (_randn(4, 20, seed=1), 0.5), (_randn(2, 3, 15, seed=2), 0.9),
             (_randn(3, 12, seed=3, scale=4.0), 0.3), (_randn(2, 25, seed=4), 0.97)]
    for logits, p in cases:
        got = _call_without_changing(top_p_filter_fn, logits.clone(), p)
        expected = top_p_filter(logits, p)
        mistakes = [
            Mistake(_top_p_variant(logits, p, drop_boundary=True), _("you dropped the boundary token, the one whose "
                    "probability carries the total past p. Keep a token while the tokens BEFORE it have not yet "
                    "reached p: drop where cumsum − its own probability >= p.")),
            Mistake(_top_p_variant(logits, p, unsort=False), _("your result is in sorted order: put the mask back in "
                    "vocabulary order (e.g. drop.scatter(-1, order, drop) with the indices from torch.sort).")),
            Mistake(_top_p_variant(logits, p, descending=False), _("you sorted ascending: the nucleus is made of the "
                    "LIKELIEST tokens. Sort with descending=True.")),
            Mistake(_top_p_variant(logits, p, sort=False), _("you took the cumulative sum in vocabulary order: sort "
                    "the probabilities, largest first, before accumulating them.")),
            Mistake(_top_p_variant(logits, p, on_logits=True), _("you accumulated logits: turn them into "
                    "probabilities with softmax first (the nucleus is about probability mass).")),
            Mistake(_top_p_variant(logits, p, fill=0.0), _("removed tokens got the logit 0, which still has a "
                    "probability after the softmax: set them to float('-inf').")),
            Mistake(expected.softmax(-1), _("you returned probabilities; return the filtered LOGITS (the others set "
                    "to -inf).")),
        ]
        what = _("top_p_filter(logits of shape {logits_shape}, p={p})").format(logits_shape=tuple(logits.shape), p=p)
        if logits is boundary:
            what += _(" on the probabilities [0.15, 0.5, 0.05, 0.3]")
        expect_tensor(got, expected, what=what, mistakes=[m for m in mistakes if not torch.equal(m.output, expected)])


# --------------------------------------------------------------------------- 09.3


def _attend(q, k, v, scale=True, mask_first_only=False, softmax_dim=-1):
    scores = q @ k.transpose(-2, -1)  # (B, n_head, 1, T + 1)
    if scale:
        scores = scores / math.sqrt(q.size(-1))
    if mask_first_only:  # is_causal=True with one query: the mask's top-left corner, key 0 alone
        allowed = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).tril()
        scores = scores.masked_fill(~allowed, NEG_INF)
    return torch.softmax(scores, dim=softmax_dim) @ v


@exercise("09.3", "One attention step with a KV cache", points=2, name="cached_attention_step")
def check_cached_attention_step(cached_attention_step):
    for seed, (B, H, T, d) in enumerate([(1, 2, 5, 4), (2, 3, 1, 8), (3, 1, 9, 6)]):
        k_cache, v_cache = _randn(B, H, T, d, seed=seed, scale=1.0), _randn(B, H, T, d, seed=seed + 10, scale=1.0)
        q, k_new, v_new = (_randn(B, H, 1, d, seed=seed + s, scale=1.0) for s in (20, 30, 40))
        args = (q, k_new, v_new, k_cache, v_cache)
        got = call(cached_attention_step, *(a.clone() for a in args))
        where = _("cached_attention_step with {T} cached positions, q of shape {shape}").format(T=T, shape=(B, H, 1, d))
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailed(_("{where} should return a tuple (y, k_all, v_all), got {got_type}.").format(
                where=where, got_type=type(got).__name__))
        y, k_all, v_all = got
        k_ref, v_ref = torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)  # (B, H, T + 1, d)
        expect_tensor(k_all, k_ref, what=f"k_all ({where})", mistakes=[
            Mistake(torch.cat([k_new, k_cache], dim=2), _("the new key went in FRONT of the cache: positions stay in "
                    "order, the newest last. torch.cat([k_cache, k_new], dim=2).")),
            Mistake(k_cache, _("k_all is the old cache: append the new token's key, torch.cat([k_cache, k_new], "
                    "dim=2).")),
        ])
        expect_tensor(v_all, v_ref, what=f"v_all ({where})", mistakes=[
            Mistake(torch.cat([v_new, v_cache], dim=2), _("the new value went in FRONT of the cache: "
                    "torch.cat([v_cache, v_new], dim=2).")),
        ])
        expect_tensor(y, _attend(q, k_ref, v_ref), what=f"y ({where})", mistakes=[
            Mistake(_attend(q, k_cache, v_cache), _("the new token attended only to the cached tokens: it must see "
                    "itself too. Attend to the keys and values AFTER appending k_new and v_new.")),
            Mistake(_attend(q, k_ref, v_ref, mask_first_only=True), _("your mask lets the new token see only the "
                    "first key. With one query and T + 1 keys, is_causal=True (or tril of a (1, T + 1) mask) keeps "
                    "just key 0: the new token is the LAST position and may see every key, so use no mask.")),
            Mistake(_attend(q, k_ref, v_ref, scale=False), _("missing √d: divide the scores by √head_dim, "
                    "math.sqrt(q.size(-1)).")),
            Mistake(_attend(q, k_ref, v_ref, softmax_dim=-2), _("softmax over the wrong axis: normalise over the "
                    "keys, the last axis (dim=-1).")),
        ])


# --------------------------------------------------------------------------- 09.4


@exercise("09.4", "Perplexity from logits", points=1, name="perplexity_from_logits")
def check_perplexity_from_logits(perplexity_from_logits):
    cases = [(_randn(2, 9, 37, seed=0), 0), (_randn(1, 20, 11, seed=1, scale=4.0), 1), (torch.zeros(3, 5, 50), 2)]
    for logits, seed in cases:
        B, T, V = logits.shape
        targets = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
        nll = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none")  # (B*T,)
        expected = nll.mean().exp().item()
        got = call(perplexity_from_logits, logits.clone(), targets.clone())
        what = _("perplexity_from_logits(logits of shape {logits_shape}, targets of shape {targets_shape})").format(
            logits_shape=(B, T, V), targets_shape=(B, T))
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            raise CheckFailed(_("{what} should return one number (a float), got {got_type}.").format(
                what=what, got_type=type(got).__name__))
        if math.isclose(got, expected, rel_tol=1e-6):
            continue
        shifted = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1)).exp().item()
        name_mistake(got, [
            Mistake(nll.mean().item(), _("that is the mean loss (cross-entropy, in nats); perplexity is its "
                    "exponential: math.exp(loss).")),
            Mistake(2 ** nll.mean().item(), _("2 ** loss mixes bases: F.cross_entropy uses natural logarithms, so "
                    "the perplexity is e ** loss.")),
            Mistake(nll.exp().mean().item(), _("you averaged exp(loss) token by token; perplexity is the exponential "
                    "of the MEAN loss.")),
            Mistake(nll.sum().exp().item(), _("exp of the SUMMED loss grows with the length of the text: average the "
                    "loss over the tokens first.")),
            Mistake(shifted, _("logits[b, t] already scores targets[b, t]: do not shift them again.")),
        ], atol=0.0, rtol=1e-6)
        hint = (_(" (all logits equal: the uniform distribution over {V} tokens)").format(V=V)
                if not logits.any() else "")
        raise CheckFailed(_("{what} is {got:.6g}, but it should be {expected:.6g}{hint}.").format(
            what=what, got=got, expected=expected, hint=hint))
