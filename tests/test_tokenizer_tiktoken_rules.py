"""gpt2_tokenizer() against tiktoken where the two used to part: one long chunk (linear time,
identical ids), the special-token arguments (every combination: the same ids or the same kind
of error), decoding bad ids, and code points whose class changed after Unicode 16.0."""

import itertools
import os
import random
import time

import numpy as np
import pytest
import regex
import tiktoken
import torch

from minigpt2.tokenizer import END_OF_TEXT, UnknownTokenError, gpt2_tokenizer, tiktoken_gpt2
from minigpt2.tokenizer.bpe import merge_long, merge_short
from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN, compiled_pinned, reclassified_characters, split_text
from minigpt2.tokenizer.simple import encode_simple


@pytest.fixture(scope="module")
def ours():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def reference():
    return tiktoken_gpt2()


def outcome(encode, text, **kwargs):
    """The ids, or the kind of error."""
    try:
        return encode(text, **kwargs)
    except Exception as err:  # noqa: BLE001 - the kind is what is compared
        return type(err)


# --------------------------------------------------------------------------- long chunks


def test_the_three_merge_loops_give_the_same_ids(ours):
    rng = random.Random(0)
    for _ in range(300):
        alphabet = rng.choice(["ab", "x", "ab ", "abcdefgh", "aé", "\n", " \t", "0123"])
        ids = list("".join(rng.choice(alphabet)
                           for _ in range(rng.randint(1, 200))).encode().translate(ours._byte_table))
        assert merge_short(list(ids), ours._ranks) == merge_long(list(ids), ours._ranks) == encode_simple(list(ids),
                                                                                                          ours._ranks)


@pytest.mark.parametrize("c", ["^", "0", "a", "'s", " ", "\n", "x", "é", "🌞", "ab"])
def test_catastrophically_repetitive_text_gets_tiktokens_ids(ours, reference, c):
    """tiktoken's test_catastrophically_repetitive, with the ids compared too."""
    for text in (c * 10_000, " " + c * 10_000, " " + c * 10_000 + "\n"):
        ids = ours.encode(text)
        assert ids == reference.encode(text) and ours.decode(ids) == text


def test_a_large_repeated_chunk_gets_tiktokens_ids(ours, reference):
    """tiktoken's test_large_repeated: one chunk of 100,000 letters."""
    text = "x" * 100_000
    assert split_text(text) == [text]  # a single chunk, merged as one
    assert ours.encode(text) == reference.encode(text)


def test_encoding_one_long_chunk_is_linear_not_quadratic():
    """8× the length takes about 8× the time (n log n), not 64× (the old loop's n²). Best of 3, fresh
    tokenizers (no chunk remembered); the bound leaves room for a loaded machine."""
    def seconds(n):
        best = float("inf")
        for _ in range(3):
            tok = gpt2_tokenizer()
            start = time.perf_counter()
            tok.encode("x" * n)
            best = min(best, time.perf_counter() - start)
        return best

    ratio = seconds(80_000) / seconds(10_000)
    assert ratio < 24, f"80k letters took {ratio:.1f}× the time of 10k"


# --------------------------------------------------------------------------- special tokens

SPECIAL_ARGS = [
    set(), frozenset(), {END_OF_TEXT}, frozenset({END_OF_TEXT}), {"<|fim_prefix|>"}, {END_OF_TEXT, "<|fim_prefix|>"},
    "all", (), [], [END_OF_TEXT], (END_OF_TEXT,), "<|endoftext|>", {"<|fim_middle|>"},
]
SPECIAL_TEXTS = ["plain text", f"a{END_OF_TEXT}b", "x<|fim_prefix|>y <|fim_middle|>",
                 f"{END_OF_TEXT}<|fim_middle|>{END_OF_TEXT}", ""]


@pytest.mark.parametrize("text", SPECIAL_TEXTS)
def test_every_combination_of_special_token_arguments_ends_as_in_tiktoken(ours, reference, text):
    for allowed, disallowed in itertools.product(SPECIAL_ARGS, SPECIAL_ARGS):
        kwargs = dict(allowed_special=allowed, disallowed_special=disallowed)
        assert outcome(ours.encode, text, **kwargs) == outcome(reference.encode, text, **kwargs), kwargs
    for allowed in SPECIAL_ARGS:  # and each argument alone
        assert outcome(ours.encode, text, allowed_special=allowed) == outcome(reference.encode, text,
                                                                              allowed_special=allowed)
    for disallowed in SPECIAL_ARGS:
        assert outcome(ours.encode, text, disallowed_special=disallowed) == outcome(reference.encode, text,
                                                                                    disallowed_special=disallowed)


