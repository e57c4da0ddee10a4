"""Exercises, their checks, and the results a learner sees.

An exercise is registered once, in ``minigpt2/grading/lessonNN.py``::

    @exercise("03.1", "Scaled attention scores", points=2, name="attention_scores")
    def check_attention_scores(attention_scores):
        q = ...
        got = call(attention_scores, q, k)               # the learner's code, under a time limit
        expect_tensor(got, reference(q, k), what="the scores",
                      mistakes=[Mistake(q @ k.T, "you forgot to divide by √d")])

In the notebook the check cell is one line, ``check("03.1", attention_scores)``: it
prints what passed or, in words a learner can act on, what is wrong (instant feedback,
in the learner's own process). The grader (:mod:`minigpt2.grading.grader`) runs the same
registered checks in its own process, on a :class:`Learner` handle instead of the object:
:func:`call` then runs the learner's code in the notebook's kernel and gets plain data
back, so an edited check cell, a patched comparison or a lying subclass changes nothing.
"""

from __future__ import annotations

import importlib
import re
import signal
import textwrap
import threading
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Callable

from minigpt2.grading.generator import is_stub_line

DEFAULT_TIME_LIMIT = 10.0  # seconds for one call of the learner's code


class CheckFailed(Exception):
    """The learner's answer is wrong; the message says how, in the learner's terms. ``raised``: the
    name of the exception type the learner's code raised, when that is what went wrong."""

    raised: str | None = None


class TimedOut(CheckFailed):
    """The learner's code did not finish within its time limit."""


class Forbidden(CheckFailed):
    """The learner's code called what the exercise asks them to build themselves."""


class NotAttempted(Exception):
    """The learner's code still raises the stub's NotImplementedError."""


class TimeLimitExceeded(BaseException):
    """Raised inside the learner's code when it runs too long (in the notebook's own check cells).

    A BaseException, so that a learner's ``except Exception`` cannot swallow it. The grader does
    not rely on it: it ends the learner's kernel instead."""


@dataclass(frozen=True)
class Exercise:
    id: str  # "03.1": lesson, then number within the lesson
    title: str
    points: int
    name: str  # the notebook object the check receives, e.g. "attention_scores"
    check: Callable[[Any], None]
    forbid: tuple[str, ...] = ()  # dotted paths the learner's code may not call ("build it yourself")

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
    status: str  # passed | failed | not attempted | missing | timed out | not allowed | error
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, Exercise] = {}
_RUNNING: ContextVar[Exercise | None] = ContextVar("minigpt2_running_exercise", default=None)
_WATCHING: ContextVar[bool] = ContextVar("minigpt2_watching", default=True)


def exercise(id: str, title: str, points: int, name: str, forbid: tuple[str, ...] = ()):
    """Register the decorated function as the check of exercise ``id``; ``forbid`` lists the calls
    (dotted paths) that the learner's code may not make, because the exercise is to build them."""
    if not re.fullmatch(r"\d\d\.\d+", id):
        raise ValueError(f"exercise id {id!r} should look like '03.1'")

    def register(check_fn):
        _REGISTRY[id] = Exercise(id=id, title=title, points=points, name=name, check=check_fn, forbid=tuple(forbid))
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
    """Raise TimeLimitExceeded inside the block after ``seconds`` (POSIX, main thread; elsewhere no limit)."""
    if not (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()):
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


# --------------------------------------------------------------------------- calling the learner's code


def _learner_frame(err: BaseException) -> tuple[str, str]:
    """(' (line N: `code`)', the code line) for the deepest frame of the traceback in the learner's code."""
    frames = [
        f for f in traceback.extract_tb(err.__traceback__) if "/minigpt2/grading/" not in f.filename.replace("\\", "/")
    ]
    if not frames:
        return "", ""
    last = frames[-1]
    line = (last.line or "").strip()
    return (f" (line {last.lineno}: `{line}`)" if line else f" (line {last.lineno})"), line


def describe_exception(err: BaseException) -> dict:
    """What the learner's exception was, as plain data (the kernel sends this back to the grader)."""
    where, line = _learner_frame(err)
    try:
        message = str(err)[:500]
    except Exception:
        message = "(its message could not be printed)"
    if isinstance(err, TimeLimitExceeded):
        kind = "timed out"
    elif isinstance(err, NotImplementedError) and is_stub_line(line):
        kind = "stub"
    elif isinstance(err, RecursionError):
        kind = "recursion"
    elif isinstance(err, NotAttempted):
        kind = "stub"
    elif isinstance(err, TimedOut):
        kind = "timed out"
    elif isinstance(err, CheckFailed):
        kind = "check failed"
    else:
        kind = "raised"
    return {"kind": kind, "type": str(type(err).__name__), "message": message, "where": where}


