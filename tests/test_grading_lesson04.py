"""Lesson 04's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch

from minigpt2.attention import causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from minigpt2.grading.core import grade_namespace
from minigpt2.grading.lesson04 import (
    _merge_without_transpose,
    _merge_wrong_order,
    _split_without_transpose,
    _split_wrong_order,
)

from grading_checks import (
    as_learner,
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

# the checks' own wrong answers, as mutants
merge_no_transpose = as_learner(_merge_without_transpose)
merge_interleaved = as_learner(_merge_wrong_order)
split_no_transpose = as_learner(_split_without_transpose)
split_interleaved = as_learner(_split_wrong_order)


def count(n_embd, n_head, bias=True):
    return 4 * n_embd * n_embd + (4 * n_embd if bias else 0)


def mha(x, attn, split=split_heads, merge=merge_heads, project=True, scale_by_n_embd=False, order=(0, 1, 2)):
    """The forward pass with one mistake switched on."""
    B, T, C = x.shape
    parts = attn.c_attn(x).split(C, dim=-1)
    q, k, v = (split(parts[i], attn.n_head) for i in order)
    if scale_by_n_embd:  # scaled by √C instead of √head_size
        q = q * math.sqrt(q.size(-1) / C)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(T))
    y = merge(out)
    return attn.c_proj(y) if project else y


def solution_namespace():
    return {"split_heads": split_heads, "merge_heads": merge_heads, "count_attention_params": count,
            "multi_head_attention": mha}


MUTANTS = [
    ("04.1", split_interleaved, "heads split in the wrong order"),
    ("04.1", split_no_transpose, "straight to (B, n_head, T, head_size)"),
    ("04.1", lambda x, n_head: x.view(*x.shape[:2], n_head, -1), "transpose(1, 2)"),
    ("04.2", merge_interleaved, "heads merged in the wrong order"),
    ("04.2", merge_no_transpose, "mixes time steps"),
    ("04.2", lambda y: y.transpose(1, 2), "did not merge them"),
    ("04.3", lambda n_embd, n_head, bias=True: 3 * n_embd * n_embd + (3 * n_embd if bias else 0), "c_proj"),
    ("04.3", lambda n_embd, n_head, bias=True: n_head * count(n_embd, n_head, bias), "multiplied by n_head"),
    ("04.3", lambda n_embd, n_head, bias=True: 4 * n_embd * n_embd, "left out the biases"),
    ("04.3", lambda n_embd, n_head, bias=True: 4 * n_embd * n_embd + 4 * n_embd, "bias=False"),
    ("04.4", lambda x, attn: mha(x, attn, project=False), "output projection"),
    ("04.4", lambda x, attn: mha(x, attn, scale_by_n_embd=True), "√n_embd"),
    ("04.4", lambda x, attn: mha(x, attn, split=split_interleaved, merge=merge_interleaved),
     "heads split in the wrong order"),
    ("04.4", lambda x, attn: mha(x, attn, split=split_no_transpose, merge=merge_no_transpose), "without the transpose"),
    ("04.4", lambda x, attn: mha(x, attn, order=(1, 0, 2)), "queries and keys swapped"),
    ("04.4", lambda x, attn: attn(x), "compute it from attn.c_attn"),
    ("04.4", lambda x, attn: (mha(x, attn), None), "not a tuple"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("04", solution_namespace(), watch=False)] == ["passed"] * 4


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "04_multi_head_attention.ipynb", points=8, exercises=4)


def test_wrong_split_orders_really_differ_from_the_right_one():
    # the mutants above are only meaningful if they produce different numbers on the check's shapes
    x = torch.randn(2, 5, 12)
    assert not torch.equal(split_interleaved(x, 3), split_heads(x, 3))
    assert not torch.equal(split_no_transpose(x, 3), split_heads(x, 3))
