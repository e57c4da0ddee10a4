"""Lesson 05's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt2.grading.core import grade_namespace

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)


def gelu(x, outer=0.5, power=3, scale=math.sqrt(2 / math.pi)):
    return outer * x * (1 + torch.tanh(scale * (x + 0.044715 * x**power)))


def gelu_in_place(x):
    out = gelu(x.clone())
    x.zero_()
    return out


def mlp_forward(x, mlp, activation=gelu, project=True):
    h = activation(mlp.c_fc(x))
    return mlp.c_proj(h) if project else h


def count(n_embd, bias=True):
    return 8 * n_embd * n_embd + (5 * n_embd if bias else 0)


def solution_namespace():
    return {"gelu": gelu, "mlp_forward": mlp_forward, "count_mlp_params": count}


MUTANTS = [
    ("05.1", lambda x: F.gelu(x), "exact GELU"),
    ("05.1", torch.relu, "that is ReLU"),
    ("05.1", lambda x: x * torch.sigmoid(1.702 * x), "sigmoid approximation"),
    ("05.1", lambda x: gelu(x, outer=1.0), "factor 0.5"),
    ("05.1", lambda x: gelu(x, power=2), "not x²"),
    ("05.1", lambda x: gelu(x, scale=math.sqrt(math.pi / 2)), "√(2/π)"),
    ("05.1", lambda x: 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))), "without multiplying "
        "by x"),
    ("05.1", gelu_in_place, "in place"),
    ("05.1", lambda x: gelu(x).clamp(min=0), "wrong values"),
    ("05.2", lambda x, mlp: mlp_forward(x, mlp, activation=torch.relu), "you used ReLU"),
    ("05.2", lambda x, mlp: mlp_forward(x, mlp, activation=F.gelu), "exact GELU"),
    ("05.2", lambda x, mlp: mlp_forward(x, mlp, activation=lambda h: h), "no nonlinearity"),
    ("05.2", lambda x, mlp: mlp_forward(x, mlp, project=False), "stopped after the GELU"),
    ("05.2", lambda x, mlp: gelu(mlp_forward(x, mlp)), "not after c_proj"),
    ("05.2", lambda x, mlp: gelu(x @ mlp.c_fc.weight.T) @ mlp.c_proj.weight.T, "biases are missing"),
    ("05.2", lambda x, mlp: mlp(x), "compute it from mlp.c_fc"),
    ("05.3", lambda n_embd, bias=True: 2 * n_embd * n_embd + (2 * n_embd if bias else 0), "4× wide"),
    ("05.3", lambda n_embd, bias=True: 4 * n_embd * n_embd + (4 * n_embd if bias else 0), "only c_fc"),
    ("05.3", lambda n_embd, bias=True: 8 * n_embd * n_embd, "left out the biases"),
    ("05.3", lambda n_embd, bias=True: 8 * n_embd * n_embd + (8 * n_embd if bias else 0), "not 4·C"),
    ("05.3", lambda n_embd, bias=True: 8 * n_embd * n_embd + 5 * n_embd, "bias=False"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("05", solution_namespace(), watch=False)] == ["passed"] * 3


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS[::2])
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "05_feed_forward.ipynb", points=3, exercises=3)
