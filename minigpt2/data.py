"""Text corpora by name, and the token windows a language model learns from.

A language model reads ``block_size`` tokens and, at every position, predicts the
next one. So one training example is a *window* of the token stream and the same
window shifted by one::

    tokens   t0 t1 t2 t3 t4 t5 ...
    input    t0 t1 t2 t3            (x, block_size tokens)
    target      t1 t2 t3 t4         (y, x shifted left by one: y[i] is what follows x[:i+1])

The functions here work on any 1-D sequence of token ids: a list, a torch tensor,
a NumPy array or a memory-mapped token file (:func:`read_tokens`), whichever
tokenizer made them (:class:`~minigpt2.chartokenizer.CharTokenizer` or GPT-2's BPE).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from minigpt2.chartokenizer import CharTokenizer
from minigpt2.datafiles import KNOWN_FILES, DataFileError, locate, replacing

Tokens = Union[torch.Tensor, np.ndarray, Sequence[int]]

CORPORA = ("tinyshakespeare",)


def load_text(name: str = "tinyshakespeare", path: str | os.PathLike | None = None) -> str:
    """The text of a corpus by name (``"tinyshakespeare"``), found and verified as
    :mod:`minigpt2.datafiles` describes; ``path`` points at an explicit copy."""
    if name not in CORPORA:
        raise DataFileError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    with open(locate(name, path), encoding="utf-8") as f:
        return f.read()


def gpt2_merges_path(path: str | os.PathLike | None = None):
    """The verified path of GPT-2's merge ranks (``gpt2.tiktoken``)."""
    return locate("gpt2-merges", path)


# --------------------------------------------------------------------------- windows


def num_windows(n_tokens: int, block_size: int) -> int:
    """How many (input, target) windows fit in ``n_tokens``: the last one's target ends on the last token."""
    return max(n_tokens - block_size, 0)


def check_stream(tokens: Tokens, block_size: int, what: str = "the stream",
                 fix: str = "use more text or a smaller block_size") -> int:
    """The length of ``tokens``, after checking that it holds a window: ``block_size + 1`` tokens
    (the target is the input shifted by one). ``what`` names the stream and ``fix`` says what to
    change, in the message of the ValueError raised otherwise."""
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size should be a positive int, got {block_size!r}")
    shape = getattr(tokens, "shape", None)
    if shape is not None and len(shape) != 1:
        raise ValueError(f"tokens should be a 1-D stream of ids, got shape {tuple(shape)}; flatten it first")
    n = len(tokens)
    if n < block_size + 1:
        raise ValueError(
            f"a window of block_size={block_size} needs block_size + 1 = {block_size + 1} tokens "
            f"(the target is shifted by one), but {what} has {n}; {fix}"
        )
    return n


def _long(chunk) -> torch.Tensor:
    """A slice of a token stream as an int64 tensor (what nn.Embedding and cross_entropy want)."""
    if isinstance(chunk, torch.Tensor):
        return chunk.long()
    if isinstance(chunk, np.ndarray):
        return torch.from_numpy(chunk.astype(np.int64))
    return torch.tensor(chunk, dtype=torch.long)


