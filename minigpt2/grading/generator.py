"""Write ``exercises/`` from ``solutions/``: the solution regions become stubs.

In a solutions notebook, a region of a code cell between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` is the learner's to write. The generated exercises notebook has
in its place one line, at the region's indentation::

    raise NotImplementedError("Exercise 03.1 (Scaled attention scores): replace this line with your code")

The exercise is the one named by the nearest markdown heading above the cell
(``### Exercise 03.1 — Scaled attention scores``, or in a Chinese notebook
``### 练习 03.1 — 缩放的注意力分数``, whose stub then speaks Chinese). Outputs and
execution counts are cleared: the learner runs the notebook.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: importing nbformat in every grading kernel costs seconds
    import nbformat

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
# The word is the notebook's language's: "Exercise" (English) or "练习" (Chinese); a trailing "(★★☆, 2 points)" or
# "（★★☆，2 分）" is not part of the title.
HEADING = re.compile(
    r"^#+\s*(?P<word>Exercise|练习)\s+(?P<id>\d\d\.\d+)\s*[—–:：-]+\s*(?P<title>.+?)\s*"
    r"([(（].*[)）])?\s*$", re.MULTILINE
)


class GeneratorError(ValueError):
    """A solutions notebook the generator cannot turn into an exercise."""


# The stub's message, by the heading's word: the learner reads it in the notebook's language.
STUB_MESSAGES = {
    "Exercise": "Exercise {id} ({title}): replace this line with your code",
    "练习": "练习 {id}（{title}）：请把这一行换成你的代码",
}


def stub_line(indent: str, exercise_id: str, title: str, word: str = "Exercise") -> str:
    message = STUB_MESSAGES[word].format(id=exercise_id, title=title)
    return f'{indent}raise NotImplementedError("{message}")'


_STUB = re.compile(
    r'raise NotImplementedError\("(Exercise \d\d\.\d+ \(.*\): replace this line with your code'
    r'|练习 \d\d\.\d+（.*）：请把这一行换成你的代码)"\)'
)


def is_stub_line(line: str) -> bool:
    """Whether a line of code is a stub :func:`stub_line` wrote (the learner has not started there)."""
    return bool(_STUB.fullmatch(line.strip()))


def strip_solutions(source: str, exercise_id: str, title: str, where: str, word: str = "Exercise") -> str:
    """Replace every BEGIN/END SOLUTION region of ``source`` with the stub."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise GeneratorError(f"{where}, line {number}: {BEGIN} inside another solution region")
            inside = True
            out.append(stub_line(line[: len(line) - len(line.lstrip())], exercise_id, title, word))
        elif marker == END:
            if not inside:
                raise GeneratorError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GeneratorError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_exercises(solutions: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercises notebook for a solutions notebook (which is not modified)."""
    nb = copy.deepcopy(solutions)
    current: tuple[str, str, str] | None = None  # (id, title, word) of the exercise a solution region belongs to
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = list(HEADING.finditer(cell.source))
            if found:
                current = (found[-1]["id"], found[-1]["title"], found[-1]["word"])
            continue
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            where = f"{name}, cell {index}"
            if current is None:
                raise GeneratorError(f"{where}: a solution region with no '### Exercise NN.K — Title' heading above it")
            exercise_id, title, word = current
            cell.source = strip_solutions(cell.source, exercise_id, title, where=where, word=word)
        cell.outputs = []
        cell.execution_count = None
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    import nbformat  # here, not at the top: the checks import this module (for is_stub_line) in every kernel

    return nbformat.writes(nb) + "\n"


def expected_exercises(solutions_dir: Path) -> dict[str, str]:
    """File name -> the text the exercises notebook of that name should have."""
    import nbformat

    return {
        path.name: render(make_exercises(nbformat.read(path, as_version=4), name=path.name))
        for path in sorted(Path(solutions_dir).glob("*.ipynb"))
    }


def out_of_sync(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """What differs between ``exercises_dir`` and what the generator would write."""
    expected = expected_exercises(solutions_dir)
    problems = []
    for name, text in expected.items():
        target = Path(exercises_dir) / name
        if not target.exists():
            problems.append(f"{target} is missing")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target} differs from what solutions/{name} generates")
    for target in sorted(Path(exercises_dir).glob("*.ipynb")):
        if target.name not in expected:
            problems.append(f"{target} has no solutions notebook")
    return problems


def write_exercises(solutions_dir: Path, exercises_dir: Path) -> list[Path]:
    """Write every exercises notebook; return the paths that changed."""
    Path(exercises_dir).mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in expected_exercises(solutions_dir).items():
        target = Path(exercises_dir) / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed
