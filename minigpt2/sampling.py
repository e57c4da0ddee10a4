"""From next-token logits to text (lesson 09).

The model gives, for the next position, one score (logit) per token of the vocabulary.
Turning scores into text takes three decisions, each a small function here:

* **Which distribution?** Transforms of the logits, applied in this order (as Hugging
  Face does): :class:`Temperature` divides by T (T < 1 sharpens, T > 1 flattens);
  :class:`TopK` keeps the k likeliest tokens; :class:`TopP` keeps the smallest set of
  likeliest tokens whose probability reaches p (the "nucleus"). A removed token gets
  the logit -inf, so probability 0 after the softmax. They compose:
  ``apply_transforms(logits, logits_transforms(0.8, top_k=50, top_p=0.95))``.
* **Which token?** :func:`sample_next` draws from ``softmax(logits)`` with an optional,
  seedable ``torch.Generator``; temperature 0 means greedy, the argmax.
* **When to stop?** :func:`generate_tokens` runs the model token after token (with or
  without the KV cache of :mod:`minigpt2.kv_cache`); :func:`stream_text` turns that into
  text, yielded as it is produced, and stops at ``<|endoftext|>`` or a stop string.

And one number to judge a model by: :func:`perplexity`, exp of the mean next-token loss
on a text ("as unsure as a uniform choice among this many tokens").
"""

from __future__ import annotations

import codecs
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from minigpt2.tokenizer.gpt2 import END_OF_TEXT, END_OF_TEXT_ID

LogitsTransform = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- checking the settings


def check_sampling_settings(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError (saying what to pass instead) for a setting that makes no sense."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or math.isnan(temperature):
        raise ValueError("temperature should be a number >= 0 (0 is greedy, 1 the model's own distribution), got "
                         f"{temperature!r}")
    if temperature < 0:
        raise ValueError(f"temperature should be >= 0 (0 is greedy, 1 the model's own distribution), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k should be a whole number of tokens >= 1 (or None to keep them all), got {top_k!r}")
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0
    ):
        raise ValueError(f"top_p should be a probability in (0, 1] (or None to keep every token), got {top_p!r}")


# --------------------------------------------------------------------------- logits transforms


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to -inf.

    logits: (..., V). A ``k`` above V keeps everything. Tokens tied with the k-th are
    kept too (as in nanoGPT and Hugging Face), so a row may keep more than k on ties.
    """
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))  # (..., V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of likeliest tokens whose total probability reaches ``p``
    (the nucleus), set the others to -inf. The same set as transformers' ``TopPLogitsWarper``.

    logits: (..., V). The set is found from the bottom, as transformers does: sort the tokens
    from the least likely up, and drop them while their accumulated probability (this token's
    and every less likely one's) is at most ``1 - p``; what is left holds at least ``p``. So
    the token that crosses ``p`` (the boundary token) is kept, the likeliest token always is,
    and a token exactly at the boundary (the ones dropped sum to exactly ``1 - p`` in the
    logits' dtype) is dropped. ``p = 1`` drops only tokens of probability exactly 0.

    Ties: tokens of equal probability are taken in the order ``torch.sort(logits)`` (ascending,
    its default, not stable) puts them, the one transformers uses; when a tie straddles the
    boundary, those it places first are dropped and those after it kept.
    """
    sorted_logits, order = torch.sort(logits, dim=-1)  # (..., V) each, least likely first
    mass_so_far = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V): this token and all less likely
    drop_sorted = mass_so_far <= 1 - p  # (..., V), in sorted order; 1 - p is compared in the logits' dtype
    drop_sorted[..., -1] = False  # the likeliest token stays, whatever p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # (..., V), back in vocabulary order
    return logits.masked_fill(drop, float("-inf"))


@dataclass(frozen=True)
class Temperature:
    """Divide the logits by ``t``: t < 1 sharpens the distribution, t > 1 flattens it.
    ``t = 0`` has no distribution (it is greedy): :func:`sample_next` handles it."""

    t: float

    def __post_init__(self):
        check_sampling_settings(temperature=self.t)
        if self.t == 0:
            raise ValueError("Temperature(0) would divide by zero; temperature 0 means greedy: use "
                             "sample_next(logits, temperature=0)")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.t


