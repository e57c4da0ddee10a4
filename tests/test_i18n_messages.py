"""The package's messages in Chinese (gettext, the zh_CN catalog): complete, current, and used by check(),
the grader (from a zh notebook's metadata, or MINIGPT2_LANG) and the CLI."""

import json
import os
import string
import subprocess
import sys
import unicodedata

import nbformat
import pytest
from babel.messages.pofile import read_po

from minigpt2.i18n import messages
from minigpt2.i18n.messages import _, catalog_path, ngettext, set_language, using_language


def has_chinese(text: str) -> bool:
    """Chinese characters or Chinese (full-width) punctuation."""
    return any(unicodedata.east_asian_width(c) in "WF" for c in text)


def fields(text: str) -> list[tuple]:
    """The placeholders of a message: (name, format spec, conversion), as str.format reads them."""
    return sorted((name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None)


def entries(path):
    with open(path, "rb") as f:
        return {m.id: m for m in read_po(f) if m.id}


@pytest.fixture
def english():
    with using_language("en"):
        yield


@pytest.fixture
def chinese():
    with using_language("zh"):
        yield


def test_every_message_has_a_chinese_translation_with_the_same_placeholders():
    template, catalog = entries(messages.TEMPLATE), entries(catalog_path("zh_CN"))
    assert len(template) > 400  # the grader's, the checks', the CLI's, doctor's and the widgets' messages
    assert set(template) <= set(catalog), (
        f"not in the zh_CN catalog: {sorted(set(template) - set(catalog), key=str)[:5]}")
    for msgid in template:
        entry = catalog[msgid]
        english = [msgid] if isinstance(msgid, str) else list(msgid)
        chinese = [entry.string] if isinstance(msgid, str) else list(entry.string)
        assert not entry.fuzzy, f"fuzzy (a guess Babel made, not a translation): {msgid!r}"
        assert all(text.strip() for text in chinese), f"no translation for {msgid!r}"
        for text in chinese:
            assert fields(text) == fields(english[-1]), f"placeholders differ: {msgid!r} -> {text!r}"
            assert has_chinese(text) or text == english[0], f"not Chinese: {msgid!r} -> {text!r}"


def test_the_template_is_up_to_date_with_the_sources(tmp_path):
    fresh = tmp_path / "minigpt2.pot"
    messages.extract(fresh)
    now, committed = set(entries(fresh)), set(entries(messages.TEMPLATE))
    assert now == committed, ("the sources' messages changed: run `make messages` and translate the new ones. "
                              f"New: {sorted(now - committed, key=str)[:5]}; "
                              f"gone: {sorted(committed - now, key=str)[:5]}")


def test_the_language_comes_from_set_language_then_the_environment(monkeypatch):
    monkeypatch.setenv("MINIGPT2_LANG", "zh_CN.UTF-8")
    try:
        assert set_language(None) == "zh" and has_chinese(_("not installed"))
        assert set_language("en") == "en" and _("not installed") == "not installed"
        monkeypatch.setenv("MINIGPT2_LANG", "fr")
        assert set_language(None) == "en"
        with using_language("zh"):
            assert _("not installed") == "未安装"
            assert ngettext("{n} group", "{n} groups", 3).format(n=3) == "3 个组"
        assert ngettext("{n} group", "{n} groups", 1).format(n=1) == "1 group"
    finally:
        set_language(None)


def test_in_jupyterlab_a_zh_notebook_speaks_chinese_by_its_metadata(root, monkeypatch):
    """JupyterLab names the notebook in its kernel's JPY_SESSION_NAME: the zh exercises need no code of their own."""
    monkeypatch.delenv("MINIGPT2_LANG", raising=False)
    set_language(None)
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "exercises" / "zh" / "03_attention.ipynb"))
    assert messages.current_language() == "zh" and _("not installed") == "未安装"
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "exercises" / "03_attention.ipynb"))  # English: no language
    assert messages.current_language() == "en"
    monkeypatch.setenv("MINIGPT2_LANG", "zh")
    assert messages.current_language() == "zh"
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "no_such_notebook.ipynb"))
    assert messages.current_language() == "zh"


def wrong_attention_scores(q, k):
    return q @ k.transpose(-2, -1)  # the √d is missing


