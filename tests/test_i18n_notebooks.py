"""The Chinese course from one source: catalogs (translations/zh/…/NN_x.po) + the English notebooks give
notebooks/zh/, solutions/zh/ and exercises/zh/ (`minigpt2 translate`), kept in sync and complete."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minigpt2.cli import main as cli
from minigpt2.i18n.notebooks import (
    SOURCES,
    TranslationError,
    catalog_path,
    catalogs,
    coverage,
    expected_twins,
    import_text,
    out_of_date,
    read_catalog,
    relocate,
    rewrite_links,
    write_template,
)

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = [(kind, path.name) for kind in SOURCES for path in sorted((ROOT / kind).glob("*.ipynb"))]


def lesson(prose: list[str], code: str = "x = 1\nx") -> nbformat.NotebookNode:
    """A small executed notebook: the prose cells, then a code cell with an output and widget state."""
    nb = new_notebook(cells=[new_markdown_cell(text) for text in prose] + [new_code_cell(code, execution_count=7)])
    nb.cells[-1].outputs = [new_output("execute_result", {"text/plain": "1"}, execution_count=7)]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell{index}"
    return nb


def translate_by_text(nb_path: Path, tmp_path: Path, translate: dict[str, str], kind: str = "notebooks") -> Path:
    """The translator's round trip: the template, each block's text replaced, imported into the catalog."""
    text = tmp_path / "work.txt"
    write_template(nb_path, text)
    blocks = text.read_text(encoding="utf-8")
    for english, chinese in translate.items():
        assert english in blocks
        blocks = blocks.replace(english, chinese)
    text.write_text(blocks, encoding="utf-8")
    po = catalog_path(tmp_path, kind, nb_path.name)
    import_text(nb_path, text, po)
    return po


def course(tmp_path: Path) -> Path:
    """A course of one lesson and its exercises, both translated."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "solutions").mkdir()
    nbformat.write(lesson(["# Attention\n\nDo [the exercises](../exercises/03_attention.ipynb).",
                           'A "quoted" \\ backslash,\n\n![a picture](../docs/heads.png)']),
                   tmp_path / "notebooks" / "03_attention.ipynb")
    solution = lesson(["### Exercise 03.1 — Scores (★☆☆, 1 point)\n\n"
                       "Read [the lesson](../notebooks/03_attention.ipynb)."],
                      code="def scores(q, k):\n    # BEGIN SOLUTION\n    return q @ k.T\n    # END SOLUTION")
    nbformat.write(solution, tmp_path / "solutions" / "03_attention.ipynb")
    translate_by_text(tmp_path / "notebooks" / "03_attention.ipynb", tmp_path,
                      {"# Attention": "# 注意力", "Do [the exercises]": "去做[练习]",
                       'A "quoted" \\ backslash,': '一个“引号” "quoted" \\ 反斜杠，', "a picture": "一张图"})
    translate_by_text(tmp_path / "solutions" / "03_attention.ipynb", tmp_path,
                      {"Exercise 03.1 — Scores (★☆☆, 1 point)": "练习 03.1 — 分数（★☆☆，1 分）",
                       "Read [the lesson]": "先读[课程]"},
                      kind="solutions")
    return tmp_path


def test_the_translators_text_round_trips_through_the_catalog(tmp_path):
    root = course(tmp_path)
    english = nbformat.read(root / "notebooks" / "03_attention.ipynb", as_version=4)
    catalog = read_catalog(catalog_path(root, "notebooks", "03_attention.ipynb"))
    assert list(catalog) == ["cell0", "cell1"]
    assert [source for source, _ in catalog.values()] == [english.cells[0].source, english.cells[1].source]
    assert catalog["cell1"][1] == '一个“引号” "quoted" \\ 反斜杠，\n\n![一张图](../docs/heads.png)'
    assert coverage(english, catalog).problems("03") == []