@dataclass(frozen=True)
class TopK:
    """Keep the ``k`` likeliest tokens (:func:`top_k_filter`)."""

    k: int

    def __post_init__(self):
        check_sampling_settings(top_k=self.k)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return top_k_filter(logits, self.k)


@dataclass(frozen=True)
class TopP:
    """Keep the nucleus of probability ``p`` (:func:`top_p_filter`)."""

    p: float

    def __post_init__(self):
        check_sampling_settings(top_p=self.p)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return top_p_filter(logits, self.p)


def logits_transforms(temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None) -> list[LogitsTransform]:
    """The transforms for these settings, in the order they apply: temperature, top-k, top-p.

    Temperature 1 and missing top-k / top-p add nothing. Temperature 0 (greedy) needs no
    transform: the argmax is the same whatever the filters keep.
    """
    check_sampling_settings(temperature, top_k, top_p)
    transforms: list[LogitsTransform] = []
    if temperature not in (0, 1):
        transforms.append(Temperature(temperature))
    if top_k is not None:
        transforms.append(TopK(top_k))
    if top_p is not None and top_p < 1.0:
        transforms.append(TopP(top_p))
    return transforms


def apply_transforms(logits: torch.Tensor, transforms: Sequence[LogitsTransform]) -> torch.Tensor:
    """``logits`` passed through each transform in turn."""
    for transform in transforms:
        logits = transform(logits)
    return logits


# --------------------------------------------------------------------------- choosing the next token


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """The next token of each row: logits (B, V) -> ids (B, 1).

    Temperature 0 is greedy (the argmax; top-k and top-p change nothing then). Otherwise the
    logits go through :func:`logits_transforms` and one token is drawn from their softmax,
    with ``generator`` (a seeded ``torch.Generator`` gives the same tokens every run) or
    torch's global generator when it is None. A list of B generators draws row r with
    ``generator[r]`` alone, so a row's tokens do not depend on the other rows of the batch.
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_next expects logits of shape (B, vocab_size), got {tuple(logits.shape)}; for one row "
                         "use logits[None]")
    transforms = logits_transforms(temperature, top_k, top_p)  # checks the settings
    return _pick(logits, None if temperature == 0 else transforms, generator)


def _pick(logits: torch.Tensor, transforms: Sequence[LogitsTransform] | None, generator) -> torch.Tensor:
    """:func:`sample_next` with its settings checked and turned into ``transforms`` (None: greedy)."""
    if transforms is None:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    probs = apply_transforms(logits, transforms).softmax(dim=-1)  # (B, V)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
    generators = list(generator)
    if len(generators) != probs.size(0) or not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(
            f"generator should be one torch.Generator or a list of one per row ({probs.size(0)}), "
            f"got {len(generators)} item(s) of type(s) {sorted({type(g).__name__ for g in generators})}"
        )
    rows = [torch.multinomial(row[None], num_samples=1, generator=g) for row, g in zip(probs, generators)]  # B x (1, 1)
    return torch.cat(rows)  # (B, 1)


# --------------------------------------------------------------------------- the generation loop


def prepare_prompt(idx: torch.Tensor, block_size: int, vocab_size: int) -> torch.Tensor:
    """Check a (B, T) prompt of token ids; an empty one (T = 0) becomes ``<|endoftext|>``.

    A prompt longer than ``block_size`` is kept whole (it is part of the output), with a
    warning that the model will see only its last ``block_size`` tokens.
    """
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int32, torch.int64):
        what = f"shape {tuple(idx.shape)}, dtype {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"the prompt should be a (B, T) tensor of token ids, got {what}; one sequence is "
                         "torch.tensor([ids])")
    if idx.size(1) == 0:
        if vocab_size <= END_OF_TEXT_ID:
            raise ValueError(
                f"an empty prompt starts from <|endoftext|> (id {END_OF_TEXT_ID}), which a vocabulary of "
                f"{vocab_size} tokens does not have: give the prompt at least one token"
            )
        return torch.full((idx.size(0), 1), END_OF_TEXT_ID, dtype=torch.long, device=idx.device)
    if idx.size(1) > block_size:
        warnings.warn(
            f"the prompt has {idx.size(1)} tokens, more than the model's context of {block_size}: "
            f"the model sees only the last {block_size}",
            stacklevel=3,
        )
    return idx.long()


def generate_tokens(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    attention_mask: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """An iterator over the next token ids (B, 1), one step at a time, ``max_new_tokens`` steps.

    ``idx`` (B, T) is the prompt (see :func:`prepare_prompt`). The model always conditions on
    the last ``block_size`` tokens: the window slides once the context is full.

    Without the cache every step runs the model on the whole window. With it
    (``use_cache=True``) the first step runs the prompt and stores every layer's keys and
    values; each later step runs only the newest token, its query attending to the stored
    keys. Past ``block_size`` tokens the window slides by one token a step; GPT-2's
    position embeddings are absolute, so sliding moves every token to a new position and
    changes every stored key and value: the cache is then rebuilt from the window each step
    (a full forward pass, as uncached). Both paths therefore compute the same logits, up to
    float rounding, and give the same tokens: always under greedy decoding, and with the
    same seeded ``generator`` when sampling. Call ``model.eval()`` first: dropout is random.

    ``attention_mask`` (B, T), 1 for a token and 0 for padding, generates a padded batch
    (see :meth:`minigpt2.model.GPT.forward`); it grows by a 1 a step and slides with the
    window. A mask of all ones is the same as none, and runs the unmasked path.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens should be a whole number >= 0, got {max_new_tokens!r}")
    transforms = logits_transforms(temperature, top_k, top_p)  # checks the settings, once for every token
    window = prepare_prompt(idx, model.config.block_size, model.config.vocab_size)
    attention_mask = prepare_attention_mask(attention_mask, idx, window)
    return _decode(model, window, max_new_tokens, None if temperature == 0 else transforms, use_cache, generator,
                   attention_mask)


