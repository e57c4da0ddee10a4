"""Lesson 01's checks: the solutions pass, the untouched exercises score zero, and each
mutant (a typical wrong answer) fails with the hint that names its mistake."""

import pytest

from minigpt2.grading.core import grade_namespace
from minigpt2.grading.lesson01 import _merge_dropping_last, _merge_first_only, _merge_overlapping, _non_overlapping
from minigpt2.tokenizer import recover_merges as package_recover_merges
from minigpt2.tokenizer.gpt2 import bpe_with_ranks
from minigpt2.tokenizer.simple import merge_pair, pair_counts, train_simple

from grading_checks import (
    as_learner,
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

# the checks' own wrong answers, as mutants
merge_dropping_last = as_learner(_merge_dropping_last)
merge_first_only = as_learner(_merge_first_only)
merge_keeping_overlaps = as_learner(_merge_overlapping)
pair_counts_even_positions = as_learner(_non_overlapping)

# ---------------------------------------------------------------- right answers


def train(text, vocab_size):
    return train_simple(text, vocab_size, pattern=None)


def decode(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def encode(text, merges, pick="earliest", steps=None):
    rank = {pair: 256 + k for k, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2 and steps != 0:
        counts = {p: n for p, n in pair_counts(ids).items() if p in rank}
        if not counts:
            break
        pair = min(counts, key=rank.get) if pick == "earliest" else min(counts, key=lambda p: (-counts[p], p))
        ids = merge_pair(ids, pair, rank[pair])
        steps = None if steps is None else steps - 1
    return ids


def recover_merges(ranks, max_rank=lambda rank: rank, split="bpe"):
    merges = {}
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        if split == "bpe":
            first, second = bpe_with_ranks(ranks, token, max_rank(rank))
        else:  # the first split into two earlier tokens
            i = next(i for i in range(1, len(token)) if ranks.get(token[:i], rank) < rank
                     and ranks.get(token[i:], rank) < rank)
            first, second = token[:i], token[i:]
        merges[(ranks[first], ranks[second])] = rank
    return merges


def solution_namespace():
    return {
        "pair_counts": pair_counts,
        "merge": merge_pair,
        "train": train,
        "decode": decode,
        "encode": encode,
        "recover_merges": recover_merges,
    }


def test_the_test_solution_equals_the_package():
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257, b"bc": 258}
    _, merges = package_recover_merges(ranks)
    assert recover_merges(ranks) == {pair: 256 + k for k, pair in enumerate(merges)}


# ---------------------------------------------------------------- mistakes


def pair_counts_missing_last(ids):
    return pair_counts(ids[:-1])


def encode_latest_first(text, merges):
    ids = list(text.encode("utf-8"))
    for k in reversed(range(len(merges))):
        ids = merge_pair(ids, merges[k], 256 + k)
    return ids


def token_of(ranks, rank):
    return next(token for token, r in ranks.items() if r == rank)


def train_with(ties="smaller", first_id=256, extra=0, stop=True, recount=False):
    def train(text, vocab_size):
        original = list(text.encode("utf-8"))
        ids, merges = list(original), []
        for new_id in range(first_id, first_id + vocab_size - 256 + extra):
            counts = pair_counts(original if recount else ids)
            if not counts and stop:
                break
            pair = max(counts, key=counts.get) if ties == "first seen" else min(counts, key=lambda p: (-counts[p], p))
            ids = merge_pair(ids, pair, new_id)
            merges.append(pair)
        return merges

    return train


MUTANTS = [
    ("01.1", pair_counts_missing_last, "missed the last pair"),
    ("01.1", pair_counts_even_positions, "pairs overlap"),
    ("01.1", lambda ids: {pair: 1 for pair in zip(ids, ids[1:])}, "not how often"),
    ("01.1", lambda ids: pair_counts(ids + ids[:1]), "does not wrap around"),
    ("01.1", lambda ids: list(pair_counts(ids).items()), "should return a dict"),
    ("01.2", merge_keeping_overlaps, "skip BOTH ids"),
    ("01.2", merge_dropping_last, "last id went missing"),
    ("01.2", merge_first_only, "only the first occurrence"),
    ("01.2", lambda ids, pair, new_id: merge_pair(ids, pair[::-1], new_id), "wrong order"),
    ("01.3", train_with(ties="first seen"), "SMALLER pair"),
    ("01.3", train_with(first_id=257), "first new id is 256"),
    ("01.3", train_with(extra=1), "one merge too many"),
    ("01.3", train_with(extra=-1), "one merge too few"),
    ("01.3", train_with(recount=True), "counted on the original bytes"),
    ("01.3", train_with(stop=False), "stop the loop early"),
    ("01.4", lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("utf-8"), "errors='replace'"),
    ("01.4", lambda ids, vocab: "".join(vocab[i].decode("utf-8", errors="replace") for i in ids), "each token on its "
        "own"),
    ("01.4", lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore"), "silently drops"),
    ("01.4", lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("latin-1"), "not Latin-1"),
    ("01.5", lambda text, merges: list(text.encode("utf-8")), "raw bytes"),
    ("01.5", lambda text, merges: encode(text, merges, steps=1), "only one merge"),
    ("01.5", lambda text, merges: encode(text, merges, pick="most frequent"), "most FREQUENT"),
    ("01.5", encode_latest_first, "latest first"),
    ("01.6", lambda ranks: recover_merges(ranks, split="first"), "first split"),
    ("01.6", lambda ranks: recover_merges(ranks, max_rank=lambda rank: rank + 1), "BPE did not stop at two pieces"),
    ("01.6", lambda ranks: {pair: token_of(ranks, r) for pair, r in recover_merges(ranks).items()},
     "values are tokens"),
    ("01.6", lambda ranks: {(token_of(ranks, a), token_of(ranks, b)): r for (a, b), r in recover_merges(ranks).items()},
     "keys are pairs of bytes"),
]


def test_solutions_pass():
    results = grade_namespace("01", solution_namespace(), watch=False)
    assert [r.status for r in results] == ["passed"] * 6, [r.message for r in results]


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS[::3])
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "01_bpe_tokenizer.ipynb", points=10, exercises=6)
