"""Attention weights as pictures: one head as a heatmap, all heads of a layer as a grid.

Rows are queries (the token that looks), columns are keys (the tokens it looks at).
Under a causal mask a query never sees a later key: those cells are drawn blank
(light grey), not as a weight of zero, so "not allowed" and "allowed but ignored"
look different.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np

from minigpt2.utils import use_cjk_font

use_cjk_font()  # token labels and texts may be Chinese

# Visible stand-ins for characters a tick label would otherwise hide.
_VISIBLE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "\\r"}
MASKED_COLOR = "#e6e6e6"
CMAP = "viridis"


def display_token(piece: str, max_len: int = 12) -> str:
    """A token piece as a readable label: spaces become '·', newlines '↵', tabs '⇥',
    other control characters their escape; an empty piece is '∅'; long pieces end in '…'.

    >>> display_token(" the"), display_token("\\n\\n"), display_token("")
    ('·the', '↵↵', '∅')
    """
    if piece == "":
        return "∅"
    out = []
    for ch in piece:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif not ch.isprintable():
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    label = "".join(out)
    return label if len(label) <= max_len else label[: max_len - 1] + "…"


def token_labels(tokens: Sequence[str] | None, T: int) -> list[str]:
    """Readable labels for ``T`` positions: the tokens' display form, or the positions
    ``0 … T-1`` when ``tokens`` is None."""
    if tokens is None:
        return [str(i) for i in range(T)]
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of token pieces (one string per position), not one string")
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for attention weights over {T} positions; give one "
                         "token per position")
    return [display_token(str(t)) for t in tokens]


def to_numpy(weights) -> np.ndarray:
    """A float64 NumPy copy of a tensor (any device, with or without grad), array or nested list."""
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().to("cpu").double().numpy()
    return np.array(weights, dtype=np.float64)


def causal_blank(weights: np.ndarray, causal: bool = True) -> np.ma.MaskedArray:
    """``weights (..., T, T)`` with the cells to draw blank masked: non-finite cells
    (NaN, -inf scores) and, when ``causal``, every key after its query (column > row)."""
    hidden = ~np.isfinite(weights)
    if causal:
        T = weights.shape[-1]
        hidden = hidden | np.triu(np.ones((T, T), dtype=bool), k=1)
    return np.ma.masked_array(weights, mask=hidden)


def _mpl_text(label: str) -> str:
    """Escape '$' so matplotlib does not read a label as math."""
    return label.replace("$", r"\$")


MIN_FONT, MAX_FONT = 6.0, 10.0


def label_ticks(T: int, inches: float) -> tuple[list[int], float]:
    """Which of T positions to label along ``inches`` of axis, and the font size:
    every position while the labels fit at a readable size, else every k-th."""
    fits = 0.8 * inches * 72.0 / max(T, 1)  # points of axis per label
    size = min(MAX_FONT, max(MIN_FONT, fits))
    step = max(1, math.ceil(size / fits))
    return list(range(0, T, step)), size


def draw_attention(ax, weights2d: np.ndarray, labels: Sequence[str] | None, *, causal: bool = True,
                   vmax: float | None = 1.0, label_inches: float | None = 4.0):
    """Draw one head's ``(T, T)`` weights onto ``ax``, labelling the axes with ``labels``
    sized to fit ``label_inches`` (None: no labels); returns the image (for a colorbar)."""
    T = weights2d.shape[0]
    image = ax.imshow(causal_blank(weights2d, causal), cmap=_cmap(), vmin=0.0, vmax=vmax,
                      interpolation="nearest", aspect="equal")
    if labels is not None and label_inches is not None:
        ticks, size = label_ticks(T, label_inches)
        shown = [_mpl_text(labels[i]) for i in ticks]
        ax.set_xticks(ticks, shown, rotation=90, fontsize=size)
        ax.set_yticks(ticks, shown, fontsize=size)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.tick_params(length=0)
    return image


def _cmap():
    return matplotlib.colormaps[CMAP].with_extremes(bad=MASKED_COLOR)


def _check_one_head(w: np.ndarray) -> None:
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        hint = " (for (n_head, T, T) pick a head, weights[h], or use attention_grid)" if w.ndim == 3 else ""
        raise ValueError(f"attention_heatmap draws one head of shape (T, T); got shape {tuple(w.shape)}{hint}")


def attention_heatmap(weights, tokens: Sequence[str] | None = None, ax=None, title: str | None = None, *,
                      causal: bool = True, vmax: float | None = 1.0, colorbar: bool = True):
    """One head's attention ``weights (T, T)`` as a heatmap: query tokens on the rows,
    key tokens on the columns, future cells blank when ``causal``.

    ``tokens`` are the T token pieces (None: label positions 0…T-1). ``vmax=1.0`` keeps
    the colour scale the same across heads; ``vmax=None`` stretches it to this head.
    Draws on ``ax`` if given, else on a new pyplot figure; returns the Axes.
    """
    w = to_numpy(weights)
    _check_one_head(w)
    labels = token_labels(tokens, w.shape[0])
    if ax is None:
        import matplotlib.pyplot as plt

        side = heatmap_side(w.shape[0])
        _, ax = plt.subplots(figsize=(side + (0.8 if colorbar else 0.0), side), layout="constrained")
    image = draw_attention(ax, w, labels, causal=causal, vmax=vmax, label_inches=_axis_inches(ax))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title is not None:
        ax.set_title(_mpl_text(title))
    if colorbar:
        add_colorbar(image, ax)
    return ax


def add_colorbar(image, ax, fraction: float = 0.046):
    """A slim colorbar beside ``ax`` (one Axes or a list) for ``image``, labelled 0, 0.5, 1 on the 0…1 scale."""
    bar = image.figure.colorbar(image, ax=ax, fraction=fraction, pad=0.02)
    if image.norm.vmax == 1.0:
        bar.set_ticks([0.0, 0.5, 1.0], labels=["0", "0.5", "1"])
    bar.ax.tick_params(labelsize=8)
    return bar


def heatmap_side(T: int) -> float:
    """The side, in inches, of a one-head figure for T tokens: room for the labels, never huge."""
    return min(7.0, max(3.5, 2.5 + 0.09 * T))


def _axis_inches(ax) -> float:
    """The length, in inches, of the shorter side of ``ax`` (as placed before any layout)."""
    box = ax.get_position()
    width, height = ax.figure.get_size_inches()
    return max(1.0, min(box.width * width, box.height * height))


def all_layers(weights) -> list[np.ndarray]:
    """Every layer's ``(n_head, T, T)`` weights as NumPy, from a list over layers (of ``(n_head, T, T)``
    or ``(1, n_head, T, T)``, what ``model.attention_weights`` returns for one sequence), an
    ``(n_layer, n_head, T, T)`` array, or one layer's ``(n_head, T, T)``."""
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise ValueError("got an empty list of layers; give one (n_head, T, T) weight tensor per layer")
        layers = [to_numpy(w) for w in weights]
        for layer, w in enumerate(layers):
            if w.ndim == 4 and w.shape[0] != 1:
                raise ValueError(f"layer {layer} holds a batch of {w.shape[0]} sequences; pick one: [w[b] "
                                 "for w in weights]")
        layers = [w[0] if w.ndim == 4 else w for w in layers]
    else:
        w = to_numpy(weights)
        layers = list(w) if w.ndim == 4 else [w]
    for w in layers:
        if w.ndim != 3 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"expected one layer's weights of shape (n_head, T, T); got shape {tuple(w.shape)}")
    return layers


