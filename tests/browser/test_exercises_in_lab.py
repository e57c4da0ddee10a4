"""An exercises notebook in JupyterLab, in English and in Chinese (exercises/zh/): a check cell run on an
untouched stub shows the friendly "not attempted" line (⏳) in the notebook's language, not a traceback."""

from __future__ import annotations

import re

import pytest
from lab_server import ROOT


def exercises_notebook(folder: str) -> str:
    """<folder>/03_*.ipynb (attention) once it exists, else the welcome exercises."""
    found = sorted((ROOT / folder).glob("03_*.ipynb"))
    return f"{folder}/{found[0].name if found else '00_welcome.ipynb'}"


@pytest.mark.parametrize("folder", ["exercises", "exercises/zh"], ids=["en", "zh"])
def test_a_check_on_an_untouched_stub_says_not_attempted(tab, folder):
    notebook = tab.open(exercises_notebook(folder))
    sources = notebook.cell_sources()
    check_cell = next(i for i, source in enumerate(sources) if source.startswith("check("))
    exercise_id = re.match(r'check\("([\d.]+)"', sources[check_cell]).group(1)
    assert "NotImplementedError" in sources[check_cell - 1], ("the cell above the first check should be "
                                                              "an untouched stub")

    notebook.run_cells_through(check_cell)
    output = notebook.output_text(check_cell)
    notebook.screenshot(f"check {exercise_id} not attempted", notebook.cells().nth(check_cell))

    heading = notebook.word("{mark} Exercise {id} — {title}: {earned}/{points} points").split("{title}")[0]
    assert output.startswith(heading.format(mark="⏳", id=exercise_id)), f"the check printed {output!r}"
    not_attempted = notebook.word("not attempted yet: replace the `raise NotImplementedError` line with your code.")
    assert re.split("[:：]", not_attempted)[0] in output and "0/" in output
    assert notebook.output_mime_types(check_cell) == ["application/vnd.jupyter.stdout"], "the check wrote to stderr"
    assert not notebook.tracebacks(), f"a traceback is shown: {notebook.tracebacks()[0]}"