def windows(tokens: Tokens, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows at ``starts`` (B,): x and y of shape (B, T), T = ``block_size``, int64.

    Only those windows are read, so ``tokens`` may be a memory-mapped file far larger than memory.
    """
    chunks = torch.stack([_long(tokens[s : s + block_size + 1]) for s in starts.tolist()])  # (B, T + 1)
    return chunks[:, :-1].contiguous(), chunks[:, 1:].contiguous()  # (B, T) each


def window(tokens: Tokens, start: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The window at ``start``: ``x = tokens[start : start+T]``, ``y = tokens[start+1 : start+T+1]``.

    Returns two int64 tensors of shape (T,), T = ``block_size``.
    """
    n = check_stream(tokens, block_size)
    last = num_windows(n, block_size) - 1
    if not 0 <= start <= last:
        raise IndexError(f"window start {start} is out of range: with {n} tokens and block_size={block_size} "
                         f"it is 0 to {last}")
    x, y = windows(tokens, torch.tensor([start]), block_size)  # (1, T) each
    return x[0], y[0]


def get_batch(
    tokens: Tokens,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` windows at random starts: x and y of shape (B, T), int64.

    Pass a seeded ``generator`` for a repeatable batch. Only the sampled windows
    are read, so ``tokens`` may be a memory-mapped file far larger than memory.
    """
    n = check_stream(tokens, block_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size should be a positive int, got {batch_size!r}")
    starts = torch.randint(num_windows(n, block_size), (batch_size,), generator=generator)  # (B,)
    x, y = windows(tokens, starts, block_size)  # (B, T) each
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


class TokenWindows(Dataset):
    """The windows of a token stream as a ``torch.utils.data.Dataset``.

    Item ``i`` is the window starting at ``i * stride``. The default stride,
    ``block_size``, gives windows whose inputs do not overlap (one pass over the
    data per epoch); ``stride=1`` gives every window there is. Use it with a
    ``DataLoader(..., batch_size=B, shuffle=True)`` to get (x, y) batches of shape (B, T).
    """

    def __init__(self, tokens: Tokens, block_size: int, stride: int | None = None):
        n = check_stream(tokens, block_size)
        stride = block_size if stride is None else stride
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride should be a positive int, got {stride!r}")
        self.tokens, self.block_size, self.stride = tokens, block_size, stride
        self._len = (num_windows(n, block_size) - 1) // stride + 1

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self._len <= i < self._len:
            raise IndexError(f"window {i} is out of range for {self._len} windows")
        return window(self.tokens, (i % self._len) * self.stride, self.block_size)


def train_val_split(tokens: Tokens, val_fraction: float = 0.1) -> tuple[Tokens, Tokens]:
    """The first ``1 - val_fraction`` of the stream for training, the rest for validation.

    A contiguous cut, not a shuffle: shuffled windows would put overlapping text on
    both sides, and the validation loss would flatter the model.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction should be between 0 and 1 (e.g. 0.1), got {val_fraction!r}")
    n = len(tokens)
    n_train = int(round(n * (1.0 - val_fraction)))
    if not 0 < n_train < n:
        raise ValueError(f"{n} tokens are too few to split with val_fraction={val_fraction}")
    return tokens[:n_train], tokens[n_train:]


# --------------------------------------------------------------------------- synthetic data

BOS = 0  # the id that opens every sequence of :func:`in_context_bigrams`


def in_context_bigrams(
    n_sequences: int,
    length: int,
    vocab_size: int,
    follow: float = 0.75,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences in which every token has a favourite next token of its own, drawn afresh for each
    sequence: a task that only looking back in the sequence can solve, the job of an induction head
    (Bietti et al., 2023, *Birth of a transformer*; Edelman et al., 2024, *The evolution of
    statistical induction heads*).

    Each row starts with :data:`BOS` (id 0). Every row draws a successor for each of the ids
    ``1…vocab_size-1``; each later token is, with probability ``follow``, the successor of the token
    before it, else a uniformly random id. No two rows share their successors, so nothing learned
    about the ids themselves predicts the next token; what predicts it is what followed the same
    token earlier in the row.

    Returns ``ids`` (n_sequences, length) and ``predictable`` (n_sequences, length), True at the
    tokens that are their predecessor's successor when that predecessor was already followed by
    its successor earlier in the row: the tokens that looking back can get right. ``generator``
    (a seeded ``torch.Generator``) makes the draws repeatable, else torch's global one is used.
    """
    if vocab_size < 3:
        raise ValueError(f"vocab_size should be at least 3 (BOS and two tokens), got {vocab_size}")
    if length < 3:
        raise ValueError(f"length should be at least 3 (BOS, a token and its successor), got {length}")
    if not 0.0 <= follow <= 1.0:
        raise ValueError(f"follow is a probability, between 0 and 1; got {follow!r}")
    g = generator
    rows = torch.arange(n_sequences)  # (N,)
    successor = torch.randint(1, vocab_size, (n_sequences, vocab_size), generator=g)  # (N, V): each row's own
    ids = torch.randint(1, vocab_size, (n_sequences, length), generator=g)  # (N, T)
    ids[:, 0] = BOS
    follows = torch.rand(n_sequences, length, generator=g) < follow  # (N, T)
    follows[:, :2] = False  # BOS has no successor; the first token has no predecessor but BOS
    predictable = torch.zeros(n_sequences, length, dtype=torch.bool)  # (N, T)
    seen = torch.zeros(n_sequences, vocab_size, dtype=torch.bool)  # (N, V): seen followed by its successor
    for t in range(2, length):
        before = ids[:, t - 1]  # (N,)
        ids[:, t] = torch.where(follows[:, t], successor[rows, before], ids[:, t])
        predictable[:, t] = follows[:, t] & seen[rows, before]
        seen[rows, before] |= follows[:, t]
    return ids, predictable


# --------------------------------------------------------------------------- token files

TOKEN_DTYPE = np.uint16  # GPT-2's 50,257 ids fit in 16 bits: half the bytes of int32


def _as_uint16(ids) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"token ids should be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(TOKEN_DTYPE)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"token ids should be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > np.iinfo(TOKEN_DTYPE).max:
        raise ValueError(f"token files store ids as uint16 (0 to {np.iinfo(TOKEN_DTYPE).max}), but these ids run "
                         f"from {lo} to {hi}")
    return arr.astype(TOKEN_DTYPE, copy=False)


def encode_to_file(path: str | os.PathLike, texts: Iterable[str], encode: Callable[[str], Sequence[int]]) -> int:
    """Encode ``texts`` one piece at a time and append the ids to a token file; return how many ids.

    Only one piece is in memory at a time, so a corpus larger than memory can be
    tokenized by passing its documents (or an open file's lines) as ``texts``.
    The file appears only when complete.
    """
    count = 0
    with replacing(path) as written, open(written, "wb") as f:
        for text in texts:
            ids = _as_uint16(encode(text))
            ids.tofile(f)
            count += ids.size
    return count


def write_tokens(path: str | os.PathLike, ids: Tokens) -> Path:
    """Write ``ids`` as a raw uint16 token file (nanoGPT's ``.bin`` format); return its path."""
    encode_to_file(path, [ids], lambda chunk: chunk)
    return Path(path)


def read_tokens(path: str | os.PathLike) -> np.memmap:
    """A token file as a read-only memory map: ids are read from disk only when sliced."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write it with write_tokens or encode_to_file")
    size = path.stat().st_size
    if size == 0 or size % np.dtype(TOKEN_DTYPE).itemsize:
        raise ValueError(f"{path} is {size} bytes, not a whole number (>0) of uint16 ids: it is not a token file, or "
                         "it is truncated")
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r")


__all__ = [
    "load_text",
    "gpt2_merges_path",
    "CORPORA",
    "KNOWN_FILES",
    "CharTokenizer",
    "num_windows",
    "check_stream",
    "windows",
    "window",
    "get_batch",
    "TokenWindows",
    "train_val_split",
    "BOS",
    "in_context_bigrams",
    "TOKEN_DTYPE",
    "write_tokens",
    "encode_to_file",
    "read_tokens",
]
