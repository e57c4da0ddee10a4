"""Causal self-attention, the way GPT-2 does it.

Three layers, each built on the one before:

* :func:`causal_mask` — which key each query may look at;
* :func:`scaled_dot_product_attention` — the readable reference,
  ``softmax(q kᵀ / √d, masked) v``, which also hands back the attention weights;
* :class:`CausalSelfAttention` — multi-head attention in GPT-2's layout: one fused
  ``c_attn`` projection makes queries, keys and values, ``c_proj`` mixes the heads.

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``'s
boolean ``attn_mask``): **True where attending is allowed**, False where it is not.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """A (T, T) bool mask, True where query ``i`` may attend to key ``j``, i.e. ``j <= i``.

    Row ``i`` is what position ``i`` sees: itself and everything before it, nothing after.
    """
    if T < 1:
        raise ValueError(f"causal_mask needs a sequence length T >= 1, got {T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)


def padded_causal_mask(attention_mask: torch.Tensor, T: int) -> torch.Tensor:
    """The mask of the last ``T`` queries of a padded batch: (B, 1, T, T_k) bool.

    ``attention_mask`` (B, T_k) holds 1 for a real token and 0 for padding, over every key
    (the cached ones, then the T new ones). Query ``i`` (key position ``T_k - T + i``) may
    attend to key ``j`` when ``j`` is not after it and is a real token. Every query also sees
    itself, so a padding query's row is never empty (an empty row would make NaN, which its
    value would carry into the next layer); no real token ever reads a padding position.
    """
    B, T_k = attention_mask.shape
    query_pos = torch.arange(T_k - T, T_k, device=attention_mask.device)[:, None]  # (T, 1)
    key_pos = torch.arange(T_k, device=attention_mask.device)[None, :]  # (1, T_k)
    real_keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T_k)
    return (real_keys & (key_pos <= query_pos)) | (key_pos == query_pos)  # (B, 1, T, T_k)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q kᵀ / √d)`` over the keys, with disallowed keys (``mask == False``) given weight 0.

    q: (..., T_q, d), k: (..., T_k, d), mask: broadcastable to (..., T_q, T_k), bool.
    Returns (..., T_q, T_k); every row sums to 1.
    """
    if q.size(-1) != k.size(-1):
        raise ValueError(f"queries and keys need the same last size d, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(
                f"the mask should be a bool tensor (True = may attend), got dtype {mask.dtype}; "
                "build one with causal_mask(T) or `mask.bool()`"
            )
        scores = scores.masked_fill(~mask, float("-inf"))  # a -inf score becomes weight 0 after softmax
    return torch.softmax(scores, dim=-1)  # (..., T_q, T_k), normalised over the keys


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference attention: ``(softmax(q kᵀ / √d, masked) v, weights)``.

    q: (..., T_q, d), k: (..., T_k, d), v: (..., T_k, d_v); any leading dims (batch, heads).
    mask: bool, True where attending is allowed, broadcastable to (..., T_q, T_k).
    Returns out (..., T_q, d_v) and the weights (..., T_q, T_k).
    """
    if k.size(-2) != v.size(-2):
        raise ValueError(f"keys and values need the same length T_k, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    weights = attention_weights(q, k, mask)  # (..., T_q, T_k)
    return weights @ v, weights  # (..., T_q, d_v)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, C // n_head): channel block ``h`` becomes head ``h``."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, n_head, T, head_dim)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_dim) -> (B, T, n_head * head_dim): the inverse of :func:`split_heads`."""
    B, n_head, T, head_dim = x.shape
    return x.transpose(1, 2).contiguous().view(B, T, n_head * head_dim)  # (B, T, C)


# The longest sequence for which the explicit path beats PyTorch's fused kernel in bf16 on a CPU.
EXPLICIT_BF16_MAX_T = 256


