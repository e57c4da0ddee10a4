"""Lesson 11's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch
import torch.nn as nn

from minigpt2.finetune.classify import pool_last
from minigpt2.finetune.instruct import IGNORE
from minigpt2.grading.core import get_exercise, grade_namespace, run_exercise
from minigpt2.grading.lesson11 import _collate_variant

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)


def collate(examples, pad_id, end_id, **mistake):
    if any(len(r) == 0 for _, r in examples):
        raise ValueError("an empty response")
    return _collate_variant(examples, pad_id, end_id, **mistake)


def init_lora(in_features, out_features, r, zero_b=True, random_a=True, transpose=False, scale=1.0):
    A = torch.empty(r, in_features)
    nn.init.kaiming_uniform_(A, a=math.sqrt(5))
    A = scale * A if random_a else torch.zeros(r, in_features)
    B = torch.zeros(out_features, r) if zero_b else torch.randn(out_features, r)
    return (A.T, B.T) if transpose else (A, B)


def lora_forward(x, W, b, A, B, alpha, scaling=None):
    scaling = alpha / A.size(0) if scaling is None else scaling
    return x @ W.T + b + scaling * (x @ A.T @ B.T)


def merge(W, A, B, alpha):
    return W + alpha / A.size(0) * B @ A


def accuracy(logit_batches, label_batches):
    correct = sum((l.argmax(-1) == y).sum().item() for l, y in zip(logit_batches, label_batches))
    return correct / sum(len(y) for y in label_batches)


def solution_namespace():
    return {"last_token_logits": pool_last, "collate_masked": collate, "init_lora": init_lora,
            "lora_forward": lora_forward, "merge_lora_weight": merge, "accuracy_over_batches": accuracy}


def merge_in_place(W, A, B, alpha):
    W += alpha / A.size(0) * B @ A
    return W


MUTANTS = [
    ("11.1", lambda logits, lengths: logits[:, -1], "padding for every text shorter than T"),
    ("11.1", lambda logits, lengths: logits[torch.arange(len(lengths)), lengths.clamp(max=logits.size(1) - 1)],
     "off by one"),
    ("11.1", lambda logits, lengths: logits[:, 0], "FIRST token"),
    ("11.1", lambda logits, lengths: logits.mean(1), "averaged over all positions"),
    ("11.2", lambda e, p, n: collate(e, p, n, mask_prompt=False), "the prompt is left in the loss"),
    ("11.2", lambda e, p, n: collate(e, p, n, mask_pad=False), "the padding is left in the loss"),
    ("11.2", lambda e, p, n: collate(e, p, n, mask_offset=1), "also masked the first response token"),
    ("11.2", lambda e, p, n: collate(e, p, n, mask_offset=-1), "one prompt token is still a target"),
    ("11.2", lambda e, p, n: collate(e, p, n, shift=False), "should not hold the last token"),
    ("11.2", lambda e, p, n: collate(e, p, n, end=False), "the end token is missing"),
    ("11.2", lambda e, p, n: _collate_variant(e, p, n) if all(r for _, r in e) else (torch.zeros(1, 1),) * 2,
     "accepted an example with an empty response"),
    ("11.2", lambda e, p, n: collate(e, p, n)[0], "should return a tuple"),
    ("11.3", lambda i, o, r: init_lora(i, o, r, zero_b=False), "B is not zero at the start"),
    ("11.3", lambda i, o, r: init_lora(i, o, r, random_a=False), "A is zero too"),
    ("11.3", lambda i, o, r: init_lora(i, o, r, transpose=True), "the transpose of"),
    ("11.3", lambda i, o, r: init_lora(i, o, r, scale=50.0), "too large"),
    ("11.4", lambda *a: lora_forward(*a, scaling=1.0), "the scaling is forgotten"),
    ("11.4", lambda x, W, b, A, B, alpha: lora_forward(x, W, b, A, B, alpha, scaling=alpha), "you scaled by alpha"),
    ("11.4", lambda x, W, b, A, B, alpha: lora_forward(x, W, b, A, B, alpha, scaling=A.size(0) / alpha), "r / alpha"),
    ("11.4", lambda x, W, b, A, B, alpha: x @ W.T + b, "the frozen layer's output alone"),
    ("11.5", lambda W, A, B, alpha: W + B @ A, "the scaling is forgotten"),
    ("11.5", lambda W, A, B, alpha: W - alpha / A.size(0) * B @ A, "subtracted"),
    ("11.5", lambda W, A, B, alpha: W + alpha * B @ A, "you scaled by alpha"),
    ("11.6", lambda ls, ys: sum((l.argmax(-1) == y).float().mean().item() for l, y in zip(ls, ys)) / len(ls),
     "averaged the batches' accuracies"),
    ("11.6", lambda ls, ys: 100 * accuracy(ls, ys), "percentage"),
    ("11.6", lambda ls, ys: float(sum((l.argmax(-1) == y).sum().item() for l, y in zip(ls, ys))),
     "number of correct predictions"),
    ("11.6", lambda ls, ys: accuracy(ls, ys) if len(ls) == 1 else accuracy(ls[-1:], ys[-1:]), "last batch"),
    ("11.6", lambda ls, ys: [accuracy(ls, ys)], "one number"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("11", solution_namespace(), watch=False)] == ["passed"] * 6


def test_merging_in_place_is_accepted_when_it_returns_the_merged_weight():
    assert run_exercise(get_exercise("11.5"), merge_in_place).passed


def test_collate_reference_masks_prompt_and_padding():
    inputs, targets = collate([([1, 2, 3], [4]), ([5], [6, 7])], 0, 9)
    assert inputs.tolist() == [[1, 2, 3, 4], [5, 6, 7, 0]]
    assert targets.tolist() == [[IGNORE, IGNORE, 4, 9], [6, 7, 9, IGNORE]]


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_a_wrong_answer_with_no_known_mistake_still_gets_a_clear_message():
    result = run_exercise(get_exercise("11.6"), lambda ls, ys: 0.123)
    assert result.status == "failed" and "but it should be" in result.message
    result = run_exercise(get_exercise("11.4"), lambda x, W, b, A, B, alpha: x @ W.T + b + 1)
    assert result.status == "failed" and "wrong values" in result.message


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "11_finetuning.ipynb", points=7, exercises=6)
