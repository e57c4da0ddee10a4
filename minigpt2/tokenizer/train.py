"""Fast BPE training: the same merges as :func:`minigpt2.tokenizer.simple.train_simple`, in seconds.

Two ideas make it fast:

1. Work on *distinct* chunks with their frequencies. Tinyshakespeare splits into
   about 300,000 chunks but only about 15,000 distinct ones; " the" is stored once,
   with its count.
2. Update pair counts incrementally. A merge only changes the chunks that contain
   its pair, so for those chunks alone subtract their old pairs (times the chunk's
   frequency) and add their new ones. An index from pair to the chunks holding it
   finds them, and a heap of (-count, pair) finds the next best pair without looking
   at all the others.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN, split_text

if TYPE_CHECKING:  # annotations only: bpe.py imports this module
    from minigpt2.tokenizer.bpe import Pair


def train_merges(text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN) -> list[Pair]:
    """The merges, in order, of a byte-level BPE with ``vocab_size`` ids; merge k makes id 256 + k.

    Ties go to the smaller pair, exactly as in ``train_simple``. Stops early when no
    pair is left to merge."""
    chunk_freqs = Counter(split_text(text, pattern))
    chunks = [list(chunk.encode("utf-8")) for chunk in chunk_freqs]  # distinct chunks, as ids
    freqs = list(chunk_freqs.values())

    counts: dict[Pair, int] = defaultdict(int)
    holders: dict[Pair, set[int]] = defaultdict(set)  # pair -> indices of chunks that (may) hold it
    for index, ids in enumerate(chunks):
        for pair in zip(ids, ids[1:]):
            counts[pair] += freqs[index]
            holders[pair].add(index)
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    for new_id in range(256, vocab_size):
        best = _pop_best(heap, counts)
        if best is None:
            break
        merges.append(best)
        new_pairs: set[Pair] = set()
        for index in holders.pop(best):
            merged = _merge_and_count(chunks[index], best, new_id, freqs[index], counts, new_pairs)
            if merged is not None:
                chunks[index] = merged
                for pair in zip(merged, merged[1:]):
                    if new_id in pair:
                        holders[pair].add(index)
        for pair in new_pairs:
            if counts[pair] > 0:  # (N, a) of `a b a b` is counted, then taken back
                heapq.heappush(heap, (-counts[pair], pair))
    return merges


def _merge_and_count(
    ids: list[int], pair: Pair, new_id: int, freq: int, counts: dict[Pair, int], new_pairs: set[Pair]
) -> list[int] | None:
    """``ids`` with ``pair`` merged left to right into ``new_id`` (as ``merge_pair`` does), and
    ``counts`` updated for the pairs around each merge, ``freq`` times; None if ``pair`` is
    not in ``ids`` (a stale index entry: an earlier merge took it).

    For ``x a b y`` -> ``x N y``: (a, b), (x, a) and (b, y) lose ``freq``; (x, N) and (N, y)
    gain it. When the previous merge sits just left (``a b a b`` -> ``N N``), the (N, a)
    counted by that merge becomes (N, N)."""
    a, b = pair
    out: list[int] = []
    i, last = 0, len(ids) - 1
    while i < last:
        if ids[i] == a and ids[i + 1] == b:
            counts[pair] -= freq
            if out:
                left = out[-1]
                if left == new_id:
                    counts[(new_id, a)] -= freq
                else:
                    counts[(left, a)] -= freq
                counts[(left, new_id)] += freq
                new_pairs.add((left, new_id))
            if i + 2 <= last:
                right = ids[i + 2]
                counts[(b, right)] -= freq
                counts[(new_id, right)] += freq
                new_pairs.add((new_id, right))
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    if len(out) == i:  # nothing merged
        return None
    out += ids[i:]
    return out


def _pop_best(heap: list[tuple[int, Pair]], counts: dict[Pair, int]) -> Pair | None:
    """The most frequent pair (smallest among equals).

    Counts only grow for pairs holding the newest id, and those are pushed; every other
    count only shrinks, leaving its heap entry too high. Such an entry is pushed back
    with the current count when it surfaces, so the first entry that is up to date is
    the best pair."""
    while heap:
        negative_count, pair = heapq.heappop(heap)
        count = counts.get(pair, 0)
        if count == -negative_count:
            return pair
        if 0 < count < -negative_count:
            heapq.heappush(heap, (-count, pair))
    return None
