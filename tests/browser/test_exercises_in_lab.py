"""An exercises notebook in JupyterLab: a check cell run on an untouched stub shows the friendly
"not attempted" line (⏳), not a traceback."""

from __future__ import annotations

import re

from lab_server import ROOT


def exercises_notebook() -> str:
    """exercises/03_*.ipynb (attention) once it exists, else the welcome exercises."""
    found = sorted((ROOT / "exercises").glob("03_*.ipynb"))
    return f"exercises/{found[0].name if found else '00_welcome.ipynb'}"


def test_a_check_on_an_untouched_stub_says_not_attempted(tab):
    notebook = tab.open(exercises_notebook())
    sources = notebook.cell_sources()
    check_cell = next(i for i, source in enumerate(sources) if source.startswith("check("))
    exercise_id = re.match(r'check\("([\d.]+)"', sources[check_cell]).group(1)
    assert "NotImplementedError" in sources[check_cell - 1], ("the cell above the first check should be "
                                                              "an untouched stub")

    notebook.run_cells_through(check_cell)
    output = notebook.output_text(check_cell)
    notebook.screenshot(f"check {exercise_id} not attempted", notebook.cells().nth(check_cell))

    assert output.startswith(f"⏳ Exercise {exercise_id}"), f"the check printed {output!r}"
    assert "not attempted yet" in output and "0/" in output
    assert notebook.output_mime_types(check_cell) == ["application/vnd.jupyter.stdout"], "the check wrote to stderr"
    assert not notebook.tracebacks(), f"a traceback is shown: {notebook.tracebacks()[0]}"
