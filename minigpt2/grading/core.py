"""Exercises, their checks, and the results a learner sees.

An exercise is registered once, in ``minigpt2/grading/lessonNN.py``::

    @exercise("03.1", "Scaled attention scores", points=2, name="attention_scores")
    def check_attention_scores(attention_scores):
        q = ...
        got = call(attention_scores, q, k)               # the learner's code, under a time limit
        expect_tensor(got, reference(q, k), what="the scores",
                      mistakes=[Mistake(q @ k.T, "you forgot to divide by √d")])

In the notebook the check cell is one line, ``check("03.1", attention_scores)``: it
prints what passed or, in words a learner can act on, what is wrong. The grader
(:mod:`minigpt2.grading.grader`) runs the same registered checks on the objects the
learner's notebook defined, so an edited or deleted check cell changes nothing.
"""

from __future__ import annotations

import importlib
import re
import signal
import threading
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable

DEFAULT_TIME_LIMIT = 10.0  # seconds for one call of the learner's code


class CheckFailed(Exception):
    """The learner's answer is wrong; the message says how, in the learner's terms."""


class NotAttempted(Exception):
    """The learner's code still raises the stub's NotImplementedError."""


class TimeLimitExceeded(BaseException):
    """Raised inside the learner's code when it runs too long.

    A BaseException, so that a learner's ``except Exception`` cannot swallow it."""


@dataclass(frozen=True)
class Exercise:
    id: str  # "03.1": lesson, then number within the lesson
    title: str
    points: int
    name: str  # the notebook object the check receives, e.g. "attention_scores"
    check: Callable[[Any], None]

    @property
    def lesson(self) -> str:
        return self.id.split(".")[0]


@dataclass
class Result:
    id: str
    title: str
    points: int
    earned: int
    passed: bool
    status: str  # passed | failed | not attempted | missing | timed out | error
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, points: int, name: str):
    """Register the decorated function as the check of exercise ``id``."""
    if not re.fullmatch(r"\d\d\.\d+", id):
        raise ValueError(f"exercise id {id!r} should look like '03.1'")

    def register(check_fn):
        _REGISTRY[id] = Exercise(id=id, title=title, points=points, name=name, check=check_fn)
        return check_fn

    return register


def exercises_for(lesson: str) -> list[Exercise]:
    """The registered exercises of a lesson ("03"), in order."""
    lesson = f"{int(lesson):02d}"
    try:
        importlib.import_module(f"minigpt2.grading.lesson{lesson}")
    except ModuleNotFoundError as err:
        if err.name != f"minigpt2.grading.lesson{lesson}":
            raise
        return []
    found = [ex for ex in _REGISTRY.values() if ex.lesson == lesson]
    return sorted(found, key=lambda ex: int(ex.id.split(".")[1]))


def get_exercise(id: str) -> Exercise:
    exercises_for(id.split(".")[0])
    if id not in _REGISTRY:
        raise KeyError(f"there is no exercise {id!r}; check the id in your check cell")
    return _REGISTRY[id]


# --------------------------------------------------------------------------- time limit


@contextmanager
def time_limit(seconds: float):
    """Raise TimeLimitExceeded inside the block after ``seconds`` (POSIX, main thread)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise TimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(fn, args, kwargs, seconds):
    """Where no alarm signal can be used: run in a thread and stop waiting after ``seconds``."""
    outcome: dict[str, Any] = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed back to the caller below
            outcome["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimitExceeded()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _learner_frame(err: BaseException) -> str:
    """' (line N: `code`)' for the deepest frame of the traceback in the learner's code."""
    frames = [
        f for f in traceback.extract_tb(err.__traceback__) if "/minigpt2/grading/" not in f.filename.replace("\\", "/")
    ]
    if not frames:
        return ""
    last = frames[-1]
    code = f": `{last.line.strip()}`" if last.line else ""
    return f" (line {last.lineno}{code})"


def call(fn: Callable, *args, time_limit_s: float = DEFAULT_TIME_LIMIT, **kwargs):
    """Call the learner's ``fn`` under a time limit, turning every way it can fail into a
    NotAttempted or CheckFailed whose message a learner can act on."""
    name = getattr(fn, "__name__", "your code")
    if not callable(fn):
        raise CheckFailed(f"`{name}` should be a function, but it is a {type(fn).__name__}.")
    try:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            with time_limit(time_limit_s):
                return fn(*args, **kwargs)
        return _call_in_thread(fn, args, kwargs, time_limit_s)
    except TimeLimitExceeded:
        raise CheckFailed(
            f"`{name}` did not finish within {time_limit_s:g} s on a small input. "
            "Look for a loop that never ends (a `while` whose condition never changes?)."
        ) from None
    except NotImplementedError as err:
        if "Exercise" in str(err):
            raise NotAttempted(str(err)) from None
        raise CheckFailed(f"`{name}` raised NotImplementedError: {err}{_learner_frame(err)}") from None
    except (CheckFailed, NotAttempted):
        raise
    except RecursionError as err:
        raise CheckFailed(f"`{name}` recursed too deeply{_learner_frame(err)}: does the recursion have a base case?") from None
    except Exception as err:
        raise CheckFailed(f"`{name}` raised {type(err).__name__}: {err}{_learner_frame(err)}") from None


# --------------------------------------------------------------------------- running checks


def run_exercise(ex: Exercise, obj: Any, *, missing: bool = False) -> Result:
    """Run one exercise's check on the learner's object and say how it went."""

    def result(earned: bool, status: str, message: str) -> Result:
        return Result(ex.id, ex.title, ex.points, ex.points if earned else 0, earned, status, message)

    if missing:
        return result(False, "missing", f"`{ex.name}` is not defined: run the cell that defines it (and fix any error it shows).")
    try:
        ex.check(obj)
    except NotAttempted:
        return result(False, "not attempted", "not attempted yet: replace the `raise NotImplementedError` line with your code.")
    except CheckFailed as err:
        status = "timed out" if "did not finish within" in str(err) else "failed"
        return result(False, status, str(err))
    except TimeLimitExceeded:
        return result(False, "timed out", f"the check of {ex.id} ran out of time.")
    except Exception as err:  # a bug in the check itself must still not crash the learner's notebook
        return result(False, "error", f"the check itself failed ({type(err).__name__}: {err}); please report it.")
    return result(True, "passed", "passed")


def format_result(r: Result) -> str:
    mark = {"passed": "✅", "not attempted": "⏳"}.get(r.status, "❌")
    head = f"{mark} Exercise {r.id} — {r.title}: {r.earned}/{r.points} points"
    if r.passed:
        return head + ". Well done!"
    return f"{head}. {r.message}"


def check(exercise_id: str, obj: Any) -> None:
    """The check cell of an exercise: run its check on ``obj`` and print the verdict."""
    ex = get_exercise(exercise_id)
    print(format_result(run_exercise(ex, obj)))


def grade_namespace(lesson: str, namespace: dict) -> list[Result]:
    """Every exercise of ``lesson`` checked against the objects in ``namespace``."""
    return [run_exercise(ex, namespace.get(ex.name), missing=ex.name not in namespace) for ex in exercises_for(lesson)]
