"""BPE as the lesson builds it: plain, slow, obviously right.

Training repeats one step: count every adjacent pair of ids, merge the most frequent
pair everywhere into a new id. Ties between equally frequent pairs go to the smaller
pair, ``(a, b) < (c, d)`` as tuples, so training is deterministic.

The fast trainer (:mod:`minigpt2.tokenizer.train`) must yield exactly these merges;
the tests check it. The grading checks of lesson 01 use these functions as references.
"""

from __future__ import annotations

from minigpt2.tokenizer.bpe import Pair
from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN, split_text


def pair_counts(ids: list[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each adjacent pair occurs in ``ids`` (overlapping: [1, 1, 1] has (1, 1) twice),
    added to ``counts`` when given."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, scanning left to right
    ([1, 1, 1] with (1, 1) -> [new_id, 1])."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def most_frequent_pair(counts: dict[Pair, int]) -> Pair:
    """The pair with the highest count; among equals, the smallest pair."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_simple(text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN) -> list[Pair]:
    """The merges, in order, of a byte-level BPE with ``vocab_size`` ids; merge k makes id 256 + k.

    Recounts every pair after every merge: fine for a page of text, minutes for a book.
    Stops early when no pair is left to merge."""
    chunks = [list(chunk.encode("utf-8")) for chunk in split_text(text, pattern)]
    merges: list[Pair] = []
    for new_id in range(256, vocab_size):
        counts: dict[Pair, int] = {}
        for ids in chunks:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = most_frequent_pair(counts)
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
        merges.append(pair)
    return merges


def encode_simple(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """BPE encoding as the lesson writes it: while a learned pair is present, merge the
    earliest-learned one (the smallest new id in ``ranks``, pair -> new id) everywhere.

    Recounts the pairs after every merge, quadratic in the length; the tokenizer's fast
    versions (:func:`minigpt2.tokenizer.bpe.merge_short`, :func:`~minigpt2.tokenizer.bpe.merge_long`)
    must give these ids."""
    while len(ids) >= 2:
        pair = min(pair_counts(ids), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break  # no learned merge applies any more
        ids = merge_pair(ids, pair, ranks[pair])
    return ids