def test_a_twin_has_the_translation_and_everything_else_of_the_english_run(tmp_path):
    root = course(tmp_path)
    assert cli(["translate", "--root", str(root)]) == 0
    english = nbformat.read(root / "notebooks" / "03_attention.ipynb", as_version=4)
    twin = nbformat.read(root / "notebooks" / "zh" / "03_attention.ipynb", as_version=4)
    assert twin.cells[0].source == "# 注意力\n\n去做[练习](../../exercises/zh/03_attention.ipynb)."
    assert twin.cells[1].source.endswith("![一张图](../../docs/heads.png)")
    assert twin.cells[2] == english.cells[2]  # code, outputs, execution count
    assert twin.metadata.widgets == english.metadata.widgets
    assert twin.metadata.minigpt2.language == "zh"
    exercises = nbformat.read(root / "exercises" / "zh" / "03_attention.ipynb", as_version=4)
    assert exercises.cells[0].source.startswith("### 练习 03.1 — 分数（★☆☆，1 分）\n\n"
                                                "先读[课程](../../notebooks/zh/03_attention.ipynb)")
    assert exercises.cells[1].source.endswith('raise NotImplementedError("练习 03.1（分数）：请把这一行换成你的代码")')
    assert exercises.cells[1].outputs == [] and exercises.metadata.minigpt2.language == "zh"
    assert cli(["translate", "--root", str(root), "--check"]) == 0


def test_stale_and_missing_translations_are_errors_naming_notebook_and_cells(tmp_path, capsys):
    root = course(tmp_path)
    path = root / "notebooks" / "03_attention.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source += " Now."  # the English changed after the translation
    nb.cells.insert(1, new_markdown_cell("A new cell.", id="newcell"))  # never translated
    nbformat.write(nb, path)
    with pytest.raises(TranslationError) as err:
        expected_twins(root)
    assert str(err.value) == ("notebooks/03_attention.ipynb: no translation for cells: newcell\n"
                              "notebooks/03_attention.ipynb: the English text changed since these cells were "
                              "translated: cell0")
    assert cli(["translate", "--root", str(root)]) == 2
    assert "newcell" in capsys.readouterr().err and not (root / "notebooks" / "zh").exists()
    # --partial writes them, in English, and says so
    assert cli(["translate", "--root", str(root), "--partial"]) == 0
    assert "left in English: notebooks/03_attention.ipynb: no translation for cells: newcell" in capsys.readouterr().out
    twin = nbformat.read(root / "notebooks" / "zh" / "03_attention.ipynb", as_version=4)
    english_links_relocated = nb.cells[0].source.replace("../exercises/", "../../exercises/zh/")
    assert [c.source for c in twin.cells[:3]] == [english_links_relocated, "A new cell.",
                                                  '一个“引号” "quoted" \\ 反斜杠，\n\n![一张图](../../docs/heads.png)']
    # a cell the notebook lost is reported too
    del nb.cells[2]
    nbformat.write(nb, path)
    assert "the catalog has cells the notebook no longer has: cell1" in "\n".join(expected_twins(root, partial=True)[1])


def test_a_translated_exercise_heading_must_keep_its_number(tmp_path, capsys):
    root = course(tmp_path)
    po = catalog_path(root, "solutions", "03_attention.ipynb")
    po.write_text(po.read_text(encoding="utf-8").replace("练习 03.1", "练习 03.2"), encoding="utf-8")
    assert cli(["translate", "--root", str(root)]) == 2
    assert ("solutions/03_attention.ipynb: the translation's exercise headings number 03.2, the English ones 03.1"
            in capsys.readouterr().err)


def test_a_solution_the_generator_refuses_is_an_error_not_a_traceback(tmp_path, capsys):
    root = course(tmp_path)
    po = catalog_path(root, "solutions", "03_attention.ipynb")
    po.write_text(po.read_text(encoding="utf-8").replace("### 练习 03.1 — ", "### "), encoding="utf-8")
    assert cli(["translate", "--root", str(root), "--partial"]) == 2
    assert "a solution region with no '### Exercise NN.K — Title' heading above it" in capsys.readouterr().err


def test_translate_outside_the_course_says_where_to_run_it(tmp_path, capsys):
    assert cli(["translate", "--root", str(tmp_path)]) == 2
    assert "run this in the course's repository, or name it with --root" in capsys.readouterr().err


def test_a_twin_left_without_catalog_is_out_of_date_and_removed(tmp_path, capsys):
    root = course(tmp_path)
    assert cli(["translate", "--root", str(root)]) == 0
    catalog_path(root, "solutions", "03_attention.ipynb").unlink()
    assert out_of_date(root) == ["notebooks/zh/03_attention.ipynb differs from what its English notebook and "
                                 "catalog give",
                                 "solutions/zh/03_attention.ipynb has no catalog",
                                 "exercises/zh/03_attention.ipynb has no catalog"]
    assert cli(["translate", "--root", str(root)]) == 0
    assert not (root / "solutions" / "zh" / "03_attention.ipynb").exists()
    # ...and the lesson's link to the exercises now leads to the English ones, which exist
    twin = nbformat.read(root / "notebooks" / "zh" / "03_attention.ipynb", as_version=4)
    assert "(../../exercises/03_attention.ipynb)" in twin.cells[0].source


