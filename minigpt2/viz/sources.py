"""Where the attention widgets get their weights: fixed weights, or a model and its tokenizer.

A source is any object with

- ``tokenize(text) -> (pieces, ids)``: the text's tokens, each as its own string, and their ids;
- ``attention(ids) -> [weights of layer 0, layer 1, …]``, each ``(n_head, T, T)``;
- optionally ``max_tokens`` (the longest text it can read, None for no limit) and
  ``editable`` (False when the text cannot change).

:class:`FixedAttention` wraps weights already computed; :class:`ModelAttention` wraps
a model with ``attention_weights(idx) -> [(B, n_head, T, T) per layer]`` and
``config.block_size`` (the package's :class:`minigpt2.GPT`) and a tokenizer with
``encode`` / ``decode`` (:func:`minigpt2.tokenizer.gpt2_tokenizer`, a ``CharTokenizer``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch

from minigpt2.sampling import token_bytes
from minigpt2.viz.heatmap import all_layers


class FixedAttention:
    """Weights computed beforehand, and the tokens they belong to; the text cannot change."""

    editable = False
    max_tokens = None

    def __init__(self, weights, tokens: Sequence[str]):
        self.layers = all_layers(weights)
        T = self.layers[0].shape[-1]
        if isinstance(tokens, str) or len(tokens) != T:
            raise ValueError(f"give the {T} token pieces the weights belong to, as a list of strings (got "
                             f"{tokens!r:.60})")
        self.tokens = [str(t) for t in tokens]
        self.text = "".join(self.tokens)

    def tokenize(self, text: str) -> tuple[list[str], list[int]]:
        return list(self.tokens), list(range(len(self.tokens)))

    def attention(self, ids: Sequence[int]) -> list[np.ndarray]:
        return self.layers


class ModelAttention:
    """A model and its tokenizer: any text in, every layer's attention out."""

    editable = True

    def __init__(self, model, tokenizer):
        for name in ("attention_weights", "config"):
            if not hasattr(model, name):
                raise TypeError(f"the model needs `{name}` (like minigpt2.GPT); got a {type(model).__name__}")
        for name in ("encode", "decode"):
            if not hasattr(tokenizer, name):
                raise TypeError(f"the tokenizer needs `{name}`; got a {type(tokenizer).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens: int = model.config.block_size

    def _encode(self, text: str) -> list[int]:
        if "allowed_special" in inspect.signature(self.tokenizer.encode).parameters:
            return list(self.tokenizer.encode(text, allowed_special="all"))  # '<|endoftext|>' is one token
        return list(self.tokenizer.encode(text))

    def piece(self, token_id: int) -> str:
        """The text of one token. A BPE token can hold part of a character's UTF-8 bytes;
        those bytes show as escapes (``\\xe4``) rather than as '�'."""
        return token_bytes(self.tokenizer, token_id).decode("utf-8", errors="backslashreplace")

    def tokenize(self, text: str) -> tuple[list[str], list[int]]:
        ids = self._encode(text)
        return [self.piece(i) for i in ids], ids

    def attention(self, ids: Sequence[int]) -> list[np.ndarray]:
        device = next(self.model.parameters()).device
        idx = torch.tensor([list(ids)], dtype=torch.long, device=device)  # (1, T)
        was_training = self.model.training
        self.model.eval()  # no dropout in the weights we show
        try:
            with torch.no_grad():
                weights = self.model.attention_weights(idx)  # n_layer × (1, n_head, T, T)
        finally:
            self.model.train(was_training)
        return [w[0].float().cpu().numpy() for w in weights]  # n_layer × (n_head, T, T)


def as_source(source, tokens: Sequence[str] | None = None):
    """``source`` itself if it already is a source (has ``tokenize`` and ``attention``),
    else :class:`FixedAttention` of the weights ``source`` and their ``tokens``."""
    if hasattr(source, "tokenize") and hasattr(source, "attention"):
        if tokens is not None:
            raise ValueError("tokens come from the source's own tokenize(); pass tokens only with fixed weights")
        return source
    if hasattr(source, "attention_weights"):
        raise TypeError("got a model: use AttentionWidget.from_model(model, tokenizer) (or "
                        "AttentionExplorer.from_model)")
    if tokens is None:
        raise ValueError("fixed weights need their tokens: AttentionWidget(weights, tokens=[...])")
    return FixedAttention(source, tokens)
