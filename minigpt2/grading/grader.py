"""Grade a notebook headless, without running the learner's code in the grader's process.

The learner's notebook runs in a kernel of its own (:mod:`minigpt2.grading.kernel`); each
exercise's check (from the package, not from the notebook, so an edited or deleted check cell
changes nothing) runs here, asks the kernel to call the learner's function on inputs it chose,
and gets back plain data (:mod:`minigpt2.grading.wire`). The comparison with the reference, the
named mistakes, the points and the report are computed here, where learner code cannot reach.
Before that, the learner's source is read for the calls an exercise forbids
(:mod:`minigpt2.grading.forbid`). Whatever the learner's code does (raises, loops for ever,
exits, kills the kernel, eats memory) becomes a row or a note, never a traceback of the grader.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from minigpt2.grading.core import Exercise, Learner, Result, exercises_for, forbidden_message, run_exercise
from minigpt2.i18n.messages import _, columns, current_language, notebook_language, using_language

LESSON_FROM_NAME = re.compile(r"^(\d\d)_")


class GradingError(Exception):
    """The notebook cannot be graded at all (not a notebook, unknown lesson…)."""


@dataclass
class Report:
    notebook: str
    lesson: str
    results: list[Result]
    notes: list[str] = field(default_factory=list)
    language: str = "en"  # the language of its messages ("en", "zh")

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
            "language": self.language,
        }


def read_notebook(path: Path) -> nbformat.NotebookNode:
    path = Path(path)
    if path.is_dir():
        raise GradingError(_("{path} is a folder; give the path of one notebook, e.g. {example}.").format(
            path=path, example=path / "03_attention.ipynb"))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GradingError(_("{path} does not exist.").format(path=path)) from None
    except UnicodeDecodeError:
        raise GradingError(_("{path} is not a text file, so it cannot be a notebook.").format(path=path)) from None
    except OSError as err:
        raise GradingError(_("{path} cannot be read ({reason}).").format(path=path, reason=err.strerror)) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise GradingError(
            _("{path} is not a valid notebook: its JSON breaks at line {line}, column {column} ({reason}). "
                    "Was it edited outside Jupyter? Restore it with `git checkout` or regenerate it with `minigpt2 "
                    "exercises`.").format(path=path, line=err.lineno, column=err.colno, reason=err.msg)
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise GradingError(_("{path} is JSON but not a Jupyter notebook (it has no 'cells').").format(path=path))
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat's own validation errors are many kinds
        raise GradingError(_("{path} is not a notebook nbformat can read: {err}").format(path=path, err=err)) from None


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str:
    match = LESSON_FROM_NAME.match(Path(path).name)
    if match:
        return match.group(1)
    meta = nb.metadata.get("minigpt2", {})
    lesson = meta.get("lesson") if isinstance(meta, dict) else None
    if lesson is None:
        raise GradingError(
            _("cannot tell which lesson {path} belongs to: its name should start with the lesson number, e.g. "
                    "03_attention.ipynb").format(path=path)
        )
    if isinstance(lesson, bool) or not re.fullmatch(r"\d{1,2}", str(lesson).strip()):
        raise GradingError(
            _("{path}'s metadata.minigpt2.lesson is {lesson!r}; it should be the lesson number (e.g. 3), or name the "
                    "file after its lesson, e.g. 03_attention.ipynb").format(path=path, lesson=lesson)
        )
    return f"{int(str(lesson).strip()):02d}"


def _other_lesson(lesson: str, defined: set[str]) -> str | None:
    """The lesson whose exercises this notebook defines, when it is not ``lesson``'s."""
    if any(ex.name in defined for ex in exercises_for(lesson)):
        return None
    for other in (f"{n:02d}" for n in range(100)):
        names = [ex.name for ex in exercises_for(other)] if other != lesson else []
        if names and sum(name in defined for name in names) * 2 >= len(names):
            return other
    return None


def _missing_message(ex: Exercise, in_source: set[str], functions: list[str]) -> str:
    if ex.name in in_source:
        return _("`{name}` is not defined: run the cell that defines it (and fix any error it shows).").format(
            name=ex.name)
    close = difflib.get_close_matches(ex.name, functions, n=1, cutoff=0.6)
    if close:
        return (_("`{name}` is not defined, but the notebook defines `{close}`: the grader looks for the name "
                "`{name}` — did you rename it? Keep the name the exercise gives.").format(
                name=ex.name, close=close[0]))
    return _("`{name}` is not defined: the exercise's function must keep the name `{name}`.").format(
        name=ex.name)


