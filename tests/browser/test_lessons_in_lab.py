"""Lessons 03, 04 and 10 in JupyterLab, the way a learner meets them, and lesson 03 in Chinese
(notebooks/zh/): run every cell from the Run menu, then use each attention widget the lesson
shows — its heatmap appears, another head and another layer redraw it, a new text brings its own
tokens. Screenshots of every step land in test-artifacts/browser/<test>/.

A lesson whose notebook does not exist yet, or does not show its widget yet, is skipped
with the reason.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import pytest
from lab_server import ROOT
from widget_steps import choosing, controls_and_heatmap_render, typing

from minigpt2.tokenizer import BPETokenizer, gpt2_tokenizer
from minigpt2.viz import display_token

# Short texts every lesson's model can read (they fit a small block_size and use only
# characters of Tiny Shakespeare); two, so that one differs in length from the lesson's own.
NEW_TEXTS = ("To be, or not", "O Romeo, Romeo!")


@dataclass(frozen=True)
class Lesson:
    path: str
    widget: str  # the minigpt2.viz class the lesson shows

    @property
    def name(self) -> str:  # 03_attention, zh_03_attention
        return self.path.removeprefix("notebooks/").removesuffix(".ipynb").replace("/", "_")


LESSONS = [
    Lesson("notebooks/03_attention.ipynb", "AttentionWidget"),
    Lesson("notebooks/04_multi_head_attention.ipynb", "AttentionWidget"),
    Lesson("notebooks/10_attention_explorer.ipynb", "AttentionExplorer"),
    Lesson("notebooks/zh/03_attention.ipynb", "AttentionWidget"),  # the English code, Chinese prose and labels
]


def lesson_or_skip(lesson: Lesson) -> None:
    path = ROOT / lesson.path
    if not path.exists():
        pytest.skip(f"{lesson.path} does not exist yet")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    if not any(lesson.widget in "".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"):
        pytest.skip(f"{lesson.path} does not show {lesson.widget} yet")


@functools.cache
def gpt2() -> BPETokenizer:
    return gpt2_tokenizer()


TOKENIZERS = {  # the lessons' tokenizers: text -> its token pieces
    "characters": list,
    "GPT-2 BPE": lambda text: [gpt2().decode([i]) for i in gpt2().encode(text)],
}


def lessons_tokenizer(text: str, n_tokens: int, token_options: list[str]):
    """Which tokenizer the widget uses, told from its first text and what it shows for it:
    the explorer's token list, or the widget's token count."""
    for pieces in TOKENIZERS.values():
        tokens = pieces(text)
        listed = [f"{i}: {display_token(p, max_len=24)}" for i, p in enumerate(tokens)]
        if (token_options == listed) if token_options else len(tokens) == n_tokens:
            return pieces
    raise AssertionError(f"the widget shows {n_tokens} tokens for {text!r}, which fits none of {list(TOKENIZERS)}")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_the_lessons_widgets_draw_and_follow_head_layer_and_text(tab, lesson):
    lesson_or_skip(lesson)
    notebook = tab.open(lesson.path)
    notebook.run_all()
    notebook.screenshot("ran all cells")
    use_every_widget(notebook)


def use_every_widget(notebook) -> None:
    """On each widget: the first heatmap, another head, another layer (where there are several),
    a new text (where the text can change). At least one widget must take a new text."""
    typed = 0
    for number, view in enumerate(notebook.attention_widgets(), start=1):
        label = f"widget {number}"
        pictures = controls_and_heatmap_render(view, label)
        text = view.text_box.input_value()
        n_tokens = int(view.wait_for_message(view.status_start()).split()[0])
        pieces = lessons_tokenizer(text, n_tokens, view.options("token") if view.dropdown("token").count() else [])
        for control in ("head", "layer"):
            if len(view.options(control)) > 1:
                pictures = choosing(view, control, pictures, label)
        if view.text_box.is_editable():
            new_text = next(t for t in NEW_TEXTS if len(pieces(t)) != n_tokens)
            typing(view, new_text, pieces(new_text), pictures, label)
            typed += 1
    assert typed, f"{notebook.name}: no widget lets the learner type a text of their own"
