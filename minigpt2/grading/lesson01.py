"""Checks of lesson 01 (byte-level BPE): pair counts, one merge, training, decoding,
encoding, and recovering GPT-2's merges from its ranks.

Each check runs the learner's function on several inputs against the package's
reference (:mod:`minigpt2.tokenizer`) and names the usual mistakes by computing
what each would have returned on the same input.
"""

from __future__ import annotations

from functools import lru_cache

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal
from minigpt2.i18n.messages import _
from minigpt2.tokenizer import BPETokenizer, recover_merges
from minigpt2.tokenizer.gpt2 import read_ranks
from minigpt2.tokenizer.simple import merge_pair, pair_counts, train_simple

SHAKESPEARE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
)


def _relevant(expected, mistakes: list[Mistake]) -> list[Mistake]:
    """The mistakes whose output differs from the right answer on this input."""
    return [m for m in mistakes if m.output != expected]


def _vocab(merges) -> dict[int, bytes]:
    return BPETokenizer(merges, pattern=None).vocab


# --------------------------------------------------------------------------- 01.1


PACKAGE_BPE = ("minigpt2.tokenizer.simple.pair_counts", "minigpt2.tokenizer.simple.merge_pair",
               "minigpt2.tokenizer.simple.train_simple", "minigpt2.tokenizer.BPETokenizer",
               # the package's finished tokenizer: each exercise builds a piece of it
               "minigpt2.tokenizer.recover_merges", "minigpt2.tokenizer.gpt2.bpe_with_ranks")


@exercise("01.1", "Pair counts", points=1, name="pair_counts", forbid=PACKAGE_BPE)
def check_pair_counts(learner_pair_counts):
    # the first list tells every listed mistake apart from the others
    for ids in ([1, 2, 1, 2, 1, 2, 3], [5, 5, 5, 5], list(b"aaabdaaabac"), [7], [], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]):
        expected = pair_counts(ids)
        got = call(learner_pair_counts, list(ids))
        if not isinstance(got, dict):
            raise CheckFailed(_("pair_counts({ids}) should return a dict {{(a, b): count}}, but it returns a "
                    "{got_type}.").format(ids=ids, got_type=type(got).__name__))
        distinct = {pair: 1 for pair in expected}
        expect_equal(
            got,
            expected,
            what=f"pair_counts({ids})",
            mistakes=_relevant(expected, [
                Mistake(pair_counts(ids[:-1]), _("you missed the last pair: a list of n ids has n − 1 adjacent pairs "
                        "(zip(ids, ids[1:]), or range(len(ids) - 1)).")),
                Mistake(_non_overlapping(ids), _("you counted only the pairs at even positions (0-1, 2-3, …): pairs "
                        "overlap, [1, 2, 3] has both (1, 2) and (2, 3), so step by one, not two.")),
                Mistake(distinct, _("every pair has count 1: you recorded which pairs occur, not how often. Add 1 "
                        "each time a pair appears.")),
                Mistake(pair_counts(ids + ids[:1]) if ids else {}, _("you also paired the last id with the first "
                        "one: the sequence does not wrap around.")),
            ]),
        )


def _non_overlapping(ids):
    counts: dict = {}
    for pair in zip(ids[::2], ids[1::2]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


# --------------------------------------------------------------------------- 01.2


@exercise("01.2", "Merge one pair", points=1, name="merge", forbid=PACKAGE_BPE)
def check_merge(learner_merge):
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 99),
        ([1, 1, 1], (1, 1), 9),
        ([1, 1, 1, 1], (1, 1), 9),
        ([2, 1, 2, 1], (1, 2), 9),
        ([3, 1], (1, 2), 9),
        ([4, 1, 2], (1, 2), 300),
        ([], (1, 2), 9),
    ]
    for ids, pair, new_id in cases:
        expected = merge_pair(ids, pair, new_id)
        got = call(learner_merge, list(ids), pair, new_id)
        expect_equal(
            got,
            expected,
            what=f"merge({ids}, {pair}, {new_id})",
            mistakes=_relevant(expected, [
                Mistake(_merge_overlapping(ids, pair, new_id), _("after a merge, skip BOTH ids of the pair (i += 2): "
                        "each id can be part of one merge only, so [1, 1, 1] with (1, 1) gives [new, 1].")),
                Mistake(_merge_dropping_last(ids, pair, new_id), _("the last id went missing: when the loop stops "
                        "one short of the end to look at pairs, append the final id too.")),
                Mistake(_merge_first_only(ids, pair, new_id), _("you replaced only the first occurrence of the pair; "
                        "replace every occurrence, scanning left to right.")),
                Mistake(merge_pair(ids, pair[::-1], new_id), _("you merged the pair in the wrong order: (a, b) means "
                        "a followed by b.")),
            ]),
        )


