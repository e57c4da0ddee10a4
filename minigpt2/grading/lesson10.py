"""Checks of lesson 10 (the attention explorer): numbers that say what a head does.

Every check runs on weights built here — random causal attention with a few heads
planted to do one thing (look at the previous token, at the first token, at the
token after an earlier copy) — so no exercise needs a trained model.
"""

from __future__ import annotations

import math

import torch

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor
from minigpt2.i18n.messages import _
from minigpt2.viz import head_scores

# the explorer's own head scores
PACKAGE_HEADS = ("minigpt2.viz.heads.attention_entropy", "minigpt2.viz.heads.head_scores")


def random_causal(n_head: int, T: int, seed: int, sharpness: float = 1.5) -> torch.Tensor:
    """Causal attention weights ``(n_head, T, T)`` in float64: each row a softmax over keys 0…i,
    the future cells exactly 0 (as a real model's are)."""
    g = torch.Generator().manual_seed(seed)
    scores = sharpness * torch.randn(n_head, T, T, generator=g, dtype=torch.float64)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def planted(T: int, keys_of_query, strength: float, seed: int) -> torch.Tensor:
    """One head ``(T, T)``: ``strength`` of each query's weight spread over ``keys_of_query(i)``
    (a list of allowed keys, possibly empty), the rest random causal attention."""
    noise = random_causal(1, T, seed)[0]
    w = noise.clone()
    for i in range(T):
        keys = [j for j in keys_of_query(i) if 0 <= j <= i]
        if keys:
            w[i] = (1 - strength) * noise[i]
            w[i, keys] += strength / len(keys)
    return w


# --------------------------------------------------------------------------- 10.1


def _entropy_cases():
    """(weights (n_head, T, T), what): random heads of different sharpness, a one-hot head
    (entropy 0) and an even head (entropy log(i+1) per row)."""
    cases = []
    for seed, (n_head, T) in enumerate([(3, 5), (4, 8), (2, 11)]):
        w = random_causal(n_head, T, seed, sharpness=0.5 + seed)
        w[0] = torch.eye(T, dtype=torch.float64)  # each query looks only at itself: entropy 0
        w[-1] = torch.ones(T, T, dtype=torch.float64).tril()
        w[-1] /= w[-1].sum(-1, keepdim=True)  # even over keys 0…i
        cases.append((w, _("head_entropy(weights of shape {shape})").format(shape=(n_head, T, T))))
    return cases


@exercise("10.1", "Attention entropy per head", points=2, name="head_entropy", forbid=PACKAGE_HEADS)
def check_head_entropy(head_entropy):
    for w, what in _entropy_cases():
        n_head, T = w.shape[:2]
        plogp = torch.special.xlogy(w, w)  # (n_head, T, T), 0 where p = 0
        expected = -plogp.sum(-1).mean(-1)  # (n_head,)
        got = call(head_entropy, w.clone())
        if isinstance(got, torch.Tensor) and got.is_floating_point() and torch.isnan(got).any():
            raise CheckFailed(
                _("{what} contains NaN. The masked cells (keys after the query) hold exactly 0, and 0 · log 0 = 0 · "
                        "(−inf) = NaN in floating point. An entropy counts them as 0 (the limit of p·log p as p → "
                        "0): use torch.special.xlogy(p, p), or take the log only where p > 0.").format(what=what)
            )
        expect_tensor(
            got,
            expected,
            what=what,
            mistakes=[
                Mistake(expected / math.log(2), _("your entropy is in bits (log2): this lesson measures it in nats, "
                        "with the natural log (torch.log), so that an even spread over n keys gives ln n.")),
                Mistake(expected / math.log(10), _("you used log10: use the natural log (torch.log), nats.")),
                Mistake(-expected, _("your entropies are negative: the entropy is −Σ p·log p (log p ≤ 0, so the "
                        "minus sign makes it positive).")),
                Mistake(expected / T, _("you averaged p·log p over the keys: the entropy of one row is the SUM over "
                        "its keys, −Σ_j p_ij log p_ij; only then average the rows.")),
                Mistake(expected * T, _("you summed the rows' entropies: average them (mean over the T queries).")),
                Mistake(expected * T / (T - 1), _("you left out query 0: average over all T rows (row 0 is one-hot, "
                        "entropy 0, and counts like the others).")),
                Mistake(-plogp.sum(-1).mean(0), _("you averaged over the heads (dim 0) instead of over the queries: "
                        "the result should hold one number per head, shape (n_head,).")),
            ],
        )


# --------------------------------------------------------------------------- 10.2


SINK = "sink"  # a planted head that looks only at the first token (token 1 at itself): no previous-token weight


