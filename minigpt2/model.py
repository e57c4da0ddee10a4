"""GPT-2: embeddings, a stack of pre-LN blocks, a final LayerNorm, and an LM head tied
to the token embedding.

Parameter names are those of Hugging Face's ``GPT2LMHeadModel`` (``transformer.wte``,
``transformer.h.0.attn.c_attn``, …), so GPT-2's weights load by name;
:mod:`minigpt2.hf` reads and writes that format.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from minigpt2.attention import padded_causal_mask
from minigpt2.kv_cache import KVCache
from minigpt2.layers import Block, LayerNorm
from minigpt2.sampling import generate_tokens

GPT2_VOCAB_SIZE = 50257  # 256 byte tokens + 50,000 merges + <|endoftext|>


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are GPT-2 small (124M parameters).

    block_size: the longest sequence (context) the model can read.
    vocab_size: number of token ids.
    n_layer, n_head, n_embd: blocks, attention heads per block, width of the residual stream.
    dropout: dropout probability used during training (GPT-2 used 0.1; 0.0 for fine-tuning and inference).
    bias: biases in the Linear layers and LayerNorms (GPT-2 has them).
    mlp: an MLP in every block (GPT-2 has them). False gives an attention-only model, the kind
        Elhage et al. (2021) and Olsson et al. (2022) take apart, as lesson 10's toy model does.
    """

    block_size: int = 1024
    vocab_size: int = GPT2_VOCAB_SIZE
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    mlp: bool = True

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GPTConfig.{name} should be an int, got {value!r} ({type(value).__name__})")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} should be positive, got {value}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets n_embd "
                f"// n_head channels. Try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}."
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout,
                                                            (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout should be a probability in [0, 1), got {self.dropout!r}")
        for name in ("bias", "mlp"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig.{name} should be True or False, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        """A named size (see :data:`PRESETS`), with any field overridden: ``GPTConfig.from_preset("gpt2",
        dropout=0.1)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; the presets are: {', '.join(PRESETS)}")
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"GPTConfig has no field(s) {sorted(unknown)}; its fields are "
                            f"{[f.name for f in fields(cls)]}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # The four GPT-2 sizes (Radford et al., 2019).
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # Small sizes that train on a laptop CPU in minutes (GPT-2's tokenizer and vocabulary).
    "nano": dict(n_layer=2, n_head=2, n_embd=64, block_size=64),  # 3.3M, almost all of it the embedding
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # 7.2M
    # 30M: nanoGPT's Shakespeare model, with GPT-2's vocabulary
    "mini": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
}

class GPT(nn.Module):
    """GPT-2 as a language model: token ids (B, T) in, next-token logits (B, T, vocab_size) out."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}; e.g. "
                            "GPT(GPTConfig.from_preset('nano'))")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: one matrix reads tokens in (wte) and scores them out (lm_head).
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init: each block adds two projections (attn.c_proj, mlp.c_proj) to the
        # residual stream; scaling them by 1/sqrt(2 * n_layer) keeps the stream's variance flat with depth.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """The number of parameters, the tied token embedding / LM head counted once."""
        return sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once

    def _check_idx(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.long, torch.int32,
                                                                                    torch.int64):
            what = f"a tensor of shape {tuple(idx.shape)} and dtype {idx.dtype}" if isinstance(idx,
                torch.Tensor) else type(idx).__name__
            raise ValueError(f"GPT expects token ids as a (B, T) integer tensor, got {what}; a single sequence "
                             "is idx[None, :]")
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(
                f"a sequence of {T} tokens is longer than the model's context, block_size={self.config.block_size}; "
                f"crop it to the last {self.config.block_size} tokens: idx[:, -{self.config.block_size}:]"
            )

    def _embed(self, idx: torch.Tensor, start: int = 0, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check_idx(idx)
        if start + idx.size(1) > self.config.block_size:
            raise ValueError(
                f"the KV cache holds {start} tokens and {idx.size(1)} more would pass the context, "
                f"block_size={self.config.block_size}: reset() the cache and run the last block_size tokens"
            )
        if attention_mask is None:
            pos = torch.arange(start, start + idx.size(1), device=idx.device)  # (T,): positions after the cached ones
        else:  # a padded batch: a token's position counts the real tokens before it, as Hugging Face does
            pos = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)[:, start:]  # (B, T)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, n_embd)
        return self.transformer.drop(x)

    def _check_attention_mask(self, attention_mask: torch.Tensor, idx: torch.Tensor, start: int) -> None:
        expected = (idx.size(0), start + idx.size(1))
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != expected:
            got = tuple(attention_mask.shape) if isinstance(attention_mask,
                                                            torch.Tensor) else type(attention_mask).__name__
            raise ValueError(
                f"attention_mask should be a tensor of shape (B, cached + T) = {expected}, 1 for each token and 0 for "
                f"padding (with a KV cache it covers the cached tokens too), got {got}"
            )
        binary = bool(((attention_mask == 0) | (attention_mask == 1)).all())
        if attention_mask.is_floating_point() or attention_mask.is_complex() or not binary:
            raise ValueError("attention_mask should hold only 1 (a token) and 0 (padding), as an "
                             "integer or bool tensor")

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        last_only: bool = False,
        attention_mask: torch.Tensor | None = None,
    ):
        """Logits (B, T, vocab_size) for the token after each position, and the mean
        cross-entropy against ``targets`` (B, T) when given (-1 marks positions to ignore), else None.

        For generation (lesson 09): with ``kv_cache`` (from :meth:`new_kv_cache`), ``idx`` holds
        only the tokens after those the cache already holds; they take the positions that follow,
        and their keys and values join the cache. ``last_only`` computes the logits of the last
        position alone, (B, 1, vocab_size): all that the next token needs.

        ``attention_mask`` (B, cached + T), 1 for a token and 0 for padding, runs a padded batch
        (prompts of different lengths, left-padded): no token attends to padding, and a token's
        position counts only the real tokens before it (Hugging Face's ``cumsum(mask) - 1``), so
        each row's logits at its real tokens are those it gets alone. With a KV cache the mask
        covers the cached tokens too. The logits at padding positions mean nothing; give their
        targets -1. Without a mask (None) the model runs the plain causal path.
        """
        start = 0 if kv_cache is None else kv_cache.length
        attn_mask = None
        if attention_mask is not None:
            self._check_attention_mask(attention_mask, idx, start)
            attn_mask = padded_causal_mask(attention_mask, idx.size(1))  # (B, 1, T, cached + T)
        x = self._embed(idx, start, attention_mask)  # (B, T, n_embd)
        layer_caches = [None] * len(self.transformer.h) if kv_cache is None else kv_cache.layers
        for block, layer_cache in zip(self.transformer.h, layer_caches):
            x = block(x, kv_cache=layer_cache, attn_mask=attn_mask)
        if last_only:
            x = x[:, -1:, :]  # (B, 1, n_embd)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T or 1, vocab_size)
        if targets is None:
            return logits, None
        if last_only:
            raise ValueError("the loss needs the logits of every position: call the model without last_only")
        if targets.shape != idx.shape:
            raise ValueError(f"targets should have the shape of idx, {tuple(idx.shape)}, got {tuple(targets.shape)}")
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's attention weights for ``idx``: a list of n_layer tensors (B, n_head, T, T)."""
        x = self._embed(idx)
        weights = []
        for block in self.transformer.h:
            x, w = block(x, need_weights=True)
            weights.append(w)
        return weights

    def new_kv_cache(self) -> KVCache:
        """An empty KV cache for this model (see :mod:`minigpt2.kv_cache`)."""
        return KVCache(self.config)

    @torch.no_grad()
    @functools.wraps(generate_tokens, assigned=())  # help() and inspect show generate_tokens' parameters
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *settings, **named_settings) -> torch.Tensor:
        """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens; returns (B, T + max_new_tokens).

        The settings are :func:`minigpt2.sampling.generate_tokens`' (``temperature=1.0``, ``top_k=None``,
        ``top_p=None``, ``use_cache=True``, ``generator=None``, ``attention_mask=None``), and so is
        what they do: temperature 0 is greedy; an empty prompt (T = 0) starts from ``<|endoftext|>``
        (not part of the output); the model sees at most the last ``block_size`` tokens; cached and
        uncached give the same tokens; a left-padded batch with its ``attention_mask`` (B, T) gives
        each row the tokens it would get alone, the padding staying in the output.
        Call ``model.eval()`` first so dropout is off.

        Batch-1 decoding reads every weight once a token, so it runs at the memory's pace: a bfloat16
        copy of the model (``model.to(torch.bfloat16)``) reads half the bytes and, on a CPU with bf16
        instructions, made GPT-2 small's tokens 1.15x as fast (benchmarks/RESULTS.md), at the price of
        rounding the weights to bf16's 8-bit mantissa.
        """
        steps = generate_tokens(self, idx, max_new_tokens, *settings, **named_settings)
        return torch.cat([idx, *steps], dim=1)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, **overrides) -> "GPT":
        """GPT-2 weights in Hugging Face format: a local directory with ``config.json`` and
        ``model.safetensors``, or (online only) a hub name: "gpt2", "gpt2-medium", "gpt2-large",
        "gpt2-xl". ``overrides`` set config fields such as ``dropout``."""
        from minigpt2 import hf

        return hf.load_pretrained(name_or_dir, **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` in Hugging Face's GPT-2 format, which
        ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` and :meth:`from_pretrained` load."""
        from minigpt2 import hf

        hf.save_pretrained(self, directory)


__all__ = ["GPTConfig", "GPT", "PRESETS", "GPT2_VOCAB_SIZE"]
