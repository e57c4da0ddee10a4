"""What every lesson's exercise tests check, written once (tests/test_grading_lessonNN.py call these)."""

from pathlib import Path

from minigpt2.grading.core import exercises_for, get_exercise, grade_namespace, run_exercise
from minigpt2.grading.grader import grade_notebook


def as_learner(mistake):
    """One of a check's own wrong answers (a function of minigpt2.grading, which the grader would take for a
    probe) as a learner's function, to be used as a mutant."""

    def learner(*args):
        return mistake(*args)

    learner.__name__ = mistake.__name__.lstrip("_")
    return learner


def assert_mutant_fails_with_its_hint(exercise_id: str, mutant, hint: str) -> None:
    """A wrong implementation scores nothing, and the message names its mistake."""
    result = run_exercise(get_exercise(exercise_id), mutant, watch=False)
    assert result.status == "failed" and result.earned == 0, result.message
    assert hint in result.message, result.message


def assert_mutant_loses_exactly_its_points(solutions: dict, exercise_id: str, mutant) -> None:
    """The solutions with one function swapped for a mutant score the lesson's total less that exercise's points."""
    exercise = get_exercise(exercise_id)
    lesson = exercise_id.split(".")[0]
    namespace = {**solutions, exercise.name: mutant}
    total = sum(ex.points for ex in exercises_for(lesson))
    assert sum(r.earned for r in grade_namespace(lesson, namespace, watch=False)) == total - exercise.points


def assert_solutions_full_marks_exercises_zero(root: Path, notebook: str, points: int, exercises: int) -> None:
    """Through the grader: solutions/<notebook> scores full marks, exercises/<notebook> zero, each row "not
    attempted"."""
    solved = grade_notebook(root / "solutions" / notebook)
    assert solved.score == solved.max_score == points, solved.notes
    untouched = grade_notebook(root / "exercises" / notebook)
    assert untouched.score == 0
    assert [r.status for r in untouched.results] == ["not attempted"] * exercises