def test_the_issues_cases_and_the_messages(ours, reference):
    text = "x<|fim_prefix|>y"
    for kwargs in (dict(allowed_special={"<|fim_prefix|>"}), dict(disallowed_special={"<|fim_middle|>"})):
        assert ours.encode(text, **kwargs) == reference.encode(text, **kwargs)  # names GPT-2 lacks are accepted
    with pytest.raises(ValueError, match="disallowed_special=\\(\\)"):
        ours.encode(text, disallowed_special={"<|fim_prefix|>"})  # ... and a disallowed one is refused in the text
    with pytest.raises(TypeError, match=r"set\(\['<\|endoftext\|>'\]\)"):
        ours.encode(text, allowed_special=[END_OF_TEXT], disallowed_special=())


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("ids", [[99999], [50257], [15496, 50257], [-1], [2**40], ["a"], [1.0], [None]])
def test_decoding_a_bad_id_raises_the_kind_of_error_tiktoken_raises(ours, reference, ids):
    expected = outcome(reference.decode, ids)
    assert isinstance(expected, type) and issubclass(expected, Exception)
    with pytest.raises(expected):
        ours.decode(ids)
    with pytest.raises(expected):
        ours.decode_bytes(ids)


def test_an_unknown_id_is_a_key_error_and_a_value_error_with_a_plain_message(ours):
    with pytest.raises(UnknownTokenError) as info:
        ours.decode([15496, 50300])
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert str(info.value).startswith("id 50300 is not in this tokenizer's vocabulary of 50257 ids")


def test_numpy_and_torch_integers_decode_as_in_tiktoken(ours, reference):
    ids = reference.encode("Hello world")
    for as_ints in (np.array(ids), torch.tensor(ids), iter(ids), tuple(ids)):
        assert ours.decode(as_ints) == reference.decode(list(np.array(ids))) == "Hello world"


# --------------------------------------------------------------------------- code points


def tiktoken_class(prop: str) -> set[str]:
    """The characters tiktoken's regex engine puts in ``prop``: a pattern of that class alone keeps
    exactly them (tiktoken drops what the pattern does not match); no merges, one id per byte."""
    probe = tiktoken.Encoding(name="probe", pat_str=prop, mergeable_ranks={bytes([b]): b for b in range(256)},
                              special_tokens={})
    everything = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    return set(bytes(probe.encode_ordinary(everything)).decode("utf-8"))


@pytest.fixture(scope="module")
def tiktoken_letters_and_numbers():
    return tiktoken_class(r"\p{L}"), tiktoken_class(r"\p{N}")


def test_the_reclassified_characters_are_exactly_where_regex_and_tiktoken_disagree(tiktoken_letters_and_numbers):
    letters, numbers = tiktoken_letters_and_numbers
    everything = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    disagree = (set(regex.findall(r"\p{L}", everything)) ^ letters) | (set(regex.findall(r"\p{N}",
                                                                                         everything)) ^ numbers)
    assert reclassified_characters() == disagree
    assert {"\U000323b0", "\U00033479", "\U0003d000"} <= disagree  # the issue's largest ranges (Unicode 17/18)


def test_the_pinned_classes_hold_tiktokens_letters_and_numbers(tiktoken_letters_and_numbers):
    letters, numbers = tiktoken_letters_and_numbers
    reclassified = "".join(sorted(reclassified_characters()))
    sample = reclassified + "".join(sorted(random.Random(0).sample(sorted(letters | numbers), 5000))) + "aZ09 .'"
    assert set(compiled_pinned(r"\p{L}").findall(sample)) == letters & set(sample)
    assert set(compiled_pinned(r"\p{N}").findall(sample)) == numbers & set(sample)
    assert set(compiled_pinned(r"[^\s\p{L}\p{N}]").findall(sample)) == set(sample) - letters - numbers - set(" ")


CONTEXTS = ["{c}'s", "{c}'t {c}'ve", " {c}'re", "{c}{c}'ll", "a{c}'d", "{c}1", "1{c}", "{c}.", " {c}"]


def test_reclassified_code_points_in_contexts_get_tiktokens_ids(ours, reference):
    """Every one of the 17,480 code points, followed by each contraction and beside letters, digits, punctuation."""
    for context in ("{c}'s {c}'t {c}'ve{c}'m", " {c}'re a{c}'d {c}{c}'ll {c}1 1{c} {c}."):
        text = "\n".join(context.format(c=c) for c in sorted(reclassified_characters()))
        assert ours.encode(text) == reference.encode(text), context


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MINIGPT2_FULL_SWEEP") != "1",
    reason="the 8-minute sweep of every code point: MINIGPT2_FULL_SWEEP=1 runs it",
)
def test_every_code_point_in_contexts_gets_tiktokens_ids(ours, reference):
    """The whole sweep: every code point but the surrogates, in every context (8 minutes on a loaded
    2-core machine; benchmarks/RESULTS.md records the run)."""
    code_points = [chr(c) for c in itertools.chain(range(0xD800), range(0xE000, 0x110000))]
    for context in CONTEXTS:
        for start in range(0, len(code_points), 65536):
            text = "\n".join(context.format(c=c) for c in code_points[start : start + 65536])
            assert ours.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=()), (context,
                                                                                                               start)


def test_the_pattern_is_tiktokens(reference):
    assert GPT2_SPLIT_PATTERN == reference._pat_str