@pytest.mark.parametrize("target, kind, expected", [
    ("../exercises/03_attention.ipynb", "notebooks", "../../exercises/zh/03_attention.ipynb"),
    ("04_multi_head_attention.ipynb#the-heads", "notebooks", "../04_multi_head_attention.ipynb#the-heads"),  # no twin
    ("03_attention.ipynb", "solutions", "03_attention.ipynb"),
    ("../docs/x.png", "notebooks", "../../docs/x.png"),
    ("../README.md?plain=1", "solutions", "../../README.md?plain=1"),
    ("https://example.org/a.png", "notebooks", "https://example.org/a.png"),
    ("#section", "notebooks", "#section"),
    ("/abs/x.png", "notebooks", "/abs/x.png"),
])
def test_relative_links_resolve_from_the_zh_folder(target, kind, expected):
    twins = {"exercises/03_attention.ipynb", "solutions/03_attention.ipynb"}
    assert relocate(target, kind, "zh", twins.__contains__) == expected


def test_links_are_found_in_markdown_html_and_references_but_not_in_code_blocks():
    text = ('See ![p](../docs/x.png "title") and <img src="../docs/y.png" width=300>, '
            '<a href=\'../README.md\'>it</a>.\n'
            "```\n[not a link](../docs/x.png)\n```\n[ref]: ../docs/z.png\n"
            "~~~\n![no](../docs/x.png)\n~~~\n[after](../docs/w.png)")
    assert rewrite_links(text, "notebooks", "zh", lambda path: False) == (
        'See ![p](../../docs/x.png "title") and <img src="../../docs/y.png" width=300>, '
        '<a href=\'../../README.md\'>it</a>.\n'
        "```\n[not a link](../docs/x.png)\n```\n[ref]: ../../docs/z.png\n"
        "~~~\n![no](../docs/x.png)\n~~~\n[after](../../docs/w.png)")


def test_the_committed_zh_notebooks_are_what_minigpt2_translate_writes():
    problems = out_of_date(ROOT)
    assert problems == [], "\n".join(problems) + "\nRun `minigpt2 translate` to regenerate them."


def test_every_relative_link_of_the_zh_notebooks_resolves():
    broken = []
    for folder in ("notebooks", "solutions", "exercises"):
        for path in sorted((ROOT / folder / "zh").glob("*.ipynb")):
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
                if cell["cell_type"] != "markdown":
                    continue
                for target in re.findall(r"\]\(\s*<?([^)\s>]+)|(?:src|href)\s*=\s*[\"']([^\"']+)",
                                         "".join(cell["source"])):
                    target = re.sub(r"[#?].*", "", target[0] or target[1])
                    if target and not re.match(r"[a-z]+:|/", target) and not (path.parent / target).exists():
                        broken.append(f"{path.relative_to(ROOT)}, cell {cell['id']}: {target}")
    assert broken == []


@pytest.mark.parametrize("kind, name", catalogs(ROOT), ids=lambda x: x)
def test_each_catalog_translates_every_prose_cell_of_the_current_english(kind, name):
    english = nbformat.read(ROOT / kind / name, as_version=4)
    problems = coverage(english, read_catalog(catalog_path(ROOT, kind, name))).problems(f"{kind}/{name}")
    assert problems == [], "\n".join(problems)


def test_every_english_notebook_has_a_catalog():
    assert len(ENGLISH) == 24
    missing = [str(catalog_path(ROOT, kind, name).relative_to(ROOT)) for kind, name in ENGLISH
               if not catalog_path(ROOT, kind, name).is_file()]
    assert missing == [], f"{len(missing)} notebooks have no translation yet: {', '.join(missing)}"


def test_nbval_does_not_collect_the_zh_notebooks():
    assert (ROOT / "notebooks" / "zh").is_dir(), "no zh notebooks to leave out: run `minigpt2 translate`"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "notebooks/zh", "solutions/zh"],
                          cwd=ROOT, capture_output=True, text=True)
    assert "/zh/" not in done.stdout and done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, (
        done.stdout + done.stderr)


def test_the_chinese_readme_is_linked_from_the_readme_and_its_links_resolve():
    assert "[README.zh.md](README.zh.md)" in (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ")[0]
    text = (ROOT / "README.zh.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert sum(t.startswith("notebooks/zh/") for t in targets) == 12, "the chapter map links every zh lesson"
    assert [t for t in targets if not (ROOT / t).exists()] == []
