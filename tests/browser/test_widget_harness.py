"""The browser harness on a notebook of its own: AttentionWidget and AttentionExplorer over a
made-up source whose tokens are the words of the text and whose weights differ by layer
and head. Here every expectation is known exactly, and a widget broken on purpose
(its redraw patched out in the kernel) must be caught by the same steps the lessons use.
"""

from __future__ import annotations

import nbformat
import pytest
from lab_tabs import LabTab, off_loopback, visit
from widget_steps import choosing, controls_and_heatmap_render, typing

WORDS_SOURCE = '''\
import numpy as np
from minigpt2.viz import AttentionExplorer, AttentionWidget


class Words:
    """A text's words are its tokens; head h of layer l looks about h + l words back."""

    def tokenize(self, text):
        pieces = text.split()
        return pieces, list(range(len(pieces)))

    def attention(self, ids):
        T = len(ids)
        query, key = np.arange(T)[:, None], np.arange(T)[None, :]
        layers = []
        for layer in range(2):
            heads = []
            for head in range(3):
                scores = -((query - key - (head + layer)) ** 2).astype(float)  # (T, T)
                scores[key > query] = -np.inf
                weights = np.exp(scores - scores.max(axis=1, keepdims=True))
                heads.append(weights / weights.sum(axis=1, keepdims=True))
            layers.append(np.stack(heads))  # (n_head, T, T)
        return layers
'''
TEXT = "the cat sat on the mat"
NEW_TEXT = "a dog ran to the park and back"
WIDGETS = {  # the notebook's widgets, in the order it shows them
    "widget": f"widget = AttentionWidget(Words(), text={TEXT!r})\nwidget",
    "explorer": f"explorer = AttentionExplorer(Words(), text={TEXT!r})\nexplorer",
    # Broken on purpose: the selectors still change, the picture does not.
    "broken": f"broken = AttentionWidget(Words(), text={TEXT!r})\nbroken.redraw = lambda: None\nbroken",
}


def write_notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)
    return path.name


@pytest.fixture(scope="module")
def harness(shared_tab, lab):
    """The harness notebook written into the served folder, opened and run once: its widgets by name."""
    name = write_notebook(lab.root_dir / "harness.ipynb", WORDS_SOURCE, *WIDGETS.values())
    with visit(shared_tab, "harness") as tab:
        notebook = tab.open(name)
        notebook.run_all()
        views = notebook.attention_widgets()
        assert len(views) == len(WIDGETS), f"expected {len(WIDGETS)} widgets on the page, found {len(views)}"
        yield dict(zip(WIDGETS, views))


@pytest.mark.parametrize("kind", ["widget", "explorer"])
def test_the_widget_draws_and_follows_head_layer_and_text(harness, kind):
    view = harness[kind]
    picture = controls_and_heatmap_render(view, kind)
    assert view.options("layer") == ["0", "1"] and view.options("head") == ["0", "1", "2"]
    assert view.message.startswith(f"{len(TEXT.split())} tokens")
    picture = choosing(view, "head", picture, kind)
    picture = choosing(view, "layer", picture, kind)
    typing(view, NEW_TEXT, NEW_TEXT.split(), picture, kind)


@pytest.mark.parametrize("kind", ["widget", "explorer"])
def test_the_pictures_are_shown_in_their_own_proportions(harness, kind):
    view = harness[kind]
    shown = view.images.evaluate_all(
        "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, "
        "i.getBoundingClientRect().height])")
    for natural_w, natural_h, w, h in shown:
        assert w / h == pytest.approx(natural_w / natural_h, rel=0.03), (
            f"{kind}: a {natural_w}×{natural_h} picture is shown squeezed to {w:.0f}×{h:.0f}")


def test_a_widget_that_no_longer_redraws_is_caught(harness):
    view = harness["broken"]
    picture = controls_and_heatmap_render(view, "broken")
    with pytest.raises(AssertionError, match="image did not change"):
        choosing(view, "head", picture, "broken", timeout_s=5)
    view.notebook.screenshot("broken head changed picture did not", view.root)
    assert [p.png for p in view.pictures()] == [p.png for p in picture]


def test_a_request_beyond_this_machine_is_noticed(browser):
    """The guard every tab ends with: a picture from another host (a CDN, say) is reported."""
    tab = LabTab(browser.new_page(), server=None)  # opens no notebook: needs no server
    try:
        with tab.page.expect_request("http://192.0.2.1/**"):  # TEST-NET-1: reserved, never routed
            tab.page.set_content('<img src="http://192.0.2.1/widget.png">', wait_until="domcontentloaded")
    finally:
        tab.page.close()
    assert off_loopback(tab.urls) == ["http://192.0.2.1/widget.png"]