def grade_notebook(path: str | Path, cell_timeout: float = 60, memory_limit: int | None = None) -> Report:
    """Run ``path`` in a kernel of its own and grade its exercises from outside it."""
    from minigpt2.grading.kernel import DEFAULT_MEMORY_LIMIT, KernelSession, KernelUnavailable

    if not cell_timeout > 0:
        raise GradingError(_("the time limit must be a positive number of seconds, not {cell_timeout!r}.").format(
            cell_timeout=cell_timeout))
    path = Path(path)
    nb = read_notebook(path)
    language = notebook_language(nb.metadata)  # None: the notebook does not say, the environment decides
    with using_language(language):  # a zh notebook is graded in Chinese, its kernel speaks Chinese too
        lesson = lesson_of(path, nb)
        cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        session = KernelSession(cells, str(path.parent.resolve()), lesson, cell_timeout,
                                DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit, current_language())
        try:
            session.launch()  # the kernel starts while this process imports the checks
            report = _grade(path, lesson, cells, session)
        except KernelUnavailable as err:
            raise GradingError(_("{err}: check the installation with `minigpt2 doctor`.").format(err=err)) from None
        finally:
            session.close()
        report.language = session.language
        return report


def _grade(path: Path, lesson: str, cells: list[tuple[int, str]], session) -> Report:
    from minigpt2.grading.forbid import parse_cells, scan_tampering, top_level_definitions

    exercises = exercises_for(lesson)
    if not exercises:
        raise GradingError(_("lesson {lesson} has no graded exercises (is {name} the right notebook?)").format(
            lesson=lesson, name=path.name))
    trees = parse_cells(cells)
    definitions = top_level_definitions(trees)
    other = _other_lesson(lesson, set(definitions))
    if other is not None:
        raise GradingError(_("{name} is graded as lesson {lesson}, but it defines lesson {other}'s exercises: "
                "give lesson {other}'s notebook a name starting with {other}_ (or grade the right file).").format(
                name=path.name, lesson=lesson, other=other))
    tampering = scan_tampering(trees)
    if tampering is not None:
        message = (_("cell {cell}, line {line} uses `{what}`, which reaches into the "
                "grader's own machinery: this notebook's grade does not count.").format(
                cell=tampering.cell, line=tampering.line, what=tampering.what))
        return Report(str(path), lesson, [Result(ex.id, _(ex.title), ex.points, 0, False, "not allowed", message)
                                          for ex in exercises], [message])

    session.boot()
    state = session.names([ex.name for ex in exercises])
    functions = [n for n, (_, node) in definitions.items() if type(node).__name__ in ("FunctionDef", "ClassDef")]
    results = [_grade_one(ex, session, state.get(ex.name, {}), trees, set(definitions), functions) for ex in exercises]
    notes = [session.notes[index] for index in sorted(session.notes)]
    return Report(notebook=str(path), lesson=lesson, results=results, notes=notes)


def _grade_one(ex: Exercise, session, state: dict, trees, in_source: set[str], functions: list[str]) -> Result:
    if not state.get("defined"):
        return run_exercise(ex, None, missing=True) if ex.name in in_source else Result(
            ex.id, _(ex.title), ex.points, 0, False, "missing", _missing_message(ex, in_source, functions))
    from minigpt2.grading.forbid import scan_source

    finding = scan_source(trees, ex.name, ex.forbid)
    if finding is not None:
        where = _("It is in your code (cell {cell}, line {line}).").format(
            cell=finding.cell, line=finding.line)
        return Result(ex.id, _(ex.title), ex.points, 0, False, "not allowed",
                      forbidden_message(finding.what, ex, where))
    return run_exercise(ex, Learner(session, ex.name))


def _short(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def format_table(report: Report) -> str:
    with using_language(report.language):
        return _format_table(report)


def _format_table(report: Report) -> str:
    rows = [(f"{r.id} {r.title}", f"{r.earned}/{r.points}", _("yes") if r.passed else _("no"), _short(r.message))
            for r in report.results]
    headers = (_("exercise"), _("points"), _("passed"), _("message"))
    widths = [max(columns(h), *(columns(row[i]) for row in rows)) for i, h in enumerate(headers[:3])]
    line = lambda cols: "  ".join(c + " " * (w - columns(c)) for c, w in zip(cols, widths)) + "  " + cols[3]  # noqa: E731
    out = [_("Grading {notebook} (lesson {lesson})").format(notebook=report.notebook, lesson=report.lesson), "",
           line(headers), line(tuple("-" * w for w in widths) + ("-" * 7,))]
    out += [line(row) for row in rows]
    out += ["", _("Total: {score}/{max_score}").format(score=report.score, max_score=report.max_score)]
    if report.notes:
        out += ["", _("Notes:")] + [f"  - {_short(n)}" for n in report.notes]
    return "\n".join(out)