def layer_weights(weights, layer: int | None = None) -> np.ndarray:
    """One layer's ``(n_head, T, T)`` weights as NumPy, from either one layer's ``(n_head, T, T)``
    or all layers (see :func:`all_layers`); ``layer`` picks one of all layers."""
    layers = all_layers(weights)
    if not isinstance(weights, (list, tuple)) and np.ndim(weights) == 3:
        return layers[0]  # one layer's weights
    if layer is None:
        raise ValueError(f"weights hold {len(layers)} layers; pass layer=0…{len(layers) - 1}")
    if not 0 <= layer < len(layers):
        raise IndexError(f"layer {layer} is out of range: the weights hold layers 0…{len(layers) - 1}")
    return layers[layer]


def grid_shape(n_head: int, max_cols: int = 6) -> tuple[int, int]:
    """(rows, cols) for ``n_head`` small heatmaps, at most ``max_cols`` per row, rows balanced."""
    rows = math.ceil(n_head / max_cols)
    return rows, math.ceil(n_head / rows)


def grid_figsize(n_head: int, T: int) -> tuple[float, float]:
    """(width, height) in inches of a grid of ``n_head`` heatmaps: bigger cells when labels are drawn."""
    rows, cols = grid_shape(n_head)
    cell = 2.0 if T <= 16 else 1.5
    width = min(10.0, cols * cell + 0.8)
    return width, rows * (width - 0.8) / cols + 0.4


def attention_grid(weights, tokens: Sequence[str] | None = None, layer: int | None = None, *, fig=None,
                   causal: bool = True, vmax: float | None = 1.0, title: str | None = None):
    """All heads of one layer, ``(n_head, T, T)``, as a grid of small heatmaps.

    ``weights`` may also hold every layer (see :func:`layer_weights`); then ``layer``
    picks one. Token labels are drawn on the outer heatmaps when T ≤ 16.
    Draws on ``fig`` if given, else on a new pyplot figure; returns the Figure
    (``fig.axes[h]`` is head ``h``).
    """
    w = layer_weights(weights, layer)
    n_head, T, _ = w.shape
    labels = token_labels(tokens, T)
    rows, cols = grid_shape(n_head)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=grid_figsize(n_head, T), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    label_inches = min(fig.get_figwidth() / cols, fig.get_figheight() / rows) - 0.6 if T <= 16 else None
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= n_head:
            ax.set_visible(False)
            continue
        image = draw_attention(ax, w[h], labels, causal=causal, vmax=vmax, label_inches=label_inches)
        ax.set_title(f"head {h}", fontsize=8, pad=2)
        if label_inches is not None:
            if h % cols:
                ax.set_yticklabels([])
            if h + cols < n_head:
                ax.set_xticklabels([])
    heading = title if title is not None else (f"layer {layer}" if layer is not None else None)
    if heading is not None:
        fig.suptitle(_mpl_text(heading), fontsize=10)
    add_colorbar(image, axes.ravel().tolist(), fraction=0.02)
    return fig
