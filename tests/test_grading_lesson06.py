"""Lesson 06's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch

from minigpt2.grading.core import grade_namespace

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)


def layer_norm(x, weight, bias, eps=1e-5, unbiased=False, eps_outside=False, dim=-1):
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    denominator = var.sqrt() + eps if eps_outside else torch.sqrt(var + eps)
    return (x - mean) / denominator * weight + bias


def layer_norm_in_place(x, weight, bias, eps=1e-5):
    out = layer_norm(x.clone(), weight, bias, eps)
    x.sub_(x.mean(-1, keepdim=True))
    return out


def pre_ln_block(x, block):
    x = x + block.attn(block.ln_1(x))
    return x + block.mlp(block.ln_2(x))


def post_ln_block(x, block):
    x = block.ln_1(x + block.attn(x))
    return block.ln_2(x + block.mlp(x))


def grad_norms(model, idx, targets, zero=True, of="grad", combine="norm"):
    if zero:
        model.zero_grad()
    model(idx, targets)[1].backward()
    out = []
    for block in model.transformer.h:
        tensors = [p.grad if of == "grad" else p.detach() for p in block.parameters()]
        if combine == "sum of norms":
            out.append(sum(t.norm().item() for t in tensors))
        else:
            squared = sum(t.pow(2).sum().item() for t in tensors)
            out.append(squared if combine == "squared" else math.sqrt(squared))
    return out


def solution_namespace():
    return {"layer_norm": layer_norm, "pre_ln_block": pre_ln_block, "grad_norm_per_block": grad_norms}


MUTANTS = [
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, w, b, eps, unbiased=True), "Bessel's correction"),
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, w, b, eps, eps_outside=True), "inside the square root"),
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, w, b, 0.0), "ε is missing"),
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, 1.0, 0.0, eps), "gain and shift are missing"),
    ("06.1", lambda x, w, b, eps=1e-5: (layer_norm(x, 1.0, 0.0, eps) + b) * w, "wrong order"),
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, b, w, eps), "weight and bias swapped"),
    ("06.1", lambda x, w, b, eps=1e-5: x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w + b,
     "subtract the mean"),
    ("06.1", lambda x, w, b, eps=1e-5: layer_norm(x, w, b, eps, dim=0), "dim"),
    ("06.1", layer_norm_in_place, "in place"),
    ("06.2", post_ln_block, "post-LN"),
    ("06.2", lambda x, block: block.mlp(block.ln_2(block.attn(block.ln_1(x)))), "residual connections are missing"),
    ("06.2", lambda x, block: (lambda a: a + block.mlp(block.ln_2(a)))(block.attn(block.ln_1(x))), "first residual"),
    ("06.2", lambda x, block: block.mlp(block.ln_2(x + block.attn(block.ln_1(x)))), "second residual"),
    ("06.2", lambda x, block: x + block.attn(block.ln_1(x)) + block.mlp(block.ln_2(x)), "in parallel"),
    ("06.2", lambda x, block: (lambda h: h + block.mlp(block.ln_1(h)))(x + block.attn(block.ln_1(x))), "not ln_1(x)"),
    ("06.2", lambda x, block: block(x), "compute it from block.ln_1"),
    ("06.3", lambda m, idx, t: grad_norms(m, idx, t, zero=False), "model.zero_grad()"),
    ("06.3", lambda m, idx, t: grad_norms(m, idx, t, of="weights"), "parameters themselves"),
    ("06.3", lambda m, idx, t: grad_norms(m, idx, t, combine="squared"), "squared norm"),
    ("06.3", lambda m, idx, t: grad_norms(m, idx, t, combine="sum of norms"), "norms of the separate tensors"),
    ("06.3", lambda m, idx, t: grad_norms(m, idx, t)[1:], "one per block"),
    ("06.3", lambda m, idx, t: None, "a list of numbers"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("06", solution_namespace(), watch=False)] == ["passed"] * 3


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS[::3])
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "06_residual_layernorm.ipynb", points=5, exercises=3)
