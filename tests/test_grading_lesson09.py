"""Lesson 09's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt2.grading.core import get_exercise, grade_namespace, run_exercise
from minigpt2.sampling import top_k_filter, top_p_filter

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

NEG_INF = float("-inf")


def cached_step(q, k_new, v_new, k_cache, v_cache, *, new_first=False, append=True, causal=False, scale=True,
                softmax_dim=-1):
    """One cached attention step, with one mistake switched on."""
    k_all = torch.cat([k_new, k_cache] if new_first else [k_cache, k_new], dim=2)
    v_all = torch.cat([v_new, v_cache] if new_first else [v_cache, v_new], dim=2)
    k_seen, v_seen = (k_all, v_all) if append else (k_cache, v_cache)
    if softmax_dim != -1 or not scale:
        scores = q @ k_seen.transpose(-2, -1) / (math.sqrt(q.size(-1)) if scale else 1.0)
        return scores.softmax(dim=softmax_dim) @ v_seen, k_all, v_all
    return F.scaled_dot_product_attention(q, k_seen, v_seen, is_causal=causal), k_all, v_all


def perplexity(logits, targets):
    return math.exp(F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item())


def top_p_variant(logits, p, *, drop_boundary=False, descending=True, unsort=True):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=descending)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) > p if drop_boundary else probs.cumsum(-1) - probs >= p
    if not unsort:
        return sorted_logits.masked_fill(drop, NEG_INF)
    return logits.masked_fill(drop.scatter(-1, order, drop), NEG_INF)


def top_p_unsorted_cumsum(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs >= p, NEG_INF)


def top_k_in_place(logits, k):
    kth = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
    logits[logits < kth] = NEG_INF
    return logits


def solution_namespace():
    return {"top_k_filter": top_k_filter, "top_p_filter": top_p_filter, "cached_attention_step": cached_step,
            "perplexity_from_logits": perplexity}


def kth(logits, k):
    return torch.topk(logits, k).values[..., -1:]


MUTANTS = [
    ("09.1", lambda l, k: l.masked_fill(l <= kth(l, min(k, l.size(-1))), NEG_INF), "also removed the k-th"),
    ("09.1", lambda l, k: l.masked_fill(l < kth(l, min(k, l.size(-1))), 0.0), "float('-inf')"),
    ("09.1", lambda l, k: top_k_filter(l, k).softmax(-1), "returned probabilities"),
    ("09.1", lambda l, k: l.masked_fill(l > torch.topk(l, k, largest=False).values[..., -1:], NEG_INF), "SMALLEST"),
    ("09.1", lambda l, k: torch.topk(l, min(k, l.size(-1))).values, "the k largest values themselves"),
    ("09.1", lambda l, k: l.masked_fill(l < kth(l, k), NEG_INF), "Clamp it"),
    ("09.1", top_k_in_place, "in place"),
    ("09.2", lambda l, p: top_p_variant(l, p, drop_boundary=True), "dropped the boundary token"),
    ("09.2", lambda l, p: top_p_variant(l, p, unsort=False), "sorted order"),
    ("09.2", lambda l, p: top_p_variant(l, p, descending=False), "sorted ascending"),
    ("09.2", top_p_unsorted_cumsum, "vocabulary order: sort"),
    ("09.2", lambda l, p: top_p_filter(l, p).softmax(-1), "returned probabilities"),
    ("09.3", lambda *a: cached_step(*a, new_first=True), "in FRONT of the cache"),
    ("09.3", lambda *a: cached_step(*a, append=False), "attended only to the cached tokens"),
    ("09.3", lambda *a: cached_step(*a, causal=True), "is_causal=True"),
    ("09.3", lambda *a: cached_step(*a, scale=False), "missing √d"),
    ("09.3", lambda *a: cached_step(*a, softmax_dim=-2), "wrong axis"),
    ("09.3", lambda *a: cached_step(*a)[0], "should return a tuple"),
    ("09.4", lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten()).item(), "perplexity is its exponential"),
    ("09.4", lambda l, t: 2 ** F.cross_entropy(l.flatten(0, 1), t.flatten()).item(), "mixes bases"),
    ("09.4", lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten(), reduction="none").exp().mean().item(),
     "token by token"),
    ("09.4", lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten(), reduction="sum").exp().item(), "SUMMED"),
    ("09.4", lambda l, t: perplexity(l[:, :-1], t[:, 1:]), "do not shift"),
    ("09.4", lambda l, t: [perplexity(l, t)], "one number"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("09", solution_namespace(), watch=False)] == ["passed"] * 4


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_a_wrong_answer_with_no_known_mistake_still_gets_a_clear_message():
    result = run_exercise(get_exercise("09.4"), lambda logits, targets: 1.0, watch=False)
    assert result.status == "failed" and "but it should be" in result.message
    result = run_exercise(get_exercise("09.1"), lambda logits, k: logits + 1, watch=False)
    assert result.status == "failed" and "wrong values" in result.message


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "09_sampling.ipynb", points=6, exercises=4)
