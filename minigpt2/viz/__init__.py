"""Attention you can look at: heatmaps, a grid of heads, widgets, numbers that describe a head.

- :func:`attention_heatmap` — one head ``(T, T)``; :func:`attention_grid` — a layer's heads.
- :class:`AttentionWidget` — layer, head and text selectors over those pictures;
  :class:`AttentionExplorer` — the same plus a token selector showing where a token looks.
  Both: ``.from_model(model, tokenizer, text=...)``, or fixed weights with their tokens.
- :func:`attention_entropy`, :func:`head_scores`, :func:`top_heads` — find heads by what they do.
- :func:`sharp_figures` — a notebook's figures shown at the size they are drawn for, with twice the pixels.
"""

from minigpt2.viz.explorer import AttentionExplorer
from minigpt2.viz.figures import sharp_figures
from minigpt2.viz.heads import attention_entropy, head_scores, top_heads
from minigpt2.viz.heatmap import attention_grid, attention_heatmap, display_token
from minigpt2.viz.widget import AttentionWidget

__all__ = [
    "attention_heatmap",
    "attention_grid",
    "display_token",
    "AttentionWidget",
    "AttentionExplorer",
    "attention_entropy",
    "head_scores",
    "top_heads",
    "sharp_figures",
]