def _merge_overlapping(ids, pair, new_id):
    out = []
    for i, current in enumerate(ids):
        if i + 1 < len(ids) and (current, ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], current) == pair):
            out.append(current)
    return out


def _merge_dropping_last(ids, pair, new_id):  # the scan stops at the last pair: an unmerged last id is lost
    out, i = [], 0
    while i < len(ids) - 1:
        merged = (ids[i], ids[i + 1]) == pair
        out.append(new_id if merged else ids[i])
        i += 2 if merged else 1
    return out


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


# --------------------------------------------------------------------------- 01.3


@exercise("01.3", "The training loop", points=2, name="train", forbid=PACKAGE_BPE)
def check_train(learner_train):
    cases = [("aaabdaaabac", 259), ("abcd abcd xyxy", 262), (SHAKESPEARE, 290), ("hello world", 256)]
    for text, vocab_size in cases:
        expected = train_simple(text, vocab_size, pattern=None)
        got = call(learner_train, text, vocab_size)
        if isinstance(got, list):
            got = [tuple(p) if isinstance(p, list) else p for p in got]
        expect_equal(
            got,
            expected,
            what=f"train({text[:20]!r}{'…' if len(text) > 20 else ''}, {vocab_size})",
            mistakes=_relevant(expected, [
                Mistake(_train(text, vocab_size, ties="first seen"), _("equally frequent pairs must go to the "
                        "SMALLER pair: pick with min(counts, key=lambda p: (-counts[p], p)). max(counts, "
                        "key=counts.get) takes whichever pair was seen first.")),
                Mistake(_train(text, vocab_size, first_id=257), _("the first new id is 256 (ids 0–255 are the "
                        "bytes), then 257, …: merge k makes id 256 + k.")),
                Mistake(_train(text, vocab_size + 1), _("one merge too many: vocab_size counts the 256 bytes too, so "
                        "make vocab_size − 256 merges (range(256, vocab_size)).")),
                Mistake(_train(text, vocab_size - 1), _("one merge too few: make vocab_size − 256 merges (range(256, "
                        "vocab_size)).")),
                Mistake(_train(text, vocab_size, recount_original=True), _("every merge is counted on the original "
                        "bytes: after merging, keep the merged ids (ids = merge(ids, pair, new_id)) and count "
                        "pairs on those.")),
            ]),
        )
    for text, vocab_size, expected in [("ab", 300, [(97, 98)]), ("", 260, [])]:
        try:
            got = call(learner_train, text, vocab_size)
        except CheckFailed as err:
            raise CheckFailed(_("on train({text!r}, {vocab_size}): {err} When the text has become a single token (or "
                    "was empty) there is no pair left to merge: stop the loop early.").format(
                    text=text, vocab_size=vocab_size, err=err)) from None
        expect_equal(got if not isinstance(got, list) else [tuple(p) for p in got], expected,
                     what=f"train({text!r}, {vocab_size})")


def _train(text, vocab_size, ties="smaller", first_id=256, recount_original=False):
    """train_simple (pattern=None) with one of the usual mistakes."""
    original = list(text.encode("utf-8"))
    ids, merges = list(original), []
    for new_id in range(first_id, first_id + vocab_size - 256):
        counts = pair_counts(original if recount_original else ids)
        if not counts:
            break
        pair = max(counts, key=counts.get) if ties == "first seen" else min(counts, key=lambda p: (-counts[p], p))
        ids = merge_pair(ids, pair, new_id)
        merges.append(pair)
    return merges


# --------------------------------------------------------------------------- 01.4


@exercise("01.4", "Decoding, with a safety net", points=1, name="decode", forbid=PACKAGE_BPE)
def check_decode(learner_decode):
    merges = train_simple(SHAKESPEARE + " héllo 東京 🌞 héllo 東京 🌞", 300, pattern=None)
    vocab = _vocab(merges)
    tok = BPETokenizer(merges, pattern=None)
    texts = ["You are all resolved", "héllo 東京 🌞", ""]
    cases = [tok.encode(t) for t in texts] + [tok.encode("é")[:1], tok.encode("東京")[:-1], [104, 195, 32, 105]]
    for ids in cases:
        expected = tok.decode(ids)
        try:
            got = call(learner_decode, list(ids), dict(vocab))
        except CheckFailed as err:
            if err.raised == "UnicodeDecodeError":
                raise CheckFailed(_("decode({ids}) raised UnicodeDecodeError: these ids end in the middle of a "
                        "character. Decode with errors='replace' so an incomplete character becomes '�' instead of "
                        "an error.").format(ids=ids)) from None
            raise
        joined = b"".join(vocab[i] for i in ids)
        expect_equal(
            got,
            expected,
            what=f"decode({ids})",
            mistakes=_relevant(expected, [
                Mistake("".join(vocab[i].decode("utf-8", errors="replace") for i in ids), _("you decoded each token "
                        "on its own: a character's bytes can be spread over several tokens. Join all the bytes "
                        "first, then decode once.")),
                Mistake(joined.decode("utf-8", errors="ignore"), _("errors='ignore' silently drops the incomplete "
                        "character; use errors='replace' so it shows as '�'.")),
                Mistake(joined.decode("latin-1"), _("the bytes are UTF-8, not Latin-1: decode with 'utf-8'.")),
            ]),
        )