def prepare_attention_mask(attention_mask: torch.Tensor | None, idx: torch.Tensor,
                           window: torch.Tensor) -> torch.Tensor | None:
    """Check a prompt's (B, T) mask; None when it masks nothing (the unmasked path is the fast one)."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != idx.shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask should have the prompt's shape {tuple(idx.shape)}, 1 for a token and 0 for "
                         f"padding, got {got}")
    binary = bool(((attention_mask == 0) | (attention_mask == 1)).all())
    if attention_mask.is_floating_point() or attention_mask.is_complex() or not binary:
        raise ValueError("attention_mask should hold only 1 (a token) and 0 (padding), as an integer or bool tensor")
    if idx.size(1) == 0 or bool(attention_mask.all()):
        return None  # an empty prompt became <|endoftext|> in every row
    empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"row(s) {empty} of attention_mask hold no token: give every prompt at least one token "
                         "(e.g. <|endoftext|>)")
    return attention_mask.long().to(window.device)


SMALL_MODEL_PARAMS = 20_000_000  # below this a token's products take well under a millisecond on one thread


def decode_threads(model, batch_size: int) -> int:
    """How many threads one generation step runs on, on a CPU: batch-1 decoding does ~50 small
    operations a token, each ending with the threads waiting for one another. On a busy machine a
    thread that has lost its core stalls every one of them (measured on a busy 2-core host: 120 tokens
    of a 0.8M-parameter model, 3.0 s on 1 thread against 113 s on 2; 40 of GPT-2 small, 12–17 s against
    83–106 s; benchmarks/RESULTS.md). So one thread for a small
    model (the second could save a fraction of a millisecond a token) and, for a big one, when the
    load average says the cores are already taken by others; otherwise PyTorch's thread count."""
    threads = torch.get_num_threads()
    if threads == 1 or batch_size > 1 or next(model.parameters()).device.type != "cpu":
        return threads
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        return 1
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1) + 1  # our own work counts up to about 1 of it
    except OSError:  # no load average (Windows)
        busy = False
    return 1 if busy else threads


@contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


