"""The byte-level BPE tokenizer: train, encode, decode, save, load.

A tokenizer is three things:

* ``byte_ids``: the id of each of the 256 bytes. A trained tokenizer gives byte b the
  id b; GPT-2 numbers its bytes in another order, so this is a table, not a rule.
* ``merges``: the ordered list of pairs; merge k turns the pair into id 256 + k.
  Encoding applies them in the same order: the earliest-learned merge first.
* ``special_tokens``: strings such as ``<|endoftext|>`` that become one fixed id, and
  only when the caller allows it (as in tiktoken).

Text is pre-split with a regex (:mod:`minigpt2.tokenizer.pretokenize`) and merges never
cross a chunk boundary, so each distinct chunk is encoded once and remembered.
"""

from __future__ import annotations

import heapq
import json
import operator
import os
from collections.abc import Collection, Iterable, Set as AbstractSet
from pathlib import Path
from typing import Literal

import regex

from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN, compiled, split_text
from minigpt2.tokenizer.train import train_merges

Pair = tuple[int, int]  # two adjacent ids; a merge turns one into a new id

FILE_FORMAT = "minigpt2-bpe"
FILE_VERSION = 1
NO_MERGE = 1 << 62  # ranks above every real merge
LONG_CHUNK = 48  # bytes; from here on a chunk is merged with a heap (merge_long); measured crossover 32-64
CACHE_LIMIT = 200_000  # distinct chunks remembered before the memory is cleared


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be loaded; the message says what is wrong in it."""


class UnknownTokenError(KeyError, ValueError):
    """Decoding an id the tokenizer does not have: a KeyError as in tiktoken (and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class BPETokenizer:
    def __init__(
        self,
        merges: Iterable[Pair] = (),
        pattern: str | None = GPT2_SPLIT_PATTERN,
        special_tokens: dict[str, int] | None = None,
        byte_ids: Iterable[int] | None = None,
    ):
        self.merges: list[Pair] = [(int(a), int(b)) for a, b in merges]
        self.pattern = pattern
        self.byte_ids: list[int] = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self._check()
        # ids -> bytes, for decoding
        self.vocab: dict[int, bytes] = {byte_id: bytes([b]) for b, byte_id in enumerate(self.byte_ids)}
        for k, (a, b) in enumerate(self.merges):
            self.vocab[256 + k] = self.vocab[a] + self.vocab[b]
        self.vocab.update({i: s.encode("utf-8") for s, i in self.special_tokens.items()})
        # pair -> the id it merges into; the smallest id is the earliest merge
        self._ranks: dict[Pair, int] = {pair: 256 + k for k, pair in enumerate(self.merges)}
        self._byte_table = bytes(self.byte_ids)
        self._chunk_cache: dict[str, list[int]] = {}

    def _check(self) -> None:
        if sorted(self.byte_ids) != list(range(256)):
            raise ValueError("byte_ids must give each of the 256 bytes its own id in 0..255 (a permutation "
                             "of range(256)).")
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(
                    f"merge {k} ({a}, {b}) uses an id that does not exist yet: merge k may only use ids "
                    f"below {256 + k}."
                )
        first_free = 256 + len(self.merges)
        for text, i in self.special_tokens.items():
            if not text:
                raise ValueError("a special token cannot be the empty string.")
            if i < first_free:
                raise ValueError(f"special token {text!r} has id {i}, which a byte or a merge already uses; give it an "
                                 f"id ≥ {first_free}.")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ValueError(f"two special tokens share an id: {self.special_tokens}")

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: str | None = GPT2_SPLIT_PATTERN,
        special_tokens: dict[str, int] | None = None,
    ) -> "BPETokenizer":
        """A tokenizer with ``vocab_size`` ids (256 bytes + merges) learned from ``text``.

        Each step merges the most frequent adjacent pair, the smaller pair on a tie
        (see :mod:`minigpt2.tokenizer.train`). Special tokens come on top of ``vocab_size``."""
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int ≥ 256 (the 256 bytes come first), not {vocab_size!r}.")
        merges = train_merges(text, vocab_size, pattern)
        if len(merges) < vocab_size - 256:
            raise ValueError(
                f"the text only allows {len(merges)} merges (every chunk became one token), so at most "
                f"vocab_size={256 + len(merges)}; train on more text or ask for fewer ids."
            )
        return cls(merges, pattern, special_tokens)

    # ------------------------------------------------------------------ encoding

    @property
    def vocab_size(self) -> int:
        """How many ids the tokenizer uses: 256 bytes, the merges, the special tokens."""
        return 256 + len(self.merges) + len(self.special_tokens)

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of ``text``, treating special-token strings as plain text."""
        text = _replace_lone_surrogates(text)
        cache = self._chunk_cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        ids: list[int] = []
        for chunk in split_text(text, self.pattern):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
            ids += chunk_ids
        return ids

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges to one chunk, always the earliest-learned merge present first, the
        leftmost of its occurrences first (as tiktoken merges)."""
        ids = list(chunk.translate(self._byte_table))  # byte b -> byte_ids[b], in C
        if len(ids) < LONG_CHUNK:
            return merge_short(ids, self._ranks)
        return merge_long(ids, self._ranks)

    def encode(
        self,
        text: str,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """The ids of ``text``, with special tokens handled as tiktoken handles them.

        A special token's text becomes its id only if it is in ``allowed_special`` (a set or
        frozenset, or ``"all"``). If the text contains any string of ``disallowed_special``
        (by default every special token not allowed) the call raises ValueError; otherwise a
        special token's text that is not allowed is plain text. As in tiktoken, names this
        tokenizer does not have are accepted (allowed: nothing to find; disallowed: the string
        is still refused in the text), and ``allowed_special`` must be a set: a list or tuple
        raises TypeError."""
        # tiktoken's steps, in tiktoken's order, so that a call fails (or not) as there
        if allowed_special == "all":
            allowed_special = frozenset(self.special_tokens)
        if disallowed_special == "all":
            _check_allowed(allowed_special)
            disallowed_special = frozenset(self.special_tokens) - allowed_special
        if disallowed_special:
            disallowed = frozenset(disallowed_special)  # like tiktoken, a string stands for its characters
            found = compiled(_alternation(disallowed)).search(text)
            if found:
                token = found.group()
                raise ValueError(
                    f"the text contains the special token {token!r}, which is disallowed. To encode it as the special "
                    f"token, pass allowed_special={{{token!r}}}; to encode it as plain text, pass "
                    "disallowed_special=()."
                )
        _check_allowed(allowed_special)
        allowed = allowed_special & self.special_tokens.keys()
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        # a capturing split keeps the special tokens: [text, special, text, special, ..., text]
        for k, part in enumerate(compiled(f"({_alternation(allowed)})").split(text)):
            ids += [self.special_tokens[part]] if k % 2 else self.encode_ordinary(part)
        return ids

    # ------------------------------------------------------------------ decoding

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids``. An id this tokenizer does not have raises :class:`UnknownTokenError`
        (a KeyError, as tiktoken raises, and a ValueError); a negative one or one past 2**32 - 1
        an OverflowError, a non-integer a TypeError, as in tiktoken."""
        ids = ids if isinstance(ids, (list, tuple)) else list(ids)
        if all(type(i) is int for i in ids):
            try:
                return b"".join([self.vocab[i] for i in ids])
            except KeyError:
                pass  # an unknown id: found and named below
        # ids of other types (numpy or torch integers hash by identity, 1.0 would find id 1) or an unknown id
        parts = []
        for i in ids:
            token_id = operator.index(i)  # TypeError for a non-integer, as tiktoken
            if not 0 <= token_id < 2**32:
                raise OverflowError(f"token id {token_id} is out of range: ids are 0 … {self.vocab_size - 1} (tiktoken "
                                    "reads them as unsigned 32-bit)")
            if token_id not in self.vocab:
                raise UnknownTokenError(f"id {token_id} is not in this tokenizer's vocabulary of {self.vocab_size} ids "
                                        f"(0 … {max(self.vocab)})")
            parts.append(self.vocab[token_id])
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``. Bytes that are not valid UTF-8 (a character cut between two
        tokens, say) become U+FFFD '�', as in tiktoken, instead of raising."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON, one merge per line (merge k makes id 256 + k)."""
        path = Path(path)
        header = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "byte_ids": self.byte_ids,
        }
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in header.items()]
        merges = ",\n".join(f"    [{a}, {b}]" for a, b in self.merges)
        path.write_text("{\n" + "\n".join(lines) + '\n  "merges": [\n' + merges + "\n  ]\n}\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """The tokenizer written by :meth:`save`; a malformed file raises a TokenizerFileError saying what is wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TokenizerFileError(
                f"{path} does not exist; save a tokenizer there first with tokenizer.save(path)."
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TokenizerFileError(f"{path} is not a tokenizer file written by BPETokenizer.save ({err}).") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise TokenizerFileError(f"{path} is JSON but not a tokenizer file written by BPETokenizer.save (no "
                                     f"\"format\": \"{FILE_FORMAT}\").")
        if data.get("version") != FILE_VERSION:
            raise TokenizerFileError(f"{path} has format version {data.get('version')!r}; this minigpt2 reads version "
                                     f"{FILE_VERSION}.")
        missing = {"pattern", "special_tokens", "byte_ids", "merges"} - set(data)
        if missing:
            raise TokenizerFileError(f"{path} lacks the field(s) {sorted(missing)}.")
        try:
            return cls(_pairs(data["merges"]), data["pattern"], _special(data["special_tokens"]),
                       _ints(data["byte_ids"]))
        except ValueError as err:
            raise TokenizerFileError(f"{path} is damaged: {err}") from None

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")


def merge_short(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """BPE on a short chunk: find the lowest-ranked pair (the leftmost of equals), merge it, repeat.
    ``ranks`` maps a pair to the id it merges into, earlier merges having smaller ids.
    Quadratic in the chunk's length (each merge scans the pairs), and fastest on words."""
    pair_ranks = [ranks.get(pair, NO_MERGE) for pair in zip(ids, ids[1:])]  # pair_ranks[i]: ids i, i+1
    while pair_ranks:
        rank = min(pair_ranks)
        if rank == NO_MERGE:
            break
        i = pair_ranks.index(rank)  # the leftmost occurrence, as tiktoken merges
        ids[i : i + 2] = [rank]  # the rank is the new id
        del pair_ranks[i]
        # only the pairs touching the new id changed
        if i > 0:
            pair_ranks[i - 1] = ranks.get((ids[i - 1], rank), NO_MERGE)
        if i < len(pair_ranks):
            pair_ranks[i] = ranks.get((rank, ids[i + 1]), NO_MERGE)
    return ids


def merge_long(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """The same merges as :func:`merge_short`, in O(n log n) for a chunk of n ids.

    The ids form a linked list (a merged id stays at the position of its left part) and every
    pair sits in a heap keyed by (rank, position): the top is the lowest rank, leftmost first.
    A merge changes only its two neighbouring pairs, pushed anew; a heap entry whose pair has
    since changed no longer has its rank there and is skipped when it comes up.
    """
    n = len(ids)
    nxt = list(range(1, n + 1))  # nxt[i]: the position after i (n: none)
    prev = list(range(-1, n - 1))  # prev[i]: the position before i (-1: none)
    shift = n.bit_length()  # a heap key is rank << shift | position: one int, compared fast
    mask = (1 << shift) - 1
    rank_of, push, pop = ranks.get, heapq.heappush, heapq.heappop
    heap = [rank << shift | i for i, pair in enumerate(zip(ids, ids[1:])) if (rank := rank_of(pair)) is not None]
    heapq.heapify(heap)
    while heap:
        key = pop(heap)
        rank, i = key >> shift, key & mask
        j = nxt[i]
        if j == n or rank_of((ids[i], ids[j])) != rank:
            continue  # stale: i was merged away (its id is -1) or its pair changed
        ids[i] = rank  # the rank is the new id; position j is gone
        ids[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k < n:
            prev[k] = i
            right = rank_of((rank, ids[k]))
            if right is not None:
                push(heap, right << shift | i)
        p = prev[i]
        if p >= 0:
            left = rank_of((ids[p], rank))
            if left is not None:
                push(heap, left << shift | p)
    out, i = [], 0
    while i < n:
        out.append(ids[i])
        i = nxt[i]
    return out


def _check_allowed(allowed_special) -> None:
    if not isinstance(allowed_special, AbstractSet):
        raise TypeError(
            f'allowed_special should be "all" or a set of special tokens (a set or frozenset, as tiktoken '
            f"requires), not a {type(allowed_special).__name__}: pass set({allowed_special!r})"
        )


def _alternation(strings: Iterable[str]) -> str:
    """A regex matching any of ``strings``, longest first."""
    return "|".join(regex.escape(s) for s in sorted(strings, key=len, reverse=True))


def _replace_lone_surrogates(text: str) -> str:
    """Text that UTF-8 can encode: lone surrogates (from broken UTF-16) become U+FFFD, as in tiktoken."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _ints(values) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError("byte_ids should be a list of 256 ints.")
    return values


def _pairs(values) -> list[Pair]:
    if not isinstance(values, list):
        raise ValueError("merges should be a list of [id, id] pairs.")
    for k, v in enumerate(values):
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            raise ValueError(f"merge {k} is {v!r}, not a pair of ids like [104, 101].")
    return [tuple(v) for v in values]


def _special(values) -> dict[str, int]:
    if not isinstance(values, dict) or not all(isinstance(i, int) and not isinstance(i, bool) for i in values.values()):
        raise ValueError('special_tokens should map strings to ids, like {"<|endoftext|>": 50256}.')
    return values
