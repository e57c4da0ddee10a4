"""Attention you can look at: heatmaps, a grid of heads, numbers that describe a head.

- :func:`attention_heatmap` — one head ``(T, T)``; :func:`attention_grid` — a layer's heads.
- :func:`attention_entropy`, :func:`head_scores`, :func:`top_heads` — find heads by what they do.
"""

from minigpt2.viz.heads import attention_entropy, head_scores, top_heads
from minigpt2.viz.widget import AttentionWidget
from minigpt2.viz.heatmap import attention_grid, attention_heatmap, display_token

__all__ = [
    "attention_heatmap",
    "attention_grid",
    "display_token",
    "attention_entropy",
    "head_scores",
    "top_heads",
    "AttentionWidget",
]