@torch.inference_mode()
def _decode(model, window, max_new_tokens, transforms, use_cache, generator, mask=None):
    block_size = model.config.block_size
    window = window[:, -block_size:]  # (B, <= block_size): what the model sees
    if mask is not None:
        mask = mask[:, -block_size:]  # (B, <= block_size): 1 for a token, 0 for padding
        ones = mask.new_ones(mask.size(0), 1)  # (B, 1): each new token is a real one
    cache = model.new_kv_cache() if use_cache else None
    unseen = window  # the tokens the cache does not hold yet
    # set around each step only: between yields the caller's count holds
    threads = decode_threads(model, window.size(0))
    for _ in range(max_new_tokens):
        padding = {} if mask is None else {"attention_mask": mask}  # no mask: the model's plain causal path
        with _threads(threads):
            if cache is None:
                logits, _ = model(window, last_only=True, **padding)  # (B, 1, V)
            else:
                if cache.length + unseen.size(1) > block_size:  # full: slide, and rebuild from the window
                    cache.reset()
                    unseen = window
                logits, _ = model(unseen, kv_cache=cache, last_only=True, **padding)  # (B, 1, V)
            next_id = _pick(logits[:, -1, :], transforms, generator)  # (B, 1)
        yield next_id
        window = torch.cat([window, next_id], dim=1)[:, -block_size:]  # (B, <= block_size)
        if mask is not None:
            mask = torch.cat([mask, ones], dim=1)[:, -block_size:]  # (B, <= block_size)
        unseen = next_id


# --------------------------------------------------------------------------- text in, text out


