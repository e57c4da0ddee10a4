"""The check machinery: time limits, learner exceptions, mistakes named in words."""

import time

import pytest
import torch

from minigpt2.grading import CheckFailed, Mistake, NotAttempted, call, expect_equal, expect_tensor
from minigpt2.grading.core import MESSAGE_WIDTH, Exercise, format_result, run_exercise, wrap_message


def test_call_returns_the_value():
    assert call(lambda a, b: a + b, 2, 3) == 5


def test_call_stops_an_infinite_loop():
    def spin():
        while True:
            pass

    start = time.perf_counter()
    with pytest.raises(CheckFailed, match="did not finish within 0.5 s"):
        call(spin, time_limit_s=0.5)
    assert time.perf_counter() - start < 3


def test_an_infinite_loop_that_catches_exception_is_still_stopped():
    def stubborn():
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                pass

    with pytest.raises(CheckFailed, match="did not finish"):
        call(stubborn, time_limit_s=0.3)


def test_call_reports_the_learners_exception_and_line():
    def broken(x):
        return x[10]

    with pytest.raises(CheckFailed) as err:
        call(broken, [1, 2])
    message = str(err.value)
    assert "IndexError" in message and "return x[10]" in message


def test_the_stub_means_not_attempted():
    def stub():
        raise NotImplementedError("Exercise 03.1 (Scores): replace this line with your code")

    with pytest.raises(NotAttempted):
        call(stub)


def test_a_non_callable_is_explained():
    with pytest.raises(CheckFailed, match="should be a function"):
        call(42)


def test_expect_tensor_names_shape_and_values():
    expected = torch.zeros(2, 3)
    with pytest.raises(CheckFailed, match=r"shape \(3, 2\).*\(2, 3\)"):
        expect_tensor(torch.zeros(3, 2), expected)
    with pytest.raises(CheckFailed, match="wrong values"):
        expect_tensor(torch.ones(2, 3), expected)
    with pytest.raises(CheckFailed, match="torch.Tensor"):
        expect_tensor([[0, 0, 0]], expected)
    expect_tensor(expected + 1e-7, expected)


def test_expect_tensor_prefers_naming_a_known_mistake():
    x = torch.randn(4, 4)
    wrong = torch.softmax(x, dim=0)
    with pytest.raises(CheckFailed, match="wrong axis"):
        expect_tensor(wrong, torch.softmax(x, dim=-1), mistakes=[Mistake(torch.softmax(x, dim=0), "wrong axis")])


def test_expect_equal():
    expect_equal(3, 3)
    with pytest.raises(CheckFailed, match="is 4, but it should be 3"):
        expect_equal(4, 3, what="the count")
    with pytest.raises(CheckFailed, match="forgot the bias"):
        expect_equal(6, 9, mistakes=[Mistake(6, "you forgot the bias")])


def test_run_exercise_never_raises():
    def check_is_positive(fn):
        if call(fn) <= 0:
            raise CheckFailed("should be positive")

    ex = Exercise("99.1", "Positive", 2, "fn", check_is_positive)
    assert run_exercise(ex, lambda: 1).earned == 2
    failed = run_exercise(ex, lambda: -1)
    assert (failed.status, failed.earned, failed.message) == ("failed", 0, "should be positive")
    assert run_exercise(ex, None, missing=True).status == "missing"

    def buggy_check(fn):
        raise ZeroDivisionError("oops")

    assert run_exercise(Exercise("99.2", "Buggy", 1, "fn", buggy_check), lambda: 1).status == "error"


def test_format_result_marks():
    ex = Exercise("99.1", "Positive", 2, "fn", lambda fn: None)
    assert format_result(run_exercise(ex, lambda: 1)).startswith("✅ Exercise 99.1 — Positive: 2/2")


def test_a_long_message_wraps_between_words_and_keeps_its_heading():
    message = ("your mask is inverted: it is True where attending is forbidden, so every position attends to the "
               "future and cannot see its own past; the convention is True where attending is allowed, with "
               "torch.ones(T, T, dtype=torch.bool).tril() as the reference, and a_path/that_is_much_longer_than_"
               "one_line_" + "x" * 120 + " stays whole.")

    def check(fn):
        raise CheckFailed(message)

    text = format_result(run_exercise(Exercise("99.3", "Mask", 1, "fn", check), lambda: 1))
    lines = text.splitlines()
    assert lines[0].startswith("❌ Exercise 99.3 — Mask: 0/1 points. your mask is inverted")
    assert len(lines) > 2 and all(line.startswith("   ") for line in lines[1:])
    assert all(len(line) <= MESSAGE_WIDTH for line in lines if " " in line.strip())
    assert text.split() == f"❌ Exercise 99.3 — Mask: 0/1 points. {message}".split()  # no word cut in two
    assert format_result(run_exercise(Exercise("99.4", "Short", 1, "fn", lambda fn: None), lambda: 1)) == \
        "✅ Exercise 99.4 — Short: 1/1 points. Well done!"


def test_short_and_indented_lines_are_left_as_they_are():
    table = "got:\n    " + "  ".join(f"{i:.4f}" for i in range(30))
    assert wrap_message(table) == table