# --------------------------------------------------------------------------- 01.5


@exercise("01.5", "Encoding with learned merges", points=2, name="encode", forbid=PACKAGE_BPE)
def check_encode(learner_encode):
    merges = train_simple(SHAKESPEARE, 300, pattern=None)
    tok = BPETokenizer(merges, pattern=None)
    for text in ["You are all resolved rather to die", "the people, the people", "zebra 東京", "a", ""]:
        expected = tok.encode(text)
        got = call(learner_encode, text, list(merges))
        expect_equal(
            got,
            expected,
            what=f"encode({text!r}, merges)",
            mistakes=_relevant(expected, [
                Mistake(list(text.encode("utf-8")), _("you returned the raw bytes: apply the learned merges to them.")),
                Mistake(_encode_one_step(text, merges), _("only one merge was applied: keep merging until no learned "
                        "pair is left.")),
                Mistake(_encode_by_frequency(text, merges), _("you merged the most FREQUENT pair; merge the pair "
                        "learned EARLIEST (the smallest new id, 256 + its index in merges), as training built them.")),
                Mistake(_encode_reversed(text, merges), _("you applied the merges latest first; apply them in the "
                        "order they were learned.")),
            ]),
        )


def _encode_one_step(text, merges):
    ids = list(text.encode("utf-8"))
    rank = {pair: 256 + k for k, pair in enumerate(merges)}
    present = [p for p in pair_counts(ids) if p in rank]
    if not present:
        return ids
    pair = min(present, key=rank.get)
    return merge_pair(ids, pair, rank[pair])


def _encode_by_frequency(text, merges):
    ids = list(text.encode("utf-8"))
    rank = {pair: 256 + k for k, pair in enumerate(merges)}
    while True:
        counts = {p: n for p, n in pair_counts(ids).items() if p in rank}
        if not counts:
            return ids
        pair = min(counts, key=lambda p: (-counts[p], p))
        ids = merge_pair(ids, pair, rank[pair])


def _encode_reversed(text, merges):
    ids = list(text.encode("utf-8"))
    for k in reversed(range(len(merges))):
        ids = merge_pair(ids, merges[k], 256 + k)
    return ids


# --------------------------------------------------------------------------- 01.6


@lru_cache(maxsize=1)
def _gpt2_ranks_below(limit: int) -> tuple[tuple[bytes, int], ...]:
    return tuple((token, rank) for token, rank in read_ranks().items() if rank < limit)


@exercise("01.6", "Recovering GPT-2's merges from its ranks", points=3, name="recover_merges", forbid=PACKAGE_BPE)
def check_recover_merges(learner_recover_merges):
    ranks = dict(_gpt2_ranks_below(1256))  # the 256 bytes and GPT-2's first 1,000 merges
    merges = recover_merges(ranks)[1]
    expected = {pair: 256 + k for k, pair in enumerate(merges)}
    try:
        got = call(learner_recover_merges, dict(ranks))
    except CheckFailed as err:
        if err.raised == "ValueError" and "unpack" in str(err):
            raise CheckFailed(_("{err} BPE did not stop at two pieces. Skip the 256 single bytes (they are not "
                    "merges), and encode each longer token with exactly the ranks BELOW its own: with its own rank "
                    "allowed BPE merges it back into one piece, with fewer it stops at three or more.").format(
                    err=err)) from None
        raise
    if isinstance(got, dict) and got and all(isinstance(k, tuple) and k and isinstance(k[0], bytes) for k in got):
        raise CheckFailed(_("the keys are pairs of bytes; they should be pairs of ranks (ids), like (220, 83) for "
                "(b' ', b't')."))
    if isinstance(got, dict) and got and all(isinstance(v, bytes) for v in got.values()):
        raise CheckFailed(_("the values are tokens (bytes); each value should be the RANK of the merged token, an "
                "int."))
    expect_equal(
        got,
        expected,
        what=_("recover_merges(GPT-2's first 1,256 ranks)"),
        mistakes=_relevant(expected, [
            Mistake(_first_split(ranks), _("for some tokens you took the first split into two known tokens; that is "
                    "not always the merge BPE made. Run BPE on the token's bytes with only the ranks below its "
                    "own, and take the two pieces it stops at.")),
        ]),
    )


def _first_split(ranks):
    merges = {}
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = ranks.get(token[:i]), ranks.get(token[i:])
            if left is not None and right is not None and left < rank and right < rank:
                merges[(left, right)] = rank
                break
    return merges

