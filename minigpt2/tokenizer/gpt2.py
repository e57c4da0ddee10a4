"""GPT-2's tokenizer, rebuilt from its merge ranks file with the course's own BPE.

``gpt2.tiktoken`` lists GPT-2's 50,256 tokens, one a line: the token's bytes in base64
and its rank. Ranks 0..255 are the single bytes (in GPT-2's own order, not byte
order: byte 33 '!' has rank 0), and every later rank r is a token made by merging two
earlier ones. The file does not say which two, but BPE does: encoding the token's
bytes with only the merges of ranks below r stops at exactly two parts, and those are
the pair (:func:`recover_merges`; minbpe's GPT4Tokenizer does the same).
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

from minigpt2.datafiles import locate
from minigpt2.tokenizer.base import BPETokenizer
from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN
from minigpt2.tokenizer.simple import Pair

END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256


def read_ranks(path: str | os.PathLike | None = None) -> dict[bytes, int]:
    """token bytes -> rank, from GPT-2's merge ranks file (found and verified by :mod:`minigpt2.datafiles`)."""
    ranks = {}
    with open(locate("gpt2-merges", path), "rb") as f:
        for line in f:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def bpe_with_ranks(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """``token`` split into bytes, then merged as tiktoken does (always the adjacent pair whose
    concatenation has the lowest rank) but using only ranks below ``max_rank``."""
    parts = [bytes([b]) for b in token]
    pair_ranks = [ranks.get(a + b, max_rank) for a, b in zip(parts, parts[1:])]  # pair_ranks[i]: parts i, i+1
    while pair_ranks:
        rank = min(pair_ranks)
        if rank >= max_rank:
            break
        i = pair_ranks.index(rank)  # the leftmost of the lowest rank
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        # only the pairs touching the merged part changed
        if i > 0:
            pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], max_rank)
        if i < len(pair_ranks):
            pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], max_rank)
    return parts


def recover_merges(ranks: dict[bytes, int]) -> tuple[list[int], list[Pair]]:
    """``(byte_ids, merges)`` for :class:`BPETokenizer` from tiktoken-style ``ranks``:
    the rank of each byte, and for each rank r ≥ 256, in order, the pair of ranks it merges."""
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    if [rank for _, rank in by_rank] != list(range(len(by_rank))):
        raise ValueError("the ranks should be exactly 0, 1, 2, … with no gaps or repeats.")
    if sorted(len(token) for token, _ in by_rank[:256]) != [1] * 256 or any(len(t) < 2 for t, _ in by_rank[256:]):
        raise ValueError("ranks 0..255 should be the 256 single bytes, and every later rank a longer token.")
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    merges = []
    for token, rank in by_rank[256:]:
        parts = bpe_with_ranks(ranks, token, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two earlier tokens: BPE gives {parts}.")
        merges.append((ranks[parts[0]], ranks[parts[1]]))
    return byte_ids, merges


@lru_cache(maxsize=4)
def _gpt2_merges(path: str | None) -> tuple[tuple[int, ...], tuple[Pair, ...]]:
    byte_ids, merges = recover_merges(read_ranks(path))
    return tuple(byte_ids), tuple(merges)


def gpt2_tokenizer(path: str | os.PathLike | None = None) -> BPETokenizer:
    """GPT-2's tokenizer as a :class:`BPETokenizer`: 50,257 ids, ``<|endoftext|>`` = 50256.

    ``path`` is an explicit copy of ``gpt2.tiktoken``; by default it is found as
    :func:`minigpt2.data.gpt2_merges_path` describes (it is ``datafiles.locate("gpt2-merges")``,
    called directly here so that the tokenizer does not import torch). Gives tiktoken's GPT-2 ids."""
    byte_ids, merges = _gpt2_merges(None if path is None else str(path))
    return BPETokenizer(merges, GPT2_SPLIT_PATTERN, {END_OF_TEXT: END_OF_TEXT_ID}, byte_ids)


def tiktoken_gpt2(path: str | os.PathLike | None = None):
    """tiktoken's GPT-2 ``Encoding``, the reference, built offline from the local ranks file.

    (``tiktoken.get_encoding("gpt2")`` would download the file; this never touches the network.)"""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    ranks = load_tiktoken_bpe(str(locate("gpt2-merges", path)))
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={END_OF_TEXT: END_OF_TEXT_ID})
