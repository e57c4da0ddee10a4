"""Graded exercises: checks with feedback a learner can act on, the notebook grader,
and the generator that writes ``exercises/`` from ``solutions/``.

In an exercises notebook::

    from minigpt2.grading import check
    check("00.1", count_linear_params)
"""

from minigpt2.grading.core import (
    CheckFailed,
    Exercise,
    NotAttempted,
    Result,
    call,
    check,
    exercise,
    exercises_for,
    grade_namespace,
    run_exercise,
)
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor, name_mistake

__all__ = [
    "CheckFailed",
    "Exercise",
    "Mistake",
    "NotAttempted",
    "Result",
    "call",
    "check",
    "exercise",
    "exercises_for",
    "expect_equal",
    "expect_tensor",
    "grade_namespace",
    "name_mistake",
    "run_exercise",
]
