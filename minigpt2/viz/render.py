"""Matplotlib figures rendered to PNG bytes, fast enough to redraw on every click.

A widget's figure changes little between clicks: the heatmap's colours and a title, not
its tick labels. :class:`Frames` lays a figure out and draws the parts that never change
once, and for every later frame draws only the artists that do (blitting), so a redraw
costs the heatmaps, not the hundred labels around them.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np
import PIL.Image
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80  # CSS pixels per inch of figure size: the size a widget shows its figure at
PIXEL_RATIO = 2  # the PNG holds twice the pixels each way, sharp on a high-density screen


def new_figure(size: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A figure outside pyplot (nothing is shown or kept alive by a notebook backend), drawn at
    ``PIXEL_RATIO`` times the pixels it is shown at (see :attr:`Frames.css_width`)."""
    fig = Figure(figsize=size, dpi=DPI * PIXEL_RATIO, layout=layout)
    FigureCanvasAgg(fig)
    return fig


@contextmanager
def quiet_glyphs():
    """Labels in scripts the font lacks (中文, say) show as boxes, without a warning per label."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield


def canvas_png(fig: Figure) -> bytes:
    """What the figure's Agg canvas holds now, as PNG bytes (RGB, no alpha)."""
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # (H, W, 3)
    buffer = io.BytesIO()
    PIL.Image.fromarray(rgb).save(buffer, format="png", compress_level=3)
    return buffer.getvalue()


class Frames:
    """PNG frames of ``fig`` in which only the ``changing`` artists change.

    The first frame draws the figure in full, running its layout engine once, then
    switches the engine off and keeps everything but the changing artists as the
    background; each later frame restores the background and draws the changing
    artists, in the order given, on top.
    """

    def __init__(self, fig: Figure, changing: Iterable[Artist]):
        self.fig = fig
        self.changing = list(changing)
        for artist in self.changing:
            artist.set_animated(True)  # left out of full draws: drawn by hand per frame
        self._background = None

    @property
    def css_width(self) -> str:
        """The width to show the frames at, in CSS pixels (an ``ipywidgets.Image``'s ``width``): the
        figure's inches × :data:`DPI`, so each CSS pixel gets ``PIXEL_RATIO`` × ``PIXEL_RATIO`` of the PNG's."""
        return str(round(self.fig.get_figwidth() * DPI))

    def png(self) -> bytes:
        canvas = self.fig.canvas
        with quiet_glyphs():
            if self._background is None:
                canvas.draw()  # lays out (once) and draws the still parts
                self.fig.set_layout_engine("none")
                self._background = canvas.copy_from_bbox(self.fig.bbox)
            else:
                canvas.restore_region(self._background)
            for artist in self.changing:
                self.fig.draw_artist(artist)
        return canvas_png(self.fig)
