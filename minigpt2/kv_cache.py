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
    """One attention layer's keys and values, (B, n_head, block_size, head_dim) each, of
    which the first :attr:`length` positions are filled."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys  # (B, n_head, block_size, head_dim)
        self.values = values  # (B, n_head, block_size, head_dim)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' keys and values, k and v (B, n_head, T_new, head_dim); return
        the keys and values of every token so far, (B, n_head, length + T_new, head_dim), as views."""
        start, end = self.length, self.length + k.size(2)
        if end > self.keys.size(2):
            raise ValueError(
                f"the KV cache holds {self.keys.size(2)} positions (block_size); {start} are filled and "
                f"{k.size(2)} more do not fit: reset() it and run the last block_size tokens again"
            )
        if k.shape[:2] != self.keys.shape[:2] or k.shape[3] != self.keys.size(3) or k.shape != v.shape:
            raise ValueError(
                f"keys {tuple(k.shape)} and values {tuple(v.shape)} do not fit a cache of "
                f"{tuple(self.keys.shape)} (B, n_head, positions, head_dim)"
            )
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """Keys and values for every layer of a GPT, for a batch of ``batch_size`` sequences.

    ``model(idx, kv_cache=cache)`` reads the positions already cached, runs ``idx`` (the
    tokens after them) at the positions that follow, and appends their keys and values.
    Make one with ``model.new_kv_cache(batch_size)``.
    """

    def __init__(self, config, batch_size: int, device=None, dtype: torch.dtype = torch.float32):
        if batch_size < 1:
            raise ValueError(f"a KV cache needs batch_size >= 1, got {batch_size}")
        self.block_size = config.block_size
        shape = (batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.layers = [
            LayerKVCache(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
            for _ in range(config.n_layer)
        ]

    @property
    def length(self) -> int:
        """How many positions are cached (the position the next token will take)."""
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every position (the storage is kept and overwritten)."""
        for layer in self.layers:
            layer.length = 0


__all__ = ["KVCache", "LayerKVCache"]
