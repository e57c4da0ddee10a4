"""The token streams a run trains on, the tokenizer that made them, and the batches of each step.

Batches are drawn from a generator seeded by ``(seed, step)``, not from a generator
that runs on through training. So the batches of step 1000 are the same whether the
run got there in one go or was resumed at step 600, and under torchrun the processes
split one global batch between them: process ``rank`` takes its slice of the windows
a single process would have drawn with the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from minigpt2.chartokenizer import CharTokenizer
from minigpt2.data import check_stream, load_text, num_windows, train_val_split, windows


@dataclass
class TokenData:
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,) int64
    tokenizer: object  # has encode(str) -> list[int] and decode(ids) -> str
    tokenizer_meta: dict  # enough to rebuild the tokenizer (stored in checkpoints)
    vocab_size: int  # ids run from 0 to vocab_size - 1


def tokenizer_from_meta(meta: dict):
    """The tokenizer a checkpoint was trained with (see :func:`load_tokens`)."""
    if meta.get("kind") == "char":
        return CharTokenizer(meta["chars"])
    if meta.get("kind") == "gpt2":
        from minigpt2.tokenizer import gpt2_tokenizer

        return gpt2_tokenizer()
    raise ValueError(f"unknown tokenizer description {meta!r}: expected kind 'char' or 'gpt2'")


def load_tokens(dataset: str, tokenizer: str, val_fraction: float) -> TokenData:
    """Read corpus ``dataset``, tokenize it, and split it (the last ``val_fraction`` is validation)."""
    text = load_text(dataset)
    if tokenizer == "char":
        tok = CharTokenizer(text)
        meta = {"kind": "char", "chars": "".join(tok.chars)}
        vocab_size = tok.vocab_size
    elif tokenizer == "gpt2":
        from minigpt2.tokenizer import gpt2_tokenizer

        tok = gpt2_tokenizer()
        meta = {"kind": "gpt2"}
        vocab_size = tok.vocab_size
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: use 'char' or 'gpt2'")
    ids = torch.tensor(tok.encode(text), dtype=torch.long)  # (N,)
    train, val = train_val_split(ids, val_fraction)
    return TokenData(train=train, val=val, tokenizer=tok, tokenizer_meta=meta, vocab_size=vocab_size)


def check_fits(tokens: torch.Tensor, block_size: int, split: str) -> None:
    """A window needs ``block_size + 1`` tokens (:func:`minigpt2.data.check_stream`); say what to do when the split is
    shorter."""
    check_stream(tokens, block_size, f"the {split} split",
                 "use a smaller --block-size or a smaller/larger --val-fraction")


def step_starts(n_tokens: int, block_size: int, seed: int, step: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Window starts for one optimizer step, shape ``(grad_accum, world_size, batch_size)``.

    The same ``(seed, step)`` always gives the same starts, however the run got to ``step``.
    """
    generator = torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)
    return torch.randint(num_windows(n_tokens, block_size), shape, generator=generator)


class Batches:
    """The micro-batches of every step for one process.

    ``batches(step, micro)`` is process ``rank``'s micro-batch ``micro`` of ``step``:
    x, y of shape (batch_size, block_size) on ``device``.
    """

    def __init__(self, tokens, batch_size, block_size, grad_accum=1, seed=0, rank=0, world_size=1, device="cpu"):
        check_fits(tokens, block_size, "training")
        self.tokens, self.batch_size, self.block_size = tokens, batch_size, block_size
        self.grad_accum, self.seed, self.rank, self.world_size = grad_accum, seed, rank, world_size
        self.device = torch.device(device)

    def __call__(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.grad_accum, self.world_size, self.batch_size)
        starts = step_starts(len(self.tokens), self.block_size, self.seed, step, shape)[micro, self.rank]  # (B,)
        return to_device(windows(self.tokens, starts, self.block_size), self.device)


def eval_batches(tokens, n_batches, batch_size, block_size, seed, device):
    """The same ``n_batches`` validation batches at every evaluation, so losses compare like for like."""
    check_fits(tokens, block_size, "validation")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(num_windows(len(tokens), block_size), (n_batches, batch_size), generator=generator)
    return [to_device(windows(tokens, s, block_size), device) for s in starts]


def to_device(xy: tuple[torch.Tensor, torch.Tensor], device: torch.device):
    if device.type == "cuda":  # pinned memory lets the copy overlap with compute
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in xy)
    return tuple(t.to(device) for t in xy)


__all__ = ["TokenData", "load_tokens", "tokenizer_from_meta", "Batches", "eval_batches", "step_starts", "check_fits"]