def raise_for(name: str, failure: dict, time_limit_s: float):
    """Turn a failure of the learner's code (from :func:`describe_exception`, or the grader's own
    observation of the kernel) into the exception a check lets through."""
    kind, message, where = failure.get("kind"), failure.get("message", ""), failure.get("where", "")
    if kind == "timed out":
        raise TimedOut(
            f"`{name}` did not finish within {time_limit_s:g} s on a small input. "
            "Look for a loop that never ends (a `while` whose condition never changes?)."
        )
    if kind == "stub":
        raise NotAttempted(message)
    if kind == "forbidden":
        raise Forbidden(message)
    if kind == "check failed":
        raise CheckFailed(message)
    if kind == "died":
        raise CheckFailed(f"`{name}` ended the Python process that ran it ({message}): a sys.exit, os._exit, "
                          "a kill, or more memory than the grader allows?")
    if kind == "recursion":
        raise CheckFailed(f"`{name}` recursed too deeply{where}: does the recursion have a base case?")
    if kind == "not callable":
        raise CheckFailed(f"`{name}` should be a function, but it is a {failure.get('type')}.")
    err = CheckFailed(f"`{name}` raised {failure.get('type')}: {message}{where}")
    err.raised = str(failure.get("type"))
    raise err


def forbidden_message(path: str, ex: Exercise | None, found: str) -> str:
    rule = f"exercise {ex.id} asks you to build it yourself" if ex is not None else ("this exercise asks you to "
                                                                                     "build it yourself")
    return (f"`{path}` is not allowed here: {rule}, so using the library's (or the package's) finished version "
            f"scores 0. {found}")


class Learner:
    """The grader's handle on an object of the learner's notebook, which lives in the learner's kernel.

    A check receives one instead of the object itself; :func:`call` on it (or on a package
    function with it among the arguments) runs in the kernel and hands back plain data."""

    def __init__(self, session, name: str):
        self.session, self.__name__ = session, name

    def __reduce__(self):  # in the kernel, a Learner argument becomes the learner's object itself
        from minigpt2.grading import agent

        return agent.learner_object, (self.__name__,)

    def __repr__(self) -> str:
        return f"<the learner's {self.__name__}>"


def _session_of(fn, args, kwargs):
    for value in (fn, *args, *kwargs.values()):
        if isinstance(value, Learner):
            return value.session
    return None


def call(fn: Callable, *args, time_limit_s: float = DEFAULT_TIME_LIMIT, **kwargs):
    """Call the learner's ``fn`` under a time limit, turning every way it can fail into a
    NotAttempted or CheckFailed whose message a learner can act on.

    ``fn`` is the learner's object, or a function of the package (a probe, at module level) that
    receives the learner's object among ``args``. In the grader both run in the learner's kernel:
    arguments go there by pickle, the result comes back as plain data (:mod:`minigpt2.grading.wire`),
    and a tensor argument the learner changed in place is changed here too. While it runs, the calls
    the exercise forbids are watched (:mod:`minigpt2.grading.forbid`)."""
    from minigpt2.grading.forbid import Watch, Watched, is_probe

    running = _RUNNING.get()
    forbid = running.forbid if running is not None and _WATCHING.get() else ()
    probe = is_probe(fn)
    name = getattr(args[0] if probe and args else fn, "__name__", "your code")
    session = _session_of(fn, args, kwargs)
    if session is not None:
        outcome = session.call(fn, args, kwargs, time_limit_s=time_limit_s, forbid=forbid)
        if "value" in outcome:
            return outcome["value"]
        if outcome.get("kind") == "forbidden":
            outcome = {**outcome, "message": forbidden_message(outcome["message"], running,
                                                               f"`{name}` called it while the grader ran it.")}
        raise_for(name, outcome, outcome.get("time_limit_s", time_limit_s))
    learner = args[0] if probe and args else fn
    if not callable(learner):
        raise_for(name, {"kind": "not callable", "type": type(learner).__name__}, time_limit_s)
    watch = Watch(forbid)
    if probe:  # the probe's own work is not watched, the learner's function it calls is
        args = (Watched(learner, watch), *args[1:])
    else:
        fn = Watched(fn, watch)
    try:
        with time_limit(time_limit_s):
            value = fn(*args, **kwargs)
    except (CheckFailed, NotAttempted, KeyboardInterrupt):
        raise
    except BaseException as err:  # every other way the learner's code fails (SystemExit too) is a message
        raise_for(name, describe_exception(err), time_limit_s)
    if watch.hit is not None:
        raise Forbidden(forbidden_message(watch.hit, running, f"`{name}` called it while it ran."))
    return value


