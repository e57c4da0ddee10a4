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
from minigpt2.tokenizer.bpe import BPETokenizer, Pair, merge_short
from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN

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
    concatenation has the lowest rank) but using only ranks below ``max_rank``: the tokenizer's
    own merge loop (:func:`~minigpt2.tokenizer.bpe.merge_short`) on ranks."""
    token_of = {rank: t for t, rank in ranks.items()}
    ids = merge_short([ranks[bytes([b])] for b in token], _JoinedRanks(ranks, token_of, max_rank))
    return [token_of[i] for i in ids]


class _JoinedRanks:
    """The lookup :func:`merge_short` merges by, for tiktoken's ranks: a pair of ranks gives the
    rank of their bytes joined, when that is below ``max_rank`` (no merge otherwise)."""

    def __init__(self, ranks: dict[bytes, int], token_of: dict[int, bytes], max_rank: int):
        self.ranks, self.token_of, self.max_rank = ranks, token_of, max_rank

    def get(self, pair: Pair, default: int) -> int:
        rank = self.ranks.get(self.token_of[pair[0]] + self.token_of[pair[1]], default)
        return rank if rank < self.max_rank else default


def recover_merges(ranks: dict[bytes, int]) -> tuple[list[int], list[Pair]]:
    """``(byte_ids, merges)`` for :class:`BPETokenizer` from tiktoken-style ``ranks``:
    the rank of each byte, and for each rank r ≥ 256, in order, the pair of ranks it merges."""
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    if [rank for _, rank in by_rank] != list(range(len(by_rank))):
        raise ValueError("the ranks should be exactly 0, 1, 2, … with no gaps or repeats.")
    if sorted(len(token) for token, _ in by_rank[:256]) != [1] * 256 or any(len(t) < 2 for t, _ in by_rank[256:]):
        raise ValueError("ranks 0..255 should be the 256 single bytes, and every later rank a longer token.")
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    byte_table = bytes(byte_ids)
    merged: dict[Pair, int] = {}  # the merges recovered so far: pair of ranks -> the rank it makes
    for token, rank in by_rank[256:]:
        parts = merge_short(list(token.translate(byte_table)), merged)  # BPE with the ranks below this one
        if len(parts) != 2:
            pieces = [by_rank[part][0] for part in parts]  # rank r is by_rank[r]
            raise ValueError(
                f"token {token!r} (rank {rank}) is not the merge of two earlier tokens: BPE gives {pieces}."
            )
        merged[parts[0], parts[1]] = rank
    return byte_ids, list(merged)


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
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={END_OF_TEXT: END_OF_TEXT_ID})
