"""What a learner does with an attention widget, step by step, each step checked and screenshotted.

Used on the lessons' widgets and on the test's own fixed notebook (test_widget_harness.py),
so that the same steps are shown to fail on a widget that no longer redraws.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab_ui import AttentionWidgetView, Picture, is_png

from minigpt2.viz import display_token

MIN_HEATMAP_PX = 100


def controls_and_heatmap_render(view: AttentionWidgetView, label: str) -> list[Picture]:
    """The layer and head selectors, the text box and a real PNG heatmap are on screen."""
    for name in ("layer", "head"):
        assert view.dropdown(name).is_visible(), f"{label}: the {name} selector is not shown"
        assert view.options(name), f"{label}: the {name} selector has no options"
    assert view.text_box.is_visible(), f"{label}: the text box is not shown"
    pictures = view.pictures()
    for picture in pictures:
        assert is_png(picture), f"{label}: a picture of the widget is not a PNG image"
        assert min(picture.size) >= MIN_HEATMAP_PX, f"{label}: a picture of the widget is only {picture.size} pixels"
    loaded = "imgs => imgs.every(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 0)"
    assert view.images.evaluate_all(loaded), (
        f"{label}: a picture did not load or has no size on the page")
    view.notebook.screenshot(f"{label} first heatmap", view.root, pictures)
    return pictures


def choosing(view: AttentionWidgetView, control: str, before: list[Picture], label: str,
             timeout_s: float = 30) -> list[Picture]:
    """Pick another value in the ``control`` selector ("head" or "layer"); every picture must change.
    (AttentionWidget turns its head selector off in the all-heads grid: then switch to one head first.)"""
    if view.dropdown(control).is_disabled():
        view.root.locator(".widget-toggle-button", has_text=view.notebook.word("one head")).click()
        before = view.wait_for_new_pictures(before, "switching to the one-head view", timeout_s)
        assert view.dropdown(control).is_enabled(), f"{label}: the {control} selector stays disabled"
    options = view.options(control)
    current = view.selected(control)
    assert len(options) > 1, f"{label}: the {control} selector offers only {options}"
    target = next(o for o in reversed(options) if o != current)
    view.select(control, target)
    after = view.wait_for_new_pictures(before, f"choosing {control} {target}", timeout_s)
    view.wait_for_message(view.status_naming(control, target))
    view.notebook.screenshot(f"{label} {control} {target}", view.root, after)
    return after


def typing(view: AttentionWidgetView, text: str, tokens: Sequence[str], before: list[Picture], label: str,
           timeout_s: float = 60) -> list[Picture]:
    """Type ``text``: every picture is redrawn, for its ``tokens`` (the widget reports their number;
    the explorer also lists them in its token selector)."""
    view.type_text(text)
    after = view.wait_for_new_pictures(before, "typing a new text", timeout_s)
    view.wait_for_message(view.status_start(len(tokens)))
    if view.dropdown("token").count():
        expected = [f"{i}: {display_token(piece, max_len=24)}" for i, piece in enumerate(tokens)]
        view.wait_for_options("token", expected)
    view.notebook.screenshot(f"{label} new text", view.root, after)
    return after
