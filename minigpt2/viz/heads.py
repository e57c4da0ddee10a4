"""Numbers that describe what a head does: its entropy, and scores for common patterns.

All functions take causal attention weights ``(..., T, T)`` (rows are queries, each
row sums to 1) — one head, a layer's ``(n_head, T, T)``, or a list over layers, which
is stacked into ``(n_layer, ..., T, T)`` — and return one number per head.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from minigpt2.viz.heatmap import to_numpy


def as_tensor(weights) -> torch.Tensor:
    """Weights ``(..., T, T)`` as a float64 CPU tensor; a list over layers is stacked
    along a new first dimension."""
    if isinstance(weights, (list, tuple)):
        weights = np.stack([to_numpy(w) for w in weights])
    w = torch.from_numpy(to_numpy(weights))
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"attention weights must have shape (..., T, T); got {tuple(w.shape)}")
    return w


def attention_entropy(weights) -> torch.Tensor:
    """Mean entropy (in nats) of each head's attention rows: ``(..., T, T) -> (...)``.

    Row ``i`` is a distribution over the keys ``0…i``; its entropy is
    ``-Σ_j p_ij log p_ij`` (0 log 0 = 0), between 0 (all weight on one key) and
    ``log(i + 1)`` (spread evenly). The result averages the rows, row 0 included
    (it always has entropy 0). Low: a focused head; high: a head that averages.
    """
    w = as_tensor(weights)
    return -torch.special.xlogy(w, w).sum(-1).mean(-1)


def _after_first(diagonal: torch.Tensor) -> torch.Tensor:
    return diagonal[..., 1:].mean(-1)


def head_scores(weights, ids: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Pattern scores per head, each ``(..., T, T) -> (...)`` in ``[0, 1]``, averaged over
    the queries ``1…T-1`` (query 0 can only look at itself, so it tells nothing):

    - ``"previous_token"``: mean weight on the key just before the query (diagonal offset −1);
    - ``"first_token"``: mean weight on key 0 (a resting place many heads use);
    - ``"current_token"``: mean weight on the query's own position (the diagonal).

    With the token ``ids`` of the text (length T), two more, averaged over the queries
    whose token occurred before (NaN when no token repeats):

    - ``"duplicate_token"``: weight on earlier positions holding the same token;
    - ``"induction"``: weight on the position right after an earlier copy of the token
      (for "A B … A" the second A looks at B), the pattern that lets a model continue
      a sequence it has seen.
    """
    w = as_tensor(weights)
    T = w.shape[-1]
    if T < 2:
        raise ValueError("head scores need at least 2 positions (T >= 2)")
    scores = {
        "previous_token": torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).mean(-1),
        "first_token": _after_first(w[..., :, 0]),
        "current_token": _after_first(torch.diagonal(w, dim1=-2, dim2=-1)),
    }
    if ids is not None:
        ids_t = torch.as_tensor(list(ids))
        if ids_t.shape != (T,):
            raise ValueError(f"ids must hold one token id per position: {T} ids, got {tuple(ids_t.shape)}")
        earlier = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)  # key j < query i
        same = (ids_t[:, None] == ids_t[None, :]) & earlier  # (T, T): ids[j] == ids[i], j < i
        scores["duplicate_token"] = _mean_over_rows(w, same)
        after_copy = torch.zeros(T, T, dtype=torch.bool)
        after_copy[:, 1:] = same[:, :-1]  # key j+1 where ids[j] == ids[i]
        after_copy &= earlier  # j+1 < i: the copy's successor, not the query itself
        scores["induction"] = _mean_over_rows(w, after_copy)
    return scores


def _mean_over_rows(w: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Weight on ``cells (T, T)`` summed per row, averaged over the rows that have any."""
    rows = cells.any(-1)  # (T,)
    per_row = (w * cells).sum(-1)  # (..., T)
    return per_row[..., rows].mean(-1)  # NaN when no row qualifies


def top_heads(score: torch.Tensor, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` highest-scoring heads of a ``(n_layer, n_head)`` score, as
    ``(layer, head, score)``, best first; NaN scores are skipped."""
    score = torch.as_tensor(score)
    if score.ndim != 2:
        raise ValueError(f"top_heads takes a (n_layer, n_head) score; got shape {tuple(score.shape)}")
    flat = score.flatten()
    order = [i for i in torch.argsort(flat, descending=True, stable=True).tolist() if not torch.isnan(flat[i])]
    n_head = score.shape[1]
    return [(i // n_head, i % n_head, float(flat[i])) for i in order[:k]]