def explicit_is_faster(q: torch.Tensor) -> bool:
    """Whether :func:`attention_weights` then ``@ v`` is the faster causal attention for ``q`` (B, n_head, T, head_dim).

    In bfloat16 on a CPU (under bf16 autocast), PyTorch's fused (flash) kernel is slow, its backward
    above all: forward + backward at (16, 4, 128, 64) took 2.6-2.7x as long as the explicit path, at
    (8, 6, 256, 64) 1.5-1.7x (one thread of an AMD EPYC with AVX512-BF16; on an Intel CPU with AMX,
    1.13x at (8, 6, 256, 64)). At T = 512 the explicit path was still ahead (1.2-1.4x), at 1024 it took
    twice as long, and its (B, n_head, T, T) weights grow with T², so it is used up to
    :data:`EXPLICIT_BF16_MAX_T` (``benchmarks/bench_kernels.py --only attention-bf16``, RESULTS.md).
    In float32, and on GPUs, the fused kernel is as fast or faster and is kept.
    """
    return q.dtype == torch.bfloat16 and q.device.type == "cpu" and q.size(-2) <= EXPLICIT_BF16_MAX_T


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with GPT-2's parameter names.

    ``config`` is any object with ``n_embd``, ``n_head``, ``dropout`` and ``bias``
    (nanoGPT's names; a ``GPTConfig`` will do).

    ``forward(x)`` returns ``y`` (B, T, n_embd), computed by PyTorch's fused
    ``F.scaled_dot_product_attention``. ``forward(x, need_weights=True)`` returns
    ``(y, weights)`` with weights (B, n_head, T, T), computed by the explicit reference
    path so the weights can be looked at. Both paths give the same ``y``.
    The weights returned are those before attention dropout. Under bf16 autocast on a CPU,
    ``forward(x)`` takes the explicit path too, where it is the faster (:func:`explicit_is_faster`).

    ``forward(x, kv_cache=layer_cache)`` (a :class:`~minigpt2.kv_cache.LayerKVCache`, lesson 09):
    x holds only the tokens after those already cached; their keys and values are appended
    to the cache, and their queries attend to every cached token and causally among themselves.

    ``forward(x, attn_mask=mask)``: a padded batch's (B, 1, T, T_past + T) bool mask from
    :func:`padded_causal_mask`, which replaces the causal one.
    """

    def __init__(self, config):
        super().__init__()
        n_embd, n_head = config.n_embd, config.n_head
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head}): each head gets n_embd // "
                             "n_head channels")
        self.n_embd = n_embd
        self.n_head = n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=config.bias)  # x -> [q | k | v]
        self.c_proj = nn.Linear(n_embd, n_embd, bias=config.bias)  # the heads, mixed back into the residual stream
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False, kv_cache=None, attn_mask=None):
        if x.dim() != 3 or x.size(-1) != self.n_embd:
            raise ValueError(f"CausalSelfAttention expects x of shape (B, T, {self.n_embd}), got {tuple(x.shape)}")
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # 3 x (B, n_head, T, head_dim)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # 2 x (B, n_head, T_past + T, head_dim): the cached tokens, then x's
        T_past = k.size(2) - T  # tokens before x's first one

        if attn_mask is not None:  # a padded batch: (B, 1, T, T_past + T), causal and padding in one
            if need_weights:
                weights = attention_weights(q, k, attn_mask)  # (B, n_head, T, T_past + T)
                y = self.attn_dropout(weights) @ v  # (B, n_head, T, head_dim)
            else:
                dropout_p = self.dropout if self.training else 0.0
                # (B, n_head, T, head_dim)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        elif need_weights or (T_past == 0 and explicit_is_faster(q)):
            mask = causal_mask(T_past + T, device=x.device)[T_past:]  # (T, T_past + T): the rows of x's tokens
            weights = attention_weights(q, k, mask)  # (B, n_head, T, T_past + T)
            y = self.attn_dropout(weights) @ v  # (B, n_head, T, head_dim)
        else:
            dropout_p = self.dropout if self.training else 0.0
            # no past: the usual causal mask; one new token: it may see every key, no mask needed
            mask = None if T_past == 0 or T == 1 else causal_mask(T_past + T, device=x.device)[T_past:]
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=T_past == 0
            )  # (B, n_head, T, head_dim)

        y = self.resid_dropout(self.c_proj(merge_heads(y)))  # (B, T, C)
        return (y, weights) if need_weights else y


__all__ = [
    "causal_mask",
    "padded_causal_mask",
    "attention_weights",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "CausalSelfAttention",
    "explicit_is_faster",
]
