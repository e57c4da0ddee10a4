"""An ipywidgets control that redraws attention heatmaps as you change layer, head or text.

Built on ipywidgets and matplotlib only: each redraw renders a matplotlib figure to
PNG (Agg, no display needed) into an ``ipywidgets.Image``. Nothing loads from the
network, so it works offline in JupyterLab and can be driven headless in tests:
set ``widget.head.value = 3`` and ``widget.current_weights`` / ``widget.image.value``
follow.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from minigpt2.i18n.messages import _
from minigpt2.viz.heatmap import attention_grid, attention_heatmap, causal_blank, grid_figsize, heatmap_side
from minigpt2.viz.render import Frames, new_figure
from minigpt2.viz.sources import ModelAttention, as_source

ONE_HEAD, ALL_HEADS = "one head", "all heads"
DEFAULT_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak."


class AttentionWidget:
    """Layer and head selectors, a text box and a one-head / all-heads toggle over a heatmap.

    ``source`` is either a model source (see :mod:`minigpt2.viz.sources`; usually
    :meth:`from_model`) or fixed weights — a list over layers of ``(n_head, T, T)`` —
    with their ``tokens``. Display it as the last expression of a cell, or with
    ``display(widget)``.

    For tests and lessons: ``current_weights`` (what is drawn: ``(T, T)`` or
    ``(n_head, T, T)``), ``current_tokens`` (the token pieces), ``error`` (the message
    shown instead of a figure, or None).
    """

    _head_matters_in_grid = False  # in the all-heads view the head selector is switched off

    def __init__(self, source, *, tokens: Sequence[str] | None = None, text: str | None = None,
                 layer: int = 0, head: int = 0, view: str = ONE_HEAD):
        self.source = as_source(source, tokens)
        editable = getattr(self.source, "editable", True)
        if not editable:
            text = self.source.text
        elif text is None:
            text = DEFAULT_TEXT
        self.layer = widgets.Dropdown(options=[0], value=0, description=_("layer"))
        self.head = widgets.Dropdown(options=[0], value=0, description=_("head"))
        # (label, value): the label in the learner's language, the value always ONE_HEAD / ALL_HEADS
        self.view = widgets.ToggleButtons(options=[(_("one head"), ONE_HEAD), (_("all heads"), ALL_HEADS)], value=view,
                                          description=_("view"))
        self.text = widgets.Textarea(value=text, description=_("text"), continuous_update=False, disabled=not editable,
                                     layout=widgets.Layout(width="95%"))
        self.message = widgets.HTML()
        # flex-start: shown at its own size, not stretched to the width of the column
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.current_weights: np.ndarray | None = None
        self.current_tokens: list[str] | None = None
        self.current_ids: list[int] | None = None
        self.error: str | None = None
        self._layers: list[np.ndarray] = []
        self._pieces: list[str] = []
        self._frames: Frames | None = None  # the figure, redrawn by swapping its data
        self._frames_key: tuple | None = None  # what the figure was built for: view, tokens, heads
        self._heatmaps: list = []  # the figure's heatmap Axes, head by head
        self._title: Artist | None = None
        self._quiet = False
        self.ui = self._layout()
        self.text.observe(self._on_text, names="value")
        for control in (self.layer, self.head, self.view):
            control.observe(self._on_control, names="value")
        self._compute()
        with self._holding():
            self.layer.value = min(max(layer, 0), len(self.layer.options) - 1)
            self.head.value = min(max(head, 0), len(self.head.options) - 1)
        self.redraw()

    @classmethod
    def from_model(cls, model, tokenizer, text: str | None = None, **kwargs):
        """The widget on a model (``attention_weights``, ``config.block_size``) and its tokenizer."""
        return cls(ModelAttention(model, tokenizer), text=text, **kwargs)

    @property
    def figure(self) -> Figure | None:
        """The matplotlib figure behind the image (None while an error is shown)."""
        return None if self.error is not None or self._frames is None else self._frames.fig

    # ------------------------------------------------------------------ layout and display

    def _layout(self) -> widgets.Widget:
        controls = widgets.HBox([self.layer, self.head, self.view])
        return widgets.VBox([controls, self.text, self.message, self.image])

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.ui._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        state = self.error or (f"{len(self.current_tokens or [])} tokens, layer {self.layer.value}, head "
                               f"{self.head.value}")
        return f"{type(self).__name__}({state})"

    # ------------------------------------------------------------------ events

    @contextmanager
    def _holding(self):
        """Change controls without each change triggering a redraw."""
        self._quiet, was = True, self._quiet
        try:
            yield
        finally:
            self._quiet = was

    def _on_text(self, change) -> None:
        if self._quiet:
            return
        self._compute()
        self.redraw()

    def _on_control(self, change) -> None:
        if not self._quiet:
            self.redraw()

    # ------------------------------------------------------------------ computing and drawing

    def _compute(self) -> None:
        """Tokenize the text and compute every layer's weights; on failure, set ``error``."""
        self.error, self._layers, self.current_ids = None, [], None
        try:
            pieces, ids = self.source.tokenize(self.text.value)
        except Exception as err:  # shown in the widget instead of a traceback
            self.error = _("Could not tokenize this text: {err}").format(err=err)
            return
        if not ids:
            self.error = _("Type some text to see where its tokens look.")
            return
        limit = getattr(self.source, "max_tokens", None)
        if limit is not None and len(ids) > limit:
            self.error = _("This text is {n} tokens long, but the model reads at most {limit} tokens at a time (its "
                           "context, block_size). Shorten it by {excess} tokens.").format(
                n=len(ids), limit=limit, excess=len(ids) - limit)
            return
        try:
            layers = [np.asarray(w, dtype=np.float64) for w in self.source.attention(ids)]
        except Exception as err:  # shown in the widget instead of a traceback
            self.error = _("Could not compute the attention for this text: {type}: {err}").format(
                type=type(err).__name__, err=err)
            return
        shapes = {w.shape for w in layers}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[1:] != (len(ids), len(ids)):
            self.error = _("The source gave attention weights of shapes {shapes} for {n} tokens; it should give one "
                           "(n_head, {n}, {n}) array per layer.").format(shapes=sorted(shapes), n=len(ids))
            return
        self._layers, self.current_ids = layers, list(ids)
        self._pieces = list(pieces)
        self._fit_selectors(len(layers), layers[0].shape[0])

    def _fit_selectors(self, n_layer: int, n_head: int) -> None:
        with self._holding():
            for control, n in ((self.layer, n_layer), (self.head, n_head)):
                if len(control.options) != n:
                    value = min(control.value, n - 1)
                    control.options = list(range(n))
                    control.value = value

    def _show_error(self) -> None:
        self.message.value = f'<span style="color:#b00020">{html.escape(self.error)}</span>'
        self.image.layout.display = "none"
        self.current_weights = self.current_tokens = None

    def redraw(self) -> None:
        """Draw the current selection into the image (or show why there is nothing to draw)."""
        self.head.disabled = self.view.value == ALL_HEADS and not self._head_matters_in_grid
        if self.error is not None:
            self._show_error()
            return
        weights = self._layers[self.layer.value]  # (n_head, T, T)
        key = (self.view.value, tuple(self._pieces), weights.shape[0])
        if key != self._frames_key:
            fig = self._build(weights, self._pieces)
            self._frames, self._frames_key = Frames(fig, self._changing_artists()), key
        self._update(weights)
        self.image.value = self._frames.png()
        self.image.width = self._frames.css_width  # shown at half the PNG's pixels: sharp
        self.image.layout.display = None
        self.current_tokens = list(self._pieces)
        self.message.value = html.escape(self._status())

    def _status(self) -> str:
        where = (_("layer {layer}, head {head}") if self.view.value == ONE_HEAD else _("layer {layer}")).format(
            layer=self.layer.value, head=self.head.value)
        return _("{n} tokens · {where}").format(n=len(self._pieces), where=where)

    def _build(self, weights: np.ndarray, pieces: list[str]) -> Figure:
        """A new figure for this view and these tokens; later redraws only swap its data."""
        n_head, T = weights.shape[:2]
        if self.view.value == ALL_HEADS:
            fig = attention_grid(weights, pieces, fig=new_figure(grid_figsize(n_head, T)))
            self._heatmaps = fig.axes[:n_head]  # the grid's cells, head by head
            self._title = fig.suptitle("layer", fontsize=10)
        else:
            side = heatmap_side(T)
            fig = new_figure((side + 0.8, side))
            self._heatmaps = [attention_heatmap(weights[0], pieces, ax=fig.add_subplot(), title="layer, head")]
            self._title = self._heatmaps[0].title
        return fig

    def _changing_artists(self) -> list[Artist]:
        """What a redraw changes: the heatmaps (their frames drawn over them) and the title."""
        frames = [spine for ax in self._heatmaps for spine in ax.spines.values()]
        return [ax.images[0] for ax in self._heatmaps] + frames + [self._title]

    def _update(self, weights: np.ndarray) -> None:
        """Put the selected layer's (and head's) weights into the figure; set ``current_weights``."""
        layer, head = self.layer.value, self.head.value
        if self.view.value == ALL_HEADS:
            self.current_weights = weights  # (n_head, T, T)
            for ax, w in zip(self._heatmaps, weights):
                ax.images[0].set_data(causal_blank(w))
            self._title.set_text(_("layer {layer}").format(layer=layer))
        else:
            self.current_weights = weights[head]  # (T, T)
            self._heatmaps[0].images[0].set_data(causal_blank(self.current_weights))
            self._title.set_text(_("layer {layer}, head {head}").format(layer=layer, head=head))