def test_check_speaks_the_chosen_language(capsys, chinese):
    from minigpt2.grading import check

    check("03.1", wrong_attention_scores)
    out = capsys.readouterr().out
    assert out.startswith("❌ 练习 03.1 — 缩放的注意力分数：0/1 分。"), out
    assert "缺少 √d" in out


def test_check_stays_english_by_default(capsys, english):
    from minigpt2.grading import check

    check("03.1", wrong_attention_scores)
    out = capsys.readouterr().out
    assert out.startswith("❌ Exercise 03.1 — Scaled attention scores: 0/1 points. "
                          "missing √d: you return q·kᵀ unscaled."), out


def test_a_zh_notebook_is_graded_in_chinese_in_the_grader_and_in_its_kernel(root, tmp_path, english):
    """No MINIGPT2_LANG: the notebook's metadata says zh. 03.1 raises in the learner's kernel, so the line
    number in its message was written by the kernel; the other exercises are untouched stubs."""
    from minigpt2.grading.grader import format_table, grade_notebook

    nb = nbformat.read(str(root / "exercises" / "zh" / "03_attention.ipynb"), as_version=4)
    assert nb.metadata["minigpt2"]["language"] == "zh"
    stub = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("def attention_scores"))
    stub.source = stub.source.replace(stub.source.splitlines()[-1], '    raise ValueError("boom")')
    path = tmp_path / "03_attention.ipynb"
    nbformat.write(nb, str(path))

    report = grade_notebook(path)
    rows = {r.id: r for r in report.results}
    assert report.language == "zh" and report.score == 0
    assert rows["03.1"].status == "failed" and rows["03.1"].title == "缩放的注意力分数"
    assert rows["03.1"].message.startswith("`attention_scores` 抛出了 ValueError：boom（第 2 行"), rows["03.1"].message
    for id in ("03.2", "03.3", "03.4"):
        assert rows[id].status == "not attempted"
        assert rows[id].message == "还没有作答：把 `raise NotImplementedError` 这一行换成你的代码。"
    table = format_table(report)
    assert "正在评分" in table and "练习" in table and "得分" in table and "总分：0/6" in table, table


def test_grade_json_speaks_chinese_with_minigpt2_lang(root):
    env = {**os.environ, "MINIGPT2_LANG": "zh"}
    done = subprocess.run([sys.executable, "-m", "minigpt2", "grade", "--json", "solutions/00_welcome.ipynb"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["language"] == "zh" and report["score"] == report["max_score"]
    assert [r["title"] for r in report["exercises"]] == ["字符串的字节数", "线性层的参数", "数值稳定的 softmax"]
    assert all(r["status"] == "passed" and r["message"] == "通过" for r in report["exercises"])

    done = subprocess.run([sys.executable, "-m", "minigpt2", "grade", "no_such_notebook.ipynb"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "minigpt2 grade: no_such_notebook.ipynb 不存在。"


def test_the_widgets_label_their_controls_in_chinese(chinese):
    import numpy as np

    from minigpt2.viz import AttentionWidget

    weights = [np.full((2, 3, 3), 1 / 3)]
    w = AttentionWidget(weights, tokens=["a", "b", "c"])
    assert [c.description for c in (w.layer, w.head, w.view, w.text)] == ["层", "头", "视图", "文本"]
    assert w.view.options == (("单个头", "one head"), ("所有头", "all heads"))  # (label, value): values stay English
    assert w.view.value == "one head"
    assert w.message.value.startswith("3 个词元 · 第 0 层，头 0")


def test_no_function_that_translates_hides_underscore(root):
    """`_, x = f()` in a function makes `_` local to all of it: its `_("…")` calls then fail (a check
    would report 'the check itself failed'). Modules that translate use another throwaway name."""
    import ast

    offenders = []
    for path in sorted((root / "minigpt2").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.ImportFrom) and n.module == "minigpt2.i18n.messages"
                   and any(a.name == "_" for a in n.names) for n in tree.body):
            continue
        comprehensions = {id(n) for c in ast.walk(tree) if isinstance(c, (ast.ListComp, ast.SetComp, ast.DictComp,
                                                                           ast.GeneratorExp))
                          for g in c.generators for n in ast.walk(g.target)}
        offenders += [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(tree)
                      if isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store)
                      and id(n) not in comprehensions]
    assert not offenders, offenders
