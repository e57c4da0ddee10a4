"""`minigpt2 grade`: what the learner's notebook does becomes rows and notes, never a grader traceback,
and the learner's file is never modified."""

import json
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minigpt2.grading.grader import GradingError, format_table, grade_notebook, read_notebook

pytestmark = pytest.mark.slow


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minigpt2", *args], capture_output=True, text=True, timeout=300)


def test_solutions_score_full_marks_and_exit_0(root):
    done = run_cli("grade", str(root / "solutions" / "00_welcome.ipynb"), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert report["score"] == report["max_score"] == 4
    assert all(row["passed"] for row in report["exercises"])


def test_untouched_exercises_score_zero_not_attempted_and_exit_1(root):
    done = run_cli("grade", str(root / "exercises" / "00_welcome.ipynb"))
    assert done.returncode == 1, done.stderr
    assert "Total: 0/4" in done.stdout
    assert done.stdout.count("not attempted") == 3
    assert "Traceback" not in done.stdout + done.stderr


def test_everything_a_learner_can_break_becomes_a_row(tmp_path):
    """One notebook: an exception, a syntax error, a function that never returns, a top-level
    cell that never returns, and no check cells at all."""
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        cells=[
            new_markdown_cell("# my attempt"),
            new_code_cell("import torch"),
            new_code_cell("def utf8_length(text):\n    return len(text) / 0"),
            new_code_cell("def count_linear_params(n_in, n_out, bias=True)\n    return 0"),
            new_code_cell("def softmax(x):\n    while True:\n        pass"),
            new_code_cell("while True:\n    pass"),
        ],
    )
    path = tmp_path / "00_welcome.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    start = time.perf_counter()
    report = grade_notebook(path, cell_timeout=5)
    assert time.perf_counter() - start < 120
    rows = {r.id: r for r in report.results}
    assert rows["00.1"].status == "failed" and "ZeroDivisionError" in rows["00.1"].message
    assert rows["00.2"].status == "missing" and "count_linear_params" in rows["00.2"].message
    assert rows["00.3"].status == "timed out" and "loop" in rows["00.3"].message
    assert report.score == 0
    notes = " ".join(report.notes)
    assert "SyntaxError" in notes
    assert "cell 5 (`while True:`) ran for more than 5 s and was stopped" in notes
    assert path.read_bytes() == before
    assert "00.3" in format_table(report)


def test_edited_check_cells_cannot_change_the_score(root, tmp_path):
    nb = read_notebook(root / "solutions" / "00_welcome.ipynb")
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("check("):
            cell.source = 'print("✅ all passed")'
    # and a wrong softmax (over the whole tensor)
    for cell in nb.cells:
        if "def softmax" in cell.source:
            cell.source = "def softmax(x):\n    e = (x - x.max()).exp()\n    return e / e.sum()"
    path = tmp_path / "00_welcome.ipynb"
    nbformat.write(nb, path)
    report = grade_notebook(path)
    assert report.score == 2 and report.max_score == 4
    softmax_row = [r for r in report.results if r.id == "00.3"][0]
    assert "sum over dim=-1" in softmax_row.message


def test_not_json_is_a_clear_error_exit_2(tmp_path):
    path = tmp_path / "00_welcome.ipynb"
    path.write_text('{"cells": [ oops', encoding="utf-8")
    with pytest.raises(GradingError, match="line 1"):
        grade_notebook(path)
    done = run_cli("grade", str(path), "--json")
    assert done.returncode == 2
    assert "not a valid notebook" in json.loads(done.stdout)["error"]
    assert path.read_text(encoding="utf-8") == '{"cells": [ oops'


def test_other_ungradable_inputs(tmp_path):
    with pytest.raises(GradingError, match="does not exist"):
        grade_notebook(tmp_path / "00_missing.ipynb")
    plain = tmp_path / "00_list.ipynb"
    plain.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(GradingError, match="not a Jupyter notebook"):
        grade_notebook(plain)
    nameless = tmp_path / "homework.ipynb"
    nbformat.write(new_notebook(), nameless)
    with pytest.raises(GradingError, match="which lesson"):
        grade_notebook(nameless)
