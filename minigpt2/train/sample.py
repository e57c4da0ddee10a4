"""A trained model back from its checkpoint, and text from it."""

from __future__ import annotations

import os

import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.train.checkpoint import CheckpointError, load_checkpoint, restore
from minigpt2.train.dataset import tokenizer_from_meta


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[GPT, object]:
    """The model (in eval mode, on ``device``) and the tokenizer of a training checkpoint."""
    ckpt = load_checkpoint(path)
    if "model_config" not in ckpt.meta or "tokenizer" not in ckpt.meta:
        raise CheckpointError(f"{path} does not say which model and tokenizer it holds; was it written by minigpt2 train?")
    model = GPT(GPTConfig(**ckpt.meta["model_config"]))
    restore(ckpt, model, restore_rng=False)
    return model.to(device).eval(), tokenizer_from_meta(ckpt.meta["tokenizer"])


def generate_text(
    model: GPT,
    tokenizer,
    prompt: str = "\n",
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
) -> list[str]:
    """``num_samples`` continuations of ``prompt`` (prompt included), decoded to text."""
    if max_new_tokens < 0 or num_samples < 1:
        raise ValueError("--max-new-tokens should be >= 0 and --num-samples >= 1")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give at least one character, e.g. --prompt $'\\n'")
    device = next(model.parameters()).device
    idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)  # (num_samples, T); generate crops the context
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    vocab = getattr(tokenizer, "vocab_size", None)
    return [tokenizer.decode([i for i in row.tolist() if vocab is None or i < vocab]) for row in out]


__all__ = ["load_model", "generate_text"]