def instance_call(cls, init_args: tuple, *args, **kwargs):
    """A probe for an exercise whose answer is a class (an ``nn.Module``, say): build it with
    ``init_args`` and call the instance — ``call(instance_call, LoRALinear, (base, 4, 8), x)`` —
    both under the exercise's watch; what comes back is the call's plain result."""
    return cls.also(cls(*init_args))(*args, **kwargs)


# --------------------------------------------------------------------------- running checks


def run_exercise(ex: Exercise, obj: Any, *, missing: bool = False, watch: bool = True) -> Result:
    """Run one exercise's check on the learner's object and say how it went. ``watch=False`` leaves
    the forbidden calls unwatched (for tests that check a check's logic with the package's own code)."""

    def result(earned: bool, status: str, message: str) -> Result:
        return Result(ex.id, ex.title, ex.points, ex.points if earned else 0, earned, status, message)

    if missing:
        return result(False, "missing", f"`{ex.name}` is not defined: run the cell that defines it (and fix any "
                                        "error it shows).")
    token, watching = _RUNNING.set(ex), _WATCHING.set(watch)
    try:
        ex.check(obj)
    except NotAttempted:
        return result(False, "not attempted", "not attempted yet: replace the `raise NotImplementedError` line "
                                              "with your code.")
    except TimedOut as err:
        return result(False, "timed out", str(err))
    except Forbidden as err:
        return result(False, "not allowed", str(err))
    except CheckFailed as err:
        return result(False, "failed", str(err))
    except TimeLimitExceeded:
        return result(False, "timed out", f"the check of {ex.id} ran out of time.")
    except Exception as err:  # a bug in the check itself must still not crash the learner's notebook
        return result(False, "error", f"the check itself failed ({type(err).__name__}: {err}); please report it.")
    finally:
        _RUNNING.reset(token)
        _WATCHING.reset(watching)
    return result(True, "passed", "passed")


MESSAGE_WIDTH = 100  # columns: JupyterLab breaks a longer output line anywhere, mid-word too


def format_result(r: Result) -> str:
    """The verdict as ``check()`` prints it: mark and heading first, the message wrapped between words."""
    mark = {"passed": "✅", "not attempted": "⏳"}.get(r.status, "❌")
    head = f"{mark} Exercise {r.id} — {r.title}: {r.earned}/{r.points} points"
    return wrap_message(head + ". Well done!" if r.passed else f"{head}. {r.message}")


def wrap_message(text: str, width: int = MESSAGE_WIDTH) -> str:
    """``text`` with each line longer than ``width`` wrapped at spaces (continuations indented under
    the first word after the mark); a word longer than a line, and an indented line (code, a table),
    stay whole."""
    lines = []
    for line in text.splitlines():
        if len(line) <= width or line[:1].isspace():
            lines.append(line)
        else:
            lines.extend(textwrap.wrap(line, width, subsequent_indent="   ", break_long_words=False,
                                       break_on_hyphens=False))
    return "\n".join(lines)


def check(exercise_id: str, obj: Any) -> None:
    """The check cell of an exercise: run its check on ``obj`` and print the verdict."""
    ex = get_exercise(exercise_id)
    print(format_result(run_exercise(ex, obj)))


def grade_namespace(lesson: str, namespace: dict, *, watch: bool = True) -> list[Result]:
    """Every exercise of ``lesson`` checked against the objects in ``namespace`` (in this process: the
    notebook's instant feedback; ``minigpt2 grade`` runs the checks from outside the notebook's kernel)."""
    return [run_exercise(ex, namespace.get(ex.name), missing=ex.name not in namespace, watch=watch)
            for ex in exercises_for(lesson)]