def _end_of_text_id(tokenizer) -> int | None:
    special = getattr(tokenizer, "special_tokens", None)
    if isinstance(special, dict):
        return special.get(END_OF_TEXT)
    eot = getattr(tokenizer, "eot_token", None)  # tiktoken's Encoding
    return eot if isinstance(eot, int) else None


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The bytes of one generated token. Byte-level tokenizers (ours, tiktoken) may cut a
    character between two tokens; others give whole characters; a special token gives its text.

    An id the tokenizer does not have is one of a padded vocabulary's extra rows
    (``vocab_multiple`` rounds the model's vocabulary up, and no text holds those ids, so a
    trained model seldom picks one): it comes out as the marker ``<|unused 50300|>``, so the
    text shows that the model chose it without stopping the generation."""
    try:
        if hasattr(tokenizer, "decode_bytes"):
            return tokenizer.decode_bytes([token_id])
        return tokenizer.decode([token_id]).encode("utf-8")
    except (KeyError, IndexError, ValueError):  # the tokenizers' "no such id" (ours raise UnknownTokenError)
        return f"<|unused {token_id}|>".encode()


def decode_tokens(tokenizer, ids: Sequence[int]) -> str:
    """The text of generated ``ids``, each token as :func:`token_bytes` gives it; bytes that are
    not valid UTF-8 (a character cut off at the end) become '�'."""
    return b"".join(token_bytes(tokenizer, int(i)) for i in ids).decode("utf-8", errors="replace")


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """The prompt's ids; an empty prompt becomes ``[<|endoftext|>]``, GPT-2's start of a document."""
    if not isinstance(prompt, str):
        raise TypeError(f"the prompt should be a str, got {type(prompt).__name__}")
    if prompt:
        return list(tokenizer.encode(prompt))
    eot = _end_of_text_id(tokenizer)
    if eot is None:
        raise ValueError(
            "an empty prompt starts from <|endoftext|>, which this tokenizer does not have: give at least one "
            "character, e.g. '\\n'"
        )
    return [eot]


class TextAssembler:
    """Turns token bytes into text that is safe to show, one piece at a time.

    * A character whose UTF-8 bytes are split across tokens is held back until it is
      complete (an incremental UTF-8 decoder); bytes that can never be valid become '�'.
    * With stop strings, text that might be the start of one is held back until the next
      token decides; once a stop string appears, the text before it is released and
      :attr:`stopped` becomes True.
    """

    def __init__(self, stop: Sequence[str] = ()):
        self.stop = [s for s in stop if s]
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # decoded text not yet released

    def feed(self, data: bytes, final: bool = False) -> str:
        """The text that is safe to release after ``data``; ``final`` flushes everything."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(data, final=final)
        hits = [i for i in (self._pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            out, self._pending = self._pending[: min(hits)], ""
            return out
        keep = 0 if final else self._longest_stop_prefix_at_end()
        out, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        return out

    def _longest_stop_prefix_at_end(self) -> int:
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(s[:n]):
                    longest = n
                    break
        return longest


def stream_text(
    model,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = 100,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] = (),
    seed: int | None = None,
    use_cache: bool = True,
    stop_at_end_of_text: bool = True,
) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text, piece by piece, while it is generated.

    Only complete text is yielded (a character split across tokens waits for its last byte).
    Generation stops after ``max_new_tokens`` tokens, at ``<|endoftext|>`` (not yielded) when
    ``stop_at_end_of_text``, or at the first ``stop`` string (not yielded, nor anything after it).
    An empty prompt starts from ``<|endoftext|>``. ``seed`` makes the draws repeatable.
    """
    stops = [stop] if isinstance(stop, str) else list(stop)
    ids = encode_prompt(tokenizer, prompt)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    eot = _end_of_text_id(tokenizer) if stop_at_end_of_text else None
    assembler = TextAssembler(stops)
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    for next_id in generate_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator):
        token = int(next_id)
        if token == eot:
            break
        piece = assembler.feed(token_bytes(tokenizer, token))
        if piece:
            yield piece
        if assembler.stopped:
            return
    piece = assembler.feed(b"", final=True)
    if piece:
        yield piece


def complete_text(model, tokenizer, prompt: str = "", max_new_tokens: int = 100, **settings) -> str:
    """The continuation of ``prompt`` as one string (:func:`stream_text`, joined)."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, **settings))


# --------------------------------------------------------------------------- perplexity


@torch.inference_mode()
def perplexity(model, ids: Sequence[int] | torch.Tensor, stride: int | None = None) -> float:
    """exp(mean negative log-likelihood) of each token of ``ids`` given the tokens before it.

    A perplexity of P means the model is, on average, as unsure as a uniform choice among
    P tokens: a model that knows nothing scores the vocabulary size V (its loss is ln V),
    a perfect one 1. The first token has nothing before it and is not scored. Texts longer
    than the context are scored in windows of ``block_size`` tokens that advance by
    ``stride`` (default ``block_size // 2``); each window scores only its tokens the previous
    window did not, so every token is scored once, with at least ``block_size - stride``
    tokens of context (except near the start).
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()  # (N,)
    if ids.numel() < 2:
        raise ValueError(f"perplexity needs at least 2 tokens (the first one is only context), got {ids.numel()}")
    block_size = model.config.block_size
    stride = block_size // 2 if stride is None else stride
    if not 1 <= stride <= block_size:
        raise ValueError(f"stride should be between 1 and block_size={block_size}, got {stride}")
    device = next(model.parameters()).device
    ids = ids.to(device)
    total_nll, scored, end = 0.0, 0, 1  # tokens [1, end) are scored so far
    while end < ids.numel():
        new_end = min(end + stride, ids.numel()) if end > 1 else min(block_size + 1, ids.numel())
        start = max(0, new_end - 1 - block_size)
        inputs = ids[start : new_end - 1][None]  # (1, T)
        targets = ids[start + 1 : new_end].clone()[None]  # (1, T)
        targets[:, : end - 1 - start] = -1  # already scored by the previous window
        logits, _ = model(inputs)  # (1, T, V)
        n = int((targets != -1).sum())
        total_nll += F.cross_entropy(logits[0], targets[0], ignore_index=-1, reduction="sum").item()
        scored += n
        end = new_end
    return math.exp(total_nll / scored)


__all__ = [
    "LogitsTransform",
    "Temperature",
    "TextAssembler",
    "TopK",
    "TopP",
    "apply_transforms",
    "check_sampling_settings",
    "complete_text",
    "decode_tokens",
    "encode_prompt",
    "generate_tokens",
    "logits_transforms",
    "perplexity",
    "prepare_attention_mask",
    "prepare_prompt",
    "sample_next",
    "stream_text",
    "token_bytes",
    "top_k_filter",
    "top_p_filter",
]
