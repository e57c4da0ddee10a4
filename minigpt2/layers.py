"""The pieces of a transformer block besides attention: GELU, LayerNorm, the MLP, and
the pre-LN block that puts them together with :class:`~minigpt2.attention.CausalSelfAttention`.

Names follow GPT-2's checkpoints (``ln_1``, ``attn``, ``ln_2``, ``mlp.c_fc``,
``mlp.c_proj``), so its weights load by name (lesson 07).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from minigpt2.attention import CausalSelfAttention
from minigpt2.native.gelu import native_gelu


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU in the tanh form GPT-2 was trained with (Hendrycks & Gimpel, 2016)::

        0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))

    Lesson 05 writes that formula out; here it runs as one fused kernel, one pass over the
    (B, T, 4 · n_embd) tensor forward and one backward, instead of eight elementwise steps:
    on a CPU in float32 or bfloat16 (under bf16 autocast) the native kernel of :mod:`minigpt2.native`
    (1.7–1.9× as fast as PyTorch's there), elsewhere ``F.gelu(x, approximate="tanh")``.
    The two agree to the dtype's rounding (``benchmarks/bench_kernels.py`` times them).
    The exact GELU, x·Φ(x), differs by up to ~1e-3.
    """
    y = native_gelu(x)
    return F.gelu(x, approximate="tanh") if y is None else y


class GELU(nn.Module):
    """:func:`gelu` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x)


class LayerNorm(nn.Module):
    """Normalise each vector over its last dimension to mean 0 and variance 1, then scale
    and shift it by learned ``weight`` and ``bias`` (``bias=False`` drops the shift).

    The variance is the biased one (divide by n, not n − 1), as in ``torch.nn.LayerNorm``.
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Lesson 06 writes it out: (x - mean) / sqrt(var + eps) * weight + bias, over the last dim.
        # PyTorch's kernel does the same in one pass forward and one backward.
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)  # (..., ndim)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, bias={self.bias is not None}, eps={self.eps}"


class MLP(nn.Module):
    """The position-wise feed-forward network: widen 4×, GELU, project back.

    Each position is transformed on its own; attention is where positions talk.
    """

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gelu(self.c_fc(x))  # (B, T, 4 * n_embd)
        return self.dropout(self.c_proj(h))  # (B, T, n_embd)


class Block(nn.Module):
    """One transformer block, pre-LN as in GPT-2: normalise, transform, add back.

        x = x + attn(ln_1(x))   # positions exchange information
        x = x + mlp(ln_2(x))    # each position thinks on its own (skipped when config.mlp is False)

    The additions keep an unnormalised "residual stream" running from the embeddings
    to the final LayerNorm; each sub-layer reads a normalised copy and writes a change.
    ``forward(x, need_weights=True)`` also returns the attention weights (B, n_head, T, T).
    ``forward(x, kv_cache=layer_cache)`` hands the layer's KV cache to attention (lesson 09);
    ``attn_mask`` (a padded batch's mask) goes to attention too.
    """

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias) if config.mlp else None  # mlp=False: attention only
        self.mlp = MLP(config) if config.mlp else None

    def forward(self, x: torch.Tensor, need_weights: bool = False, kv_cache=None, attn_mask=None):
        if need_weights:
            attn_out, weights = self.attn(self.ln_1(x), need_weights=True, kv_cache=kv_cache, attn_mask=attn_mask)
        else:
            attn_out = self.attn(self.ln_1(x), kv_cache=kv_cache, attn_mask=attn_mask)
        x = x + attn_out  # (B, T, n_embd)
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))  # (B, T, n_embd)
        return (x, weights) if need_weights else x


__all__ = ["gelu", "GELU", "LayerNorm", "MLP", "Block"]
