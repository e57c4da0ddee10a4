"""Grade a notebook headless: run it in a fresh kernel, then run the registered
checks on what it defined.

The learner's file is only read. The checks come from the package, not from the
notebook, so an edited or deleted check cell cannot change the score. Whatever the
learner's code does (raises, loops forever, has a syntax error, kills the kernel)
becomes a row of the report, never a traceback of the grader.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from minigpt2.grading.core import Result, exercises_for

MARKER = "@@minigpt2-grade@@"
_quiet_log = logging.getLogger("minigpt2.grader")  # nbclient's timeout lines become our notes instead
_quiet_log.addHandler(logging.NullHandler())
_quiet_log.propagate = False
LESSON_FROM_NAME = re.compile(r"^(\d\d)_")


class GradingError(Exception):
    """The notebook cannot be graded at all (not a notebook, unknown lesson…)."""


@dataclass
class Report:
    notebook: str
    lesson: str
    results: list[Result]
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(r.earned for r in self.results)

    @property
    def max_score(self) -> int:
        return sum(r.points for r in self.results)

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "lesson": self.lesson,
            "score": self.score,
            "max_score": self.max_score,
            "exercises": [r.to_dict() for r in self.results],
            "notes": self.notes,
        }


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GradingError(f"{path} does not exist.") from None
    except UnicodeDecodeError:
        raise GradingError(f"{path} is not a text file, so it cannot be a notebook.") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise GradingError(
            f"{path} is not a valid notebook: its JSON breaks at line {err.lineno}, column {err.colno} ({err.msg}). "
            "Was it edited outside Jupyter? Restore it with `git checkout` or regenerate it with `minigpt2 exercises`."
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise GradingError(f"{path} is JSON but not a Jupyter notebook (it has no 'cells').")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat's own validation errors are many kinds
        raise GradingError(f"{path} is not a notebook nbformat can read: {err}") from None


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str:
    match = LESSON_FROM_NAME.match(Path(path).name)
    if match:
        return match.group(1)
    lesson = nb.metadata.get("minigpt2", {}).get("lesson")
    if lesson is None:
        raise GradingError(
            f"cannot tell which lesson {path} belongs to: its name should start with the lesson number, e.g. 03_attention.ipynb"
        )
    return f"{int(lesson):02d}"


def _setup_cell(lesson: str) -> nbformat.NotebookNode:
    """Imports torch and the lesson's checks before the learner's first cell, under the grader's own
    budget: a slow first `import torch` must not count against (or be interrupted in) a learner's cell."""
    source = f"import minigpt2.grading.core as _core\n_core.exercises_for({lesson!r})"
    return nbformat.v4.new_code_cell(source, metadata={"minigpt2_grader": True})


def _grading_cell(lesson: str) -> nbformat.NotebookNode:
    source = (
        "import json as _json\n"
        "from minigpt2.grading.core import grade_namespace as _grade_namespace\n"
        f"print({MARKER!r} + _json.dumps([_r.to_dict() for _r in _grade_namespace({lesson!r}, globals())]))\n"
    )
    return nbformat.v4.new_code_cell(source, metadata={"minigpt2_grader": True})


def _cell_errors(cells: list, cell_timeout: int) -> list[str]:
    """A note for each of the learner's cells that stored an error (cells numbered from 0 as in their file)."""
    notes = []
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                what = f"cell {index} (`{first_line[:60]}`)"
                if output.get("ename") == "KeyboardInterrupt":
                    notes.append(f"{what} ran for more than {cell_timeout} s and was stopped: an infinite loop?")
                else:
                    notes.append(f"{what} raised {output.get('ename')}: {output.get('evalue')}")
    return notes


def grade_notebook(path: str | Path, cell_timeout: int = 60) -> Report:
    """Execute ``path`` headless and grade its exercises."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = read_notebook(path)
    lesson = lesson_of(path, nb)
    exercises = exercises_for(lesson)
    if not exercises:
        raise GradingError(f"lesson {lesson} has no graded exercises (is {path.name} the right notebook?)")

    nb.cells.insert(0, _setup_cell(lesson))
    nb.cells.append(_grading_cell(lesson))
    # The learner's cells get `cell_timeout` each; the grading cell runs every check, each of whose calls of
    # the learner's code is limited on its own (core.DEFAULT_TIME_LIMIT), so it gets a budget per exercise.
    grading_budget = 60 + 30 * len(exercises)
    client = NotebookClient(
        nb,
        timeout_func=lambda cell: grading_budget if cell.metadata.get("minigpt2_grader") else cell_timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
        log=_quiet_log,
    )
    notes: list[str] = []
    try:
        client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log lines are not the learner's business
    except DeadKernelError:
        notes.append("the kernel died while running the notebook (out of memory? a crash in native code?)")
    except CellTimeoutError:
        notes.append(f"a cell ran for more than {cell_timeout} s and could not be interrupted")
    except Exception as err:  # the kernel failed to start, and the like
        notes.append(f"the notebook could not be run: {type(err).__name__}: {err}")

    results = _results_from(nb.cells[-1])
    for output in nb.cells[0].get("outputs", []):
        if output.get("output_type") == "error":
            notes.append(f"the grader could not import the checks: {output.get('ename')}: {output.get('evalue')}")
    notes = _cell_errors(nb.cells[1:-1], cell_timeout) + notes
    for output in nb.cells[-1].get("outputs", []):
        if output.get("output_type") == "error":
            notes.append(f"the grader's own cell failed: {output.get('ename')}: {output.get('evalue')}")
    if results is None:
        reason = notes[-1] if notes else "the grading cell did not run"
        results = [
            Result(ex.id, ex.title, ex.points, 0, False, "error", f"not graded: {reason}") for ex in exercises
        ]
    return Report(notebook=str(path), lesson=lesson, results=results, notes=notes)


def _results_from(cell: nbformat.NotebookNode) -> list[Result] | None:
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        if output.get("output_type") == "stream" and MARKER in text:
            payload = text.split(MARKER, 1)[1].strip().splitlines()[0]
            return [Result(**row) for row in json.loads(payload)]
    return None


def _short(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def format_table(report: Report) -> str:
    rows = [(f"{r.id} {r.title}", f"{r.earned}/{r.points}", "yes" if r.passed else "no", _short(r.message)) for r in report.results]
    headers = ("exercise", "points", "passed", "message")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:3])]
    line = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)) + "  " + cols[3]  # noqa: E731
    out = [f"Grading {report.notebook} (lesson {report.lesson})", "", line(headers), line(tuple("-" * w for w in widths) + ("-" * 7,))]
    out += [line(row) for row in rows]
    out += ["", f"Total: {report.score}/{report.max_score}"]
    if report.notes:
        out += ["", "Notes:"] + [f"  - {_short(n)}" for n in report.notes]
    return "\n".join(out)
