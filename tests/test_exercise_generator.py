"""exercises/ is generated from solutions/: the generator, and the repository kept in sync."""

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minigpt2.grading.core import exercises_for
from minigpt2.grading.generator import GeneratorError, is_stub_line, make_exercises, out_of_sync, strip_solutions


def test_region_becomes_an_indented_stub():
    source = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
    assert strip_solutions(source, "03.1", "Scores", "cell") == (
        "def f(x):\n    y = 1\n"
        '    raise NotImplementedError("Exercise 03.1 (Scores): replace this line with your code")'
    )


@pytest.mark.parametrize(
    "source, problem",
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another"),
    ],
)
def test_malformed_regions_are_errors(source, problem):
    with pytest.raises(GeneratorError, match=problem):
        strip_solutions(source, "03.1", "Scores", "cell")


def test_a_region_needs_an_exercise_heading():
    nb = new_notebook(cells=[new_code_cell("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")])
    with pytest.raises(GeneratorError, match="Exercise NN.K"):
        make_exercises(nb)


def test_outputs_are_cleared_and_the_solution_kept_in_the_source():
    solution = new_notebook(
        cells=[
            new_markdown_cell("### Exercise 01.2 — Merge a pair (★★☆)"),
            new_code_cell("def merge():\n    # BEGIN SOLUTION\n    return 42\n    # END SOLUTION", execution_count=3),
        ]
    )
    solution.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    exercise = make_exercises(solution)
    assert exercise.cells[1].outputs == [] and exercise.cells[1].execution_count is None
    assert "Exercise 01.2 (Merge a pair)" in exercise.cells[1].source and "42" not in exercise.cells[1].source
    assert "42" in solution.cells[1].source


def test_a_chinese_heading_gives_a_chinese_stub_the_grader_still_knows():
    solution = new_notebook(
        cells=[
            new_markdown_cell("### 练习 03.2 — 因果掩码（★★☆，2 分）\n\n提示……"),
            new_code_cell("def mask(T):\n    # BEGIN SOLUTION\n    return 42\n    # END SOLUTION"),
        ]
    )
    stub = make_exercises(solution).cells[1].source.splitlines()[1]
    assert stub == '    raise NotImplementedError("练习 03.2（因果掩码）：请把这一行换成你的代码")'
    assert is_stub_line(stub)
    assert not is_stub_line('raise NotImplementedError("练习 03.2（因果掩码）：还没写")')


def test_exercises_folder_is_in_sync_with_solutions(root):
    problems = out_of_sync(root / "solutions", root / "exercises")
    assert problems == [], "\n".join(problems) + "\nRun `minigpt2 exercises` to regenerate."


def test_every_solutions_notebook_checks_every_registered_exercise(root):
    for path in sorted((root / "solutions").glob("*.ipynb")):
        lesson = path.name[:2]
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        checked = re.findall(r'check\("(\d\d\.\d+)"', code)
        registered = [ex.id for ex in exercises_for(lesson)]
        assert registered, f"{path.name}: lesson {lesson} registers no exercises"
        assert checked == registered, f"{path.name}: check cells {checked} but registered exercises {registered}"
        assert code.count("# BEGIN SOLUTION") >= len(registered)
