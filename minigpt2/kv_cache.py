"""The KV cache: keys and values of the tokens already seen, kept for the next step (lesson 09).

Generating token t+1 needs the query of token t against the keys and values of tokens
0…t. Without a cache, every step recomputes all of them, although those of tokens 0…t-1
have not changed: under the causal mask a token's keys and values depend only on the
tokens before it. With the cache, every layer stores them as they are made, and a step
runs only the newest token through the model.

Storage is allocated once, for ``block_size`` tokens, and filled in place: no tensor is
grown by concatenation step after step.
"""

from __future__ import annotations

import torch


class LayerKVCache:
    """One attention layer's keys and values, (B, n_head, capacity, head_dim) each, of which
    the first :attr:`length` positions are filled.

    The storage is allocated at the first :meth:`append`, with the batch size, heads, dtype
    and device of the keys it receives, for ``capacity`` positions.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: torch.Tensor | None = None  # (B, n_head, capacity, head_dim)
        self.values: torch.Tensor | None = None  # (B, n_head, capacity, head_dim)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' keys and values, k and v (B, n_head, T_new, head_dim); return
        the keys and values of every token so far, (B, n_head, length + T_new, head_dim), as views."""
        if k.dim() != 4 or k.shape != v.shape:
            raise ValueError(f"keys and values should both be (B, n_head, T, head_dim), got {tuple(k.shape)} and "
                             f"{tuple(v.shape)}")
        B, n_head, T_new, head_dim = k.shape
        if self.keys is None:
            self.keys = k.new_empty(B, n_head, self.capacity, head_dim)
            self.values = v.new_empty(B, n_head, self.capacity, head_dim)
        elif (B, n_head, head_dim) != (self.keys.size(0), self.keys.size(1), self.keys.size(3)):
            raise ValueError(
                f"keys of shape {tuple(k.shape)} do not fit this cache of {tuple(self.keys.shape)} "
                "(B, n_head, positions, head_dim): use one cache per batch"
            )
        start, end = self.length, self.length + T_new
        if end > self.capacity:
            raise ValueError(
                f"the KV cache holds {self.capacity} positions (block_size); {start} are filled and "
                f"{T_new} more do not fit: reset() it and run the last block_size tokens again"
            )
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """Keys and values for every layer of a GPT, up to ``block_size`` positions.

    ``model(idx, kv_cache=cache)`` runs ``idx`` (the tokens after those already cached) at the
    positions that follow them, and appends their keys and values. Make one with
    ``model.new_kv_cache()``; a cache serves one batch of sequences, generated together.
    """

    def __init__(self, config):
        self.block_size = config.block_size
        self.layers = [LayerKVCache(config.block_size) for _ in range(config.n_layer)]

    @property
    def length(self) -> int:
        """How many positions are cached (the position the next token will take)."""
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every position (the storage is kept and overwritten)."""
        for layer in self.layers:
            layer.length = 0


__all__ = ["KVCache", "LayerKVCache"]