def _layers_with_heads(n_layer: int, n_head: int, T: int, plant: dict, seed: int) -> list[torch.Tensor]:
    """n_layer random causal layers ``(n_head, T, T)``; ``plant`` maps (layer, head) to what that head
    does: a diagonal offset d ≤ 0 it looks at (0: the query itself, −1: the previous token, …) or SINK."""
    layers = [random_causal(n_head, T, seed + 10 * layer) for layer in range(n_layer)]
    for (layer, head), does in plant.items():
        if does == SINK:
            layers[layer][head] = planted(T, lambda i: [0 if i != 1 else 1], 1.0, seed)
        else:
            layers[layer][head] = planted(T, lambda i, d=does: [i + d], 0.75, seed + 100 * layer + head)
    return layers


def previous_token_reference(layers: list[torch.Tensor], offset: int = -1) -> torch.Tensor:
    """``(n_layer, n_head)``: each head's mean weight on the key ``offset`` away from the query."""
    stacked = torch.stack(layers)  # (n_layer, n_head, T, T)
    return torch.diagonal(stacked, offset=offset, dim1=-2, dim2=-1).mean(-1)


def _as_pair(got, what: str, n_layer: int, n_head: int):
    """``got`` as a (layer, head) pair of ints, or a message saying what it should be."""
    if isinstance(got, torch.Tensor) and got.numel() > 1:
        raise CheckFailed(_("{what} returned a tensor of shape {got_shape}: return the winner as a pair (layer, "
                "head) of ints, e.g. (1, 2), not the scores.").format(what=what, got_shape=tuple(got.shape)))
    if isinstance(got, (tuple, list)) and len(got) == 2:
        try:
            return tuple(int(x) for x in got)
        except (TypeError, ValueError):
            raise CheckFailed(_("{what} should return two ints (layer, head); got {got!r}.").format(
                what=what, got=got)) from None
    if isinstance(got, int) or (isinstance(got, torch.Tensor) and got.numel() == 1):
        return int(got)  # a flat index: named below
    raise CheckFailed(_("{what} should return a pair (layer, head); got a {got_type}: {got!r:.80}").format(
        what=what, got_type=type(got).__name__, got=got))


@exercise("10.2", "Find the previous-token head", points=2, name="previous_token_head", forbid=PACKAGE_HEADS)
def check_previous_token_head(previous_token_head):
    # (n_layer, n_head, T, planted heads); n_layer != n_head, nothing at (0, 0), and every mistake
    # below gives a different (layer, head), so that each is named as itself
    cases = [
        (2, 3, 9, {(0, 2): -1, (1, 1): 0, (1, 2): -2, (0, 1): SINK}),
        (3, 4, 12, {(2, 1): -1, (1, 3): 0, (0, 2): -2, (1, 0): SINK}),
        (4, 2, 7, {(1, 0): -1, (3, 1): 0, (2, 0): -2, (2, 1): SINK}),
    ]
    for seed, (n_layer, n_head, T, plant) in enumerate(cases):
        layers = _layers_with_heads(n_layer, n_head, T, plant, seed)
        what = _("previous_token_head({n_layer} layers of shape {shape})").format(n_layer=n_layer, shape=(n_head, T, T))
        score = previous_token_reference(layers)  # (n_layer, n_head)
        flat = int(score.argmax())
        expected = divmod(flat, n_head)
        got = _as_pair(call(previous_token_head, [w.clone() for w in layers]), what, n_layer, n_head)

        def at(offset):
            return divmod(int(previous_token_reference(layers, offset).argmax()), n_head)

        layer, head = expected
        mistakes = [
            Mistake(flat, _("you returned the flat index of the best head: turn it into a pair with divmod(index, "
                    "n_head) → (layer, head).")),
            Mistake(at(0), _("you found the head that looks at the CURRENT token (the main diagonal, offset 0): the "
                    "previous token of query i is key i − 1, the diagonal just below (offset=-1).")),
            Mistake(at(-2), _("you found the head that looks two tokens back (offset −2): the previous token is one "
                    "back, offset=-1.")),
            Mistake((0, 0), _("every head scored the same (you returned the first head): offset=+1 is the key AFTER "
                    "the query, which the causal mask always hides. The previous token is offset=-1.")),
            Mistake((head, layer), _("you returned (head, layer): return (layer, head).")),
            Mistake(divmod(flat, n_layer), _("you split the flat index with n_layer: index = layer · n_head + head, "
                    "so (layer, head) = divmod(index, n_head).")),
            Mistake(divmod(int(score.argmin()), n_head), _("you found the head that looks LEAST at the previous "
                    "token: take the argmax of the scores, not the argmin.")),
        ]
        expect_equal(got, expected, what=what, mistakes=[m for m in mistakes if m.output != expected])


# --------------------------------------------------------------------------- 10.3


def _sink_cases():
    cases = []
    for seed, (n_head, T) in enumerate([(3, 6), (4, 9), (2, 3)]):
        w = random_causal(n_head, T, seed + 20)
        w[1] = planted(T, lambda i: [0], 0.8, seed + 30)  # an attention sink
        cases.append((w, _("first_token_score(weights of shape {shape})").format(shape=(n_head, T, T))))
    return cases


