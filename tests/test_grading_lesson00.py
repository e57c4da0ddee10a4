"""Lesson 00's checks: the solutions pass, and each mutant fails with the matching hint."""

import pytest
import torch

from minigpt2.grading.core import grade_namespace

from grading_checks import assert_mutant_fails_with_its_hint, assert_mutant_loses_exactly_its_points


def solution_namespace():
    return {
        "utf8_length": lambda text: len(text.encode("utf-8")),
        "count_linear_params": lambda n_in, n_out, bias=True: n_in * n_out + (n_out if bias else 0),
        "softmax": stable_softmax,
    }


def stable_softmax(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def naive_softmax(x):
    e = x.exp()
    return e / e.sum(dim=-1, keepdim=True)


MUTANTS = [
    ("00.1", lambda text: len(text), "characters"),
    ("00.2", lambda n_in, n_out, bias=True: n_in * n_out, "forgot the bias"),
    ("00.2", lambda n_in, n_out, bias=True: n_in * n_out + n_out, "bias=False"),
    ("00.2", lambda n_in, n_out, bias=True: n_in * n_out + (n_in if bias else 0), "OUTPUT"),
    ("00.3", lambda x: x.exp(), "without dividing"),
    ("00.3", lambda x: torch.softmax(x, dim=0), "wrong axis"),
    ("00.3", lambda x: x.exp() / x.exp().sum(), "whole tensor"),
    ("00.3", naive_softmax, "overflows"),
]


def test_solutions_pass():
    results = grade_namespace("00", solution_namespace(), watch=False)
    assert [r.status for r in results] == ["passed"] * 3


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)
