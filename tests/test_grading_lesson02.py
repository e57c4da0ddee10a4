"""Lesson 02's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import pytest
import torch

from minigpt2.grading.core import get_exercise, grade_namespace, run_exercise

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)


def embed(ids, wte, wpe):
    return wte[ids] + wpe[torch.arange(ids.size(1))]


def sinusoids(T, C, step=2, swap=False, halves=False):
    """The encodings with one mistake switched on."""
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    angle = pos / 10000.0 ** (step * torch.arange(C // 2, dtype=torch.float64) / C)  # (T, C/2)
    even, odd = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    if halves:
        return torch.cat([even, odd], dim=-1)
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = even, odd
    return pe


def make_window(tokens, start, block_size):
    return tokens[start : start + block_size], tokens[start + 1 : start + block_size + 1]


def solution_namespace():
    return {
        "embed": embed,
        "sinusoidal_positions": sinusoids,
        "make_window": make_window,
        "window_starts": lambda n, T, stride: list(range(0, n - T, stride)),
    }


MUTANTS = [
    ("02.1", lambda ids, wte, wpe: wte[ids], "token embeddings only"),
    ("02.1", lambda ids, wte, wpe: wte[ids] + wpe[ids], "position table with the token ids"),
    ("02.1", lambda ids, wte, wpe: torch.cat([wte[ids], wpe[: ids.size(1)].expand(*ids.shape, -1)], -1),
     "concatenated"),
    ("02.2", lambda T, C: sinusoids(T, C, swap=True), "sin and cos are swapped"),
    ("02.2", lambda T, C: sinusoids(T, C, step=1), "frequencies are off"),
    ("02.2", lambda T, C: sinusoids(T, C, halves=True), "all the sines first"),
    ("02.2", lambda T, C: sinusoids(T, C).T, "transposed"),
    ("02.3", lambda tokens, s, T: (tokens[s : s + T], tokens[s : s + T]), "targets not shifted"),
    ("02.3", lambda tokens, s, T: (tokens[s : s + T], tokens[s - 1 : s - 1 + T]), "shifted the wrong way"),
    ("02.3", lambda tokens, s, T: make_window(tokens, s, T)[::-1], "swapped"),
    ("02.3", lambda tokens, s, T: (tokens[s : s + T + 1], tokens[s + 1 : s + T + 2]), "block_size + 1 tokens"),
    ("02.3", lambda tokens, s, T: tokens[s : s + T], "pair (x, y)"),
    ("02.4", lambda n, T, stride: list(range(0, n - T + 1, stride)), "crosses the end"),
    ("02.4", lambda n, T, stride: list(range(0, n - T - 1, stride)), "miss the last window"),
    ("02.4", lambda n, T, stride: list(range(0, n - T)), "ignored the stride"),
]


def test_solutions_pass():
    assert [r.status for r in grade_namespace("02", solution_namespace(), watch=False)] == ["passed"] * 4


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_float32_answers_pass_too():
    as_float32 = lambda T, C: sinusoids(T, C).float()  # noqa: E731
    assert run_exercise(get_exercise("02.2"), as_float32, watch=False).status == "passed"


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "02_embeddings_and_data.ipynb", points=6, exercises=4)