@exercise("10.3", "An attention-sink score", points=1, name="first_token_score", forbid=PACKAGE_HEADS)
def check_first_token_score(first_token_score):
    for w, what in _sink_cases():
        expected = w[:, 1:, 0].mean(-1)  # (n_head,): queries 1…T-1 on key 0
        got = call(first_token_score, w.clone())
        expect_tensor(
            got,
            expected,
            what=what,
            mistakes=[
                Mistake(w[:, :, 0].mean(-1), _("you included query 0: it can only attend to itself, so its weight on "
                        "the first token is always 1 and says nothing about the head. Average over queries 1…T−1: "
                        "weights[:, 1:, 0].")),
                Mistake(w[:, 0, :].mean(-1), _("you read ROW 0 (where the first token looks) instead of COLUMN 0 "
                        "(how much each later query looks at the first token): weights[:, 1:, 0].")),
                Mistake(w[:, 0, 1:].mean(-1), _("you read row 0 instead of column 0: weights[:, 1:, 0] is the weight "
                        "each query 1…T−1 puts on key 0.")),
                Mistake(w[:, 1:, -1].mean(-1), _("you read the LAST column: the first token is key 0, weights[:, 1:, "
                        "0].")),
                Mistake(w[:, 1:, 0].sum(-1), _("you summed over the queries: take the mean, so that heads compare "
                        "across texts of different lengths (the score is then between 0 and 1).")),
                Mistake(w[:, 1:, 0].mean(0), _("you averaged over the heads (dim 0): the result should hold one "
                        "number per head, shape (n_head,).")),
            ],
        )


# --------------------------------------------------------------------------- 10.4

# Token ids with repeats: a phrase three times (several earlier copies), a prefix before the
# repeat, and adjacent duplicates (an earlier copy right before the query).
INDUCTION_IDS = [
    [5, 9, 2, 7, 5, 9, 2, 7, 5, 9, 2, 7],
    [11, 4, 6, 2, 8, 4, 6, 2, 8],
    [3, 3, 8, 1, 3, 3, 8, 1, 6],
]


def _induction_variant(w, ids, shift=1, all_rows=False, allow_self=False, latest_only=False):
    """The induction score with one mistake switched on: ``shift`` 0 looks at the copy itself,
    −1 at the token before it; ``all_rows`` averages every query; ``allow_self`` lets the
    successor be the query itself; ``latest_only`` follows only the most recent copy."""
    T = w.shape[-1]
    cells = torch.zeros(T, T, dtype=torch.bool)  # (query, key) pairs that count
    for i in range(T):
        copies = [j for j in range(i) if ids[j] == ids[i] and (0 <= j + shift < i or (allow_self and j + shift == i))]
        for j in copies[-1:] if latest_only else copies:
            cells[i, j + shift] = True
    rows = torch.ones(T, dtype=torch.bool) if all_rows else cells.any(-1)
    return (w * cells).sum(-1)[..., rows].mean(-1)


def _induction_cases():
    cases = []
    for seed, ids in enumerate(INDUCTION_IDS):
        T = len(ids)
        w = random_causal(4, T, seed + 40)

        def copies(i):  # earlier positions holding the token of query i
            return [j for j in range(i) if ids[j] == ids[i]]

        w[1] = planted(T, lambda i: [j + 1 for j in copies(i)], 0.8, seed + 50)  # an induction head
        w[2] = planted(T, copies, 0.8, seed + 60)  # a duplicate-token head
        cases.append((w, ids, _("induction_score(weights of shape {shape}, ids={ids})").format(
            shape=(4, T, T), ids=ids)))
    return cases


@exercise("10.4", "An induction score", points=3, name="induction_score", forbid=PACKAGE_HEADS)
def check_induction_score(induction_score):
    for w, ids, what in _induction_cases():
        expected = head_scores(w, ids)["induction"]  # (n_head,)
        got = call(induction_score, w.clone(), list(ids))
        expect_tensor(
            got,
            expected,
            what=what,
            mistakes=[
                Mistake(_induction_variant(w, ids, shift=0), _("you measured the weight on the earlier COPY of the "
                        "token (a duplicate-token head). An induction head looks one step further: at the token "
                        "that FOLLOWED the copy (key j + 1 where ids[j] == ids[i]) — the one it predicts comes "
                        "next.")),
                Mistake(_induction_variant(w, ids, shift=-1), _("you looked at the token BEFORE the earlier copy (j "
                        "− 1): induction looks at the token after it, key j + 1.")),
                Mistake(_induction_variant(w, ids, all_rows=True), _("you averaged over every query: only the "
                        "queries whose token appeared before have an earlier copy to follow, so average over those.")),
                Mistake(_induction_variant(w, ids, allow_self=True), _("you counted the query itself: when the copy "
                        "is right before the query (ids 'A A'), key j + 1 IS the query. Count only keys before it "
                        "(j + 1 < i).")),
                Mistake(_induction_variant(w, ids, latest_only=True), _("you followed only the most recent copy: add "
                        "the weight on the successor of EVERY earlier copy of the token.")),
            ],
        )


__all__ = ["random_causal", "planted", "previous_token_reference"]
