"""A trained model back from its checkpoint, and text from it."""

from __future__ import annotations

import os
from typing import Iterator

import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.sampling import TextAssembler, decode_tokens, generate_tokens, token_bytes
from minigpt2.train.checkpoint import CheckpointError, load_checkpoint, restore
from minigpt2.train.dataset import tokenizer_from_meta


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[GPT, object]:
    """The model (in eval mode, on ``device``) and the tokenizer of a training checkpoint."""
    ckpt = load_checkpoint(path)
    if "model_config" not in ckpt.meta or "tokenizer" not in ckpt.meta:
        raise CheckpointError(f"{path} does not say which model and tokenizer it holds; was it written by "
                              "minigpt2 train?")
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
    # (num_samples, T); generate crops the context
    idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    return [decode_tokens(tokenizer, row.tolist()) for row in out]


def encode_prompt(tokenizer, prompt: str, allow_special: bool = False) -> list[int]:
    """The ids of a prompt typed on a command line, or a ValueError that says what to change in it."""
    raw = prompt.encode("utf-8", "surrogateescape")  # a shell passes bytes that are not UTF-8 as lone surrogates
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in prompt):
        invalid = [ord(ch) - 0xDC00 for ch in prompt if 0xDC80 <= ord(ch) <= 0xDCFF]
        position = raw.index(bytes([invalid[0]]))
        raise ValueError(
            f"--prompt is not valid UTF-8: the bytes {' '.join(f'0x{b:02x}' for b in invalid[:8])} (the first at byte "
            f"{position}) are no character; give the prompt in UTF-8 (check the terminal's or the file's encoding)"
        )
    chars = getattr(tokenizer, "chars", None)
    if chars is not None:  # a character-level model knows only the characters of its corpus
        unknown = sorted(set(prompt) - set(chars))
        if unknown:
            raise ValueError(
                f"--prompt has characters this model never saw: {''.join(unknown)!r}; a character-level model knows "
                f"only the {len(chars)} characters of its training text: {''.join(chars)!r}"
            )
    special = getattr(tokenizer, "special_tokens", None) or {}
    if any(token in prompt for token in special) and not allow_special:
        token = next(token for token in special if token in prompt)
        raise ValueError(f"--prompt contains {token}; add --allow-special to read it as the end-of-text token, "
                         "or leave it out")
    ids = list(tokenizer.encode(prompt, allowed_special="all") if special else tokenizer.encode(prompt))
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give at least one character, e.g. --prompt $'\\n'")
    return ids


def stream_sample(
    model: GPT,
    tokenizer,
    ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Iterator[str]:
    """The continuation of ``ids`` as text, piece by piece while it is generated (torch's global generator draws).

    ``<|endoftext|>`` is shown as such, and an id of a padded vocabulary's extra rows as a marker
    (:func:`minigpt2.sampling.token_bytes`)."""
    device = next(model.parameters()).device
    assembler = TextAssembler()
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    for next_id in generate_tokens(model, idx, max_new_tokens, temperature, top_k, top_p):
        piece = assembler.feed(token_bytes(tokenizer, int(next_id)))
        if piece:
            yield piece
    piece = assembler.feed(b"", final=True)
    if piece:
        yield piece


__all__ = ["load_model", "generate_text", "encode_prompt", "stream_sample"]
