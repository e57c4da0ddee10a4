"""The attention explorer: pick a token of your text and see where it looks, and who looks at it.

On top of :class:`~minigpt2.viz.widget.AttentionWidget` (layer, head, text, one head or
the grid of all heads) it adds a token selector over the text's real token pieces. The
selected token's row (the keys it attends to) and column (the later queries that attend
to it) are outlined on every heatmap, and drawn as two bar charts for the selected head.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minigpt2.i18n.messages import _
from minigpt2.viz.heatmap import display_token, label_ticks
from minigpt2.viz.render import Frames, new_figure
from minigpt2.viz.widget import ALL_HEADS, AttentionWidget

ROW_COLOR, COLUMN_COLOR, HEAD_COLOR = "#e4572e", "#ffc914", "#e4572e"


class AttentionExplorer(AttentionWidget):
    """Layer, head, view and text as in :class:`AttentionWidget`, plus ``token``: a dropdown
    of the text's tokens (each id decoded on its own, so BPE pieces show as they are).

    Build it with ``AttentionExplorer.from_model(model, tokenizer, text=...)``. Besides
    the widget's ``current_weights`` / ``current_tokens`` it exposes, for the selected
    head and token ``i``: ``attends_to`` — the weights of row ``i`` over keys ``0…i`` —
    and ``attended_by`` — the weights of column ``i`` from queries ``i…T-1``.
    """

    _head_matters_in_grid = True  # the head picks the bar charts and is framed in the grid

    def __init__(self, source, *, tokens: Sequence[str] | None = None, text: str | None = None,
                 layer: int = 0, head: int = 0, view: str = ALL_HEADS, token: int | None = None):
        self.token = widgets.Dropdown(options=[], description=_("token"))
        self.bars = widgets.Image(format="png")
        self.attends_to: np.ndarray | None = None
        self.attended_by: np.ndarray | None = None
        self._wanted_token = token
        self._marks: list[tuple[Rectangle, Rectangle]] = []  # each heatmap's row and column outlines
        self._bar_frames: Frames | None = None
        self._bar_frames_key: tuple | None = None  # the tokens the bar charts were built for
        self._bar_axes = ()
        super().__init__(source, tokens=tokens, text=text, layer=layer, head=head, view=view)
        self.token.observe(self._on_control, names="value")

    def _layout(self) -> widgets.Widget:
        controls = widgets.HBox([self.layer, self.head, self.view])
        # flex-start: each picture keeps its own height (the default, stretch, squeezes the heatmap to the bars')
        row = widgets.Layout(flex_flow="row wrap", align_items="flex-start")
        pictures = widgets.Box([self.image, self.bars], layout=row)
        return widgets.VBox([controls, self.token, self.text, self.message, pictures])

    # ------------------------------------------------------------------ the token selector

    def _compute(self) -> None:
        super()._compute()
        if self.error is not None:
            return
        T = len(self._pieces)
        wanted = self._wanted_token if self._wanted_token is not None else self.token.value
        self._wanted_token = None
        with self._holding():
            self.token.options = [(f"{i}: {display_token(p, max_len=24)}", i) for i, p in enumerate(self._pieces)]
            self.token.value = T - 1 if wanted is None else min(max(wanted, 0), T - 1)

    # ------------------------------------------------------------------ drawing

    def redraw(self) -> None:
        super().redraw()
        if self.error is not None:
            self.bars.layout.display = "none"
            self.attends_to = self.attended_by = None
            return
        head_weights = self._layers[self.layer.value][self.head.value]  # (T, T)
        i = self.token.value
        self.attends_to = head_weights[i, : i + 1]  # (i + 1,) query i over keys 0…i
        self.attended_by = head_weights[i:, i]  # (T - i,) queries i…T-1 on key i
        if self._bar_frames_key != tuple(self._pieces):
            self._bar_frames = self._build_bars()
            self._bar_frames_key = tuple(self._pieces)
        self._update_bars()
        self.bars.value = self._bar_frames.png()
        self.bars.width = self._bar_frames.css_width
        self.bars.layout.display = None

    def _status(self) -> str:
        i = self.token.value
        status = _("{status} · token {i} {token!r}").format(status=super()._status(), i=i,
                                                            token=display_token(self._pieces[i], max_len=24))
        return status + (_(" · bars: head {head}").format(head=self.head.value) if self.view.value == ALL_HEADS else "")

    def _build(self, weights: np.ndarray, pieces: list[str]) -> Figure:
        fig = super()._build(weights, pieces)
        style = dict(fill=False, linewidth=1.6)
        self._marks = [(ax.add_patch(Rectangle((0, 0), 1, 1, edgecolor=ROW_COLOR, **style)),
                        ax.add_patch(Rectangle((0, 0), 1, 1, edgecolor=COLUMN_COLOR, linestyle="--", **style)))
                       for ax in self._heatmaps]
        return fig

    def _changing_artists(self) -> list[Artist]:
        return super()._changing_artists() + [patch for pair in self._marks for patch in pair]

    def _update(self, weights: np.ndarray) -> None:
        super()._update(weights)
        i, T = self.token.value, weights.shape[-1]
        for row, column in self._marks:
            row.set_bounds(-0.5, i - 0.5, i + 1, 1)  # keys 0…i of query i
            column.set_bounds(i - 0.5, i - 0.5, 1, T - i)  # queries i…T-1 of key i
        if self.view.value == ALL_HEADS:
            for h, ax in enumerate(self._heatmaps):
                selected = h == self.head.value
                for spine in ax.spines.values():
                    spine.set_edgecolor(HEAD_COLOR if selected else "black")
                    spine.set_linewidth(2.5 if selected else 0.8)

    # ------------------------------------------------------------------ the bar charts

    def _build_bars(self) -> Frames:
        """Two bar charts over the text's positions, for the selected head: the token's row
        (the keys it attends to) above its column (the queries that attend to it).
        One bar per position in each; a redraw sets their heights and colours."""
        T = len(self._pieces)
        width, height = min(8.0, max(3.5, 1.0 + 0.13 * T)), 4.0
        ticks, size = label_ticks(T, width - 0.6)
        labels = [display_token(self._pieces[t]).replace("$", r"\$") for t in ticks]
        label_inches = max(len(label) for label in labels) * size * 0.65 / 72 + 0.15
        fig = new_figure((width, height), layout=None)  # placed by hand: no layout pass
        fig.subplots_adjust(left=0.45 / width, right=1 - 0.15 / width, top=1 - 0.3 / height,
                            bottom=(label_inches + 0.1) / height, hspace=0.45)
        self._bar_axes = fig.subplots(2, 1, sharex=True)
        for ax in self._bar_axes:
            ax.bar(range(T), np.zeros(T), width=0.8)
            ax.set_ylim(0, 1)
            ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])
            ax.tick_params(labelsize=7, length=2)
            ax.set_title(" ", fontsize=9)
        top, bottom = self._bar_axes
        bottom.set_xlim(-0.6, T - 0.4)
        bottom.set_xticks(ticks, labels, rotation=90, fontsize=size)
        top.tick_params(labelbottom=False)
        changing = [artist for ax in self._bar_axes for artist in (*ax.patches, ax.title)]
        return Frames(fig, changing)

    def _update_bars(self) -> None:
        i = self.token.value
        T = len(self._pieces)
        head_weights = self._layers[self.layer.value][self.head.value]  # (T, T)
        name = display_token(self._pieces[i], max_len=24).replace("$", r"\$")
        top, bottom = self._bar_axes
        rows = (head_weights[i, :], ROW_COLOR, range(0, i + 1),
                _("{name!r} attends to … (layer {layer}, head {head})").format(name=name, layer=self.layer.value,
                                                                               head=self.head.value))
        columns = (head_weights[:, i], COLUMN_COLOR, range(i, T), _("… attend to {name!r}").format(name=name))
        for ax, (values, color, shown, title) in ((top, rows), (bottom, columns)):
            for p, bar in enumerate(ax.patches):
                bar.set_height(values[p] if p in shown else 0.0)
                bar.set_color("#555555" if p == i else color)
            ax.title.set_text(title)


__all__ = ["AttentionExplorer"]
