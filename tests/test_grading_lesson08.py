"""Lesson 08's checks: the solutions pass, each mutant fails with its hint and loses exactly its
points, and `minigpt2 grade` gives full marks to solutions/08 and zero to exercises/08."""

import math
from pathlib import Path

import pytest
from torch import nn

from minigpt2.grading.core import get_exercise, grade_namespace, run_exercise
from minigpt2.grading.lesson08 import (
    _cosine_forever,
    _cosine_over_all_steps,
    _decay_to_zero,
    _no_warmup,
    _warmup_from_zero,
)

from grading_checks import (
    as_learner,
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

# the checks' own wrong answers, as mutants
lr_cosine_forever = as_learner(_cosine_forever)
lr_progress_over_total = as_learner(_cosine_over_all_steps)
lr_to_zero = as_learner(_decay_to_zero)
lr_no_warmup = as_learner(_no_warmup)
lr_warmup_from_zero = as_learner(_warmup_from_zero)

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- solutions


def lr_at(step, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def decay_groups(model, weight_decay):
    params = list(model.parameters())
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def train_step(model, optimizer, micro_batches, grad_clip):
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        total += loss.item()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad()
    return total / len(micro_batches)


def mfu(tokens_per_s, n_params, n_layer, n_embd, block_size, peak_flops):
    return tokens_per_s * (6 * n_params + 12 * n_layer * n_embd * block_size) / peak_flops


def solution_namespace():
    return {"lr_at": lr_at, "decay_groups": decay_groups, "train_step": train_step, "mfu": mfu}


# --------------------------------------------------------------------------- mutants


def groups_all_decayed(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}, {"params": [], "weight_decay": 0.0}]


def groups_by_name(model, weight_decay):
    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if n.endswith("weight")], "weight_decay": weight_decay},
        {"params": [p for n, p in named if not n.endswith("weight")], "weight_decay": 0.0},
    ]


def groups_linear_only(model, weight_decay):
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in model.parameters() if id(p) in linear and id(p) not in embedding]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if all(p is not q for q in decay)], "weight_decay": 0.0},
    ]


def groups_swapped(model, weight_decay):
    a, b = decay_groups(model, weight_decay)
    return [{"params": a["params"], "weight_decay": 0.0}, {"params": b["params"], "weight_decay": weight_decay}]


def groups_tied_twice(model, weight_decay):
    named = list(model.named_parameters(remove_duplicate=False))
    return [
        {"params": [p for _, p in named if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0},
    ]


def step_no_division(model, optimizer, micro_batches, grad_clip):
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        loss.backward()
        total += loss.item()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad()
    return total / len(micro_batches)


def step_clip_after(model, optimizer, micro_batches, grad_clip):
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        total += loss.item()
    optimizer.step()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.zero_grad()
    return total / len(micro_batches)


def step_no_zero_grad(model, optimizer, micro_batches, grad_clip):
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        total += loss.item()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total / len(micro_batches)


def step_returns_sum(model, optimizer, micro_batches, grad_clip):
    return train_step(model, optimizer, micro_batches, grad_clip) * len(micro_batches)


def step_returns_tensor_list(model, optimizer, micro_batches, grad_clip):
    train_step(model, optimizer, micro_batches, grad_clip)
    return [0.0]


MUTANTS = [
    ("08.1", lr_warmup_from_zero, "warm-up starts at 0"),
    ("08.1", lr_to_zero, "ends at 0 instead of min_lr"),
    ("08.1", lr_progress_over_total, "(step − warmup_steps) / (total_steps − warmup_steps)"),
    ("08.1", lr_cosine_forever, "climbs back up"),
    ("08.1", lr_no_warmup, "there is no warm-up"),
    ("08.2", groups_all_decayed, "every parameter is decayed"),
    ("08.2", groups_by_name, "you chose by name"),
    ("08.2", groups_linear_only, "the embeddings are matrices too"),
    ("08.2", groups_swapped, "the groups are swapped"),
    ("08.2", groups_tied_twice, "appears more than once"),
    ("08.3", step_no_division, "SUM over the micro-batches"),
    ("08.3", step_clip_after, "too late"),
    ("08.3", step_no_zero_grad, "carries the first step's gradients"),
    ("08.3", step_returns_sum, "returned the sum"),
    ("08.3", step_returns_tensor_list, "should return the loss as a number"),
    ("08.4", lambda t, n, l, e, b, p: t * 2 * n / p, "forward pass only (2·N)"),
    ("08.4", lambda t, n, l, e, b, p: t * 6 * n / p, "left out attention"),
    ("08.4", lambda t, n, l, e, b, p: 100 * mfu(t, n, l, e, b, p), "percentage"),
    ("08.4", lambda t, n, l, e, b, p: t * (6 * n + 12 * l * e * b), "divide by the peak"),
]


def test_solutions_pass():
    results = grade_namespace("08", solution_namespace(), watch=False)
    assert [(r.id, r.status) for r in results] == [("08.1", "passed"), ("08.2", "passed"), ("08.3", "passed"), ("08.4",
        "passed")]


def test_the_package_functions_pass_too():
    from minigpt2.train.optim import lr_at as package_lr_at, param_groups

    assert run_exercise(get_exercise("08.1"), package_lr_at, watch=False).status == "passed"
    assert run_exercise(get_exercise("08.2"), param_groups, watch=False).status == "passed"


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS[::3])
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_stubs_are_not_attempted():
    def stub(*args):
        raise NotImplementedError("Exercise 08.1 (The learning-rate schedule): replace this line with your code")

    assert all(r.status == "not attempted"
               for r in grade_namespace("08", {n: stub for n in solution_namespace()}, watch=False))


def test_a_learner_error_is_reported_with_its_line():
    def broken(step, max_lr, min_lr, warmup_steps, total_steps):
        return max_lr / 0

    result = run_exercise(get_exercise("08.1"), broken, watch=False)
    assert result.status == "failed" and "ZeroDivisionError" in result.message


@pytest.mark.slow
def test_grader_full_marks_on_solutions_and_zero_on_exercises():
    assert_solutions_full_marks_exercises_zero(ROOT, "08_training.ipynb", points=6, exercises=4)
