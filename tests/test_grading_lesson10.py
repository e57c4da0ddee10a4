"""Lesson 10's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch

from minigpt2.grading.core import grade_namespace
from minigpt2.grading.lesson10 import planted, random_causal
from minigpt2.viz import attention_entropy, head_scores

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)


def head_entropy(weights, base=math.e, keep_nan=False, drop_first_row=False, over=-1):
    """Entropy per head with one mistake switched on."""
    plogp = weights * torch.log(weights) if keep_nan else torch.special.xlogy(weights, weights)  # (n_head, T, T)
    per_row = -plogp.sum(-1) / math.log(base)  # (n_head, T)
    if drop_first_row:
        per_row = per_row[:, 1:]
    return per_row.mean(over)


def previous_token_head(layers, offset=-1, order="layer, head", divisor=None, pick=torch.argmax):
    """The head with the most weight on the key ``offset`` away, with one mistake switched on."""
    score = torch.stack([torch.diagonal(w, offset=offset, dim1=-2, dim2=-1).mean(-1) for w in layers])
    flat = int(pick(score))
    if order == "flat":
        return flat
    layer, head = divmod(flat, divisor or score.shape[1])
    return (layer, head) if order == "layer, head" else (head, layer)


def first_token_score(weights):
    return weights[:, 1:, 0].mean(-1)


def induction_score(weights, ids, shift=1, all_rows=False):
    """For each query, the weight on the tokens that followed earlier copies of its token (keys before
    the query), averaged over the queries that have such a key."""
    T = weights.shape[-1]
    totals = []
    for i in range(T):
        keys = [j + shift for j in range(i) if ids[j] == ids[i] and 0 <= j + shift < i]
        if keys or all_rows:
            totals.append(weights[:, i, keys].sum(-1))
    return torch.stack(totals, -1).mean(-1)


def solution_namespace():
    return {"head_entropy": head_entropy, "previous_token_head": previous_token_head,
            "first_token_score": first_token_score, "induction_score": induction_score}


MUTANTS = [
    ("10.1", lambda w: head_entropy(w, keep_nan=True), "0 · log 0"),
    ("10.1", lambda w: head_entropy(w, base=2), "in bits (log2)"),
    ("10.1", lambda w: head_entropy(w, base=10), "log10"),
    ("10.1", lambda w: -head_entropy(w), "negative"),
    ("10.1", lambda w: -torch.special.xlogy(w, w).mean(-1).mean(-1), "SUM over its keys"),
    ("10.1", lambda w: -torch.special.xlogy(w, w).sum(-1).sum(-1), "summed the rows"),
    ("10.1", lambda w: head_entropy(w, drop_first_row=True), "left out query 0"),
    ("10.1", lambda w: head_entropy(w, over=0), "averaged over the heads"),
    ("10.1", lambda w: head_entropy(w).tolist(), "should be a torch.Tensor"),
    ("10.2", lambda layers: previous_token_head(layers, offset=0), "CURRENT token"),
    ("10.2", lambda layers: previous_token_head(layers, offset=-2), "two tokens back"),
    ("10.2", lambda layers: previous_token_head(layers, offset=1), "offset=+1"),
    ("10.2", lambda layers: previous_token_head(layers, order="head, layer"), "(head, layer)"),
    ("10.2", lambda layers: previous_token_head(layers, order="flat"), "flat index"),
    ("10.2", lambda layers: previous_token_head(layers, divisor=len(layers)), "with n_layer"),
    ("10.2", lambda layers: previous_token_head(layers, pick=torch.argmin), "argmin"),
    ("10.2", lambda layers: torch.stack([w.diagonal(-1, -2, -1).mean(-1) for w in layers]), "not the scores"),
    ("10.3", lambda w: w[:, :, 0].mean(-1), "included query 0"),
    ("10.3", lambda w: w[:, 0, :].mean(-1), "ROW 0"),
    ("10.3", lambda w: w[:, 0, 1:].mean(-1), "row 0 instead of column 0"),
    ("10.3", lambda w: w[:, 1:, -1].mean(-1), "LAST column"),
    ("10.3", lambda w: w[:, 1:, 0].sum(-1), "summed over the queries"),
    ("10.3", lambda w: w[:, 1:, 0].mean(0), "averaged over the heads"),
    ("10.4", lambda w, ids: head_scores(w, ids)["duplicate_token"], "duplicate-token head"),
    ("10.4", lambda w, ids: induction_score(w, ids, shift=0), "duplicate-token head"),
    ("10.4", lambda w, ids: induction_score(w, ids, shift=-1), "BEFORE the earlier copy"),
    ("10.4", lambda w, ids: induction_score(w, ids, all_rows=True), "averaged over every query"),
    ("10.4", lambda w, ids: induction_score_with_self(w, ids), "counted the query itself"),
    ("10.4", lambda w, ids: induction_score_latest(w, ids), "most recent copy"),
]


def induction_score_with_self(weights, ids):
    """Lets the successor of a copy right before the query be the query itself."""
    T = weights.shape[-1]
    totals = []
    for i in range(T):
        keys = [j + 1 for j in range(i) if ids[j] == ids[i]]
        if keys:
            totals.append(weights[:, i, keys].sum(-1))
    return torch.stack(totals, -1).mean(-1)


def induction_score_latest(weights, ids):
    """Follows only the most recent earlier copy."""
    T = weights.shape[-1]
    totals = []
    for i in range(T):
        copies = [j for j in range(i) if ids[j] == ids[i] and j + 1 < i]
        if copies:
            totals.append(weights[:, i, [copies[-1] + 1]].sum(-1))
    return torch.stack(totals, -1).mean(-1)


def test_solutions_pass():
    results = grade_namespace("10", solution_namespace(), watch=False)
    assert [r.status for r in results] == ["passed"] * 4, [r.message for r in results]


def test_solutions_agree_with_the_package():
    w = random_causal(3, 10, seed=0)
    ids = [1, 2, 3, 1, 2, 3, 4, 1, 2, 3]
    torch.testing.assert_close(head_entropy(w), attention_entropy(w))
    torch.testing.assert_close(first_token_score(w), head_scores(w)["first_token"])
    torch.testing.assert_close(induction_score(w, ids), head_scores(w, ids)["induction"])


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_planted_heads_do_what_they_say():
    # the checks' inputs are only meaningful if the planted heads win their own score
    prev = planted(9, lambda i: [i - 1], 0.75, seed=0)
    assert torch.allclose(prev.sum(-1), torch.ones(9, dtype=torch.float64))
    assert torch.diagonal(prev, -1).min() > 0.74
    assert torch.equal(prev.triu(1), torch.zeros(9, 9, dtype=torch.float64))  # still causal


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "10_attention_explorer.ipynb", points=8, exercises=4)
