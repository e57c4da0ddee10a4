"""Lesson 03's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch

from minigpt2.grading.core import grade_namespace

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

NEG_INF = float("-inf")


def scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))


def mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def masked_softmax(s, m):
    return torch.softmax(s.masked_fill(~m, NEG_INF), dim=-1)


def attention(q, k, v, scale=True, after=False, dim=-1, transpose_mask=False, causal=True):
    """The head with one mistake switched on."""
    T, d = q.size(-2), q.size(-1)
    s = q @ k.transpose(-2, -1) / (math.sqrt(d) if scale else 1.0)
    m = mask(T).T if transpose_mask else mask(T)
    if after:
        w = torch.softmax(s, dim=-1) * m
    else:
        w = torch.softmax(s.masked_fill(~m, NEG_INF) if causal else s, dim=dim)
    return w @ v, w


def solution_namespace():
    return {
        "attention_scores": scores,
        "make_causal_mask": mask,
        "masked_softmax": masked_softmax,
        "causal_attention": attention,
    }


MUTANTS = [
    ("03.1", lambda q, k: q @ k.transpose(-2, -1), "missing √d"),
    ("03.1", lambda q, k: q @ k.transpose(-2, -1) / q.size(-1), "divided by d"),
    ("03.1", lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.size(-2)), "√T"),
    ("03.1", lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1)), "transposed"),
    ("03.2", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "transposed"),
    ("03.2", lambda T: ~torch.ones(T, T, dtype=torch.bool).tril(), "inverted"),
    ("03.2", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal"),
    ("03.2", lambda T: torch.ones(T, T).tril(), "dtype"),
    ("03.3", lambda s, m: torch.softmax(s, dim=-1) * m, "mask applied after softmax"),
    ("03.3", lambda s, m: torch.softmax(s.masked_fill(~m, NEG_INF), dim=-2), "softmax over the wrong axis"),
    ("03.3", lambda s, m: torch.softmax(s.masked_fill(~m, 0.0), dim=-1), "with 0"),
    ("03.3", lambda s, m: torch.softmax(s.masked_fill(m, NEG_INF), dim=-1), "where the mask is True"),
    ("03.3", lambda s, m: masked_softmax(s, m.T), "transposed mask"),
    ("03.4", lambda q, k, v: attention(q, k, v, scale=False), "missing √d"),
    ("03.4", lambda q, k, v: attention(q, k, v, after=True), "mask applied after softmax"),
    ("03.4", lambda q, k, v: attention(q, k, v, dim=-2), "softmax over the wrong axis"),
    ("03.4", lambda q, k, v: attention(q, k, v, transpose_mask=True), "transposed mask"),
    ("03.4", lambda q, k, v: attention(q, k, v, causal=False), "no causal mask"),
    ("03.4", lambda q, k, v: attention(q, k, v)[0], "pair (out, weights)"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("03", solution_namespace(), watch=False)] == ["passed"] * 4


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "03_attention.ipynb", points=6, exercises=4)
