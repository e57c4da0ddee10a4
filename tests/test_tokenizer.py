"""minigpt2.tokenizer.BPETokenizer: training, encoding, decoding, files (GPT-2 itself: test_tokenizer_gpt2.py)."""

import json
import time

import pytest

from minigpt2.data import load_text
from minigpt2.tokenizer import BPETokenizer, TokenizerFileError, split_text
from minigpt2.tokenizer.simple import merge_pair, most_frequent_pair, pair_counts, train_simple
from minigpt2.tokenizer.train import train_merges

MIXED = (
    "Hello hello HELLO, world! It's 2024; we'll see... naïve café — 東京は晴れ 🌞🌞 "
    "aaaaaaa abababab\n\n\tdef f(x):\n        return x ** 2\n" * 3
)


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def small_tokenizer(shakespeare) -> BPETokenizer:
    return BPETokenizer.train(shakespeare[:50_000], 400, special_tokens={"<|endoftext|>": 400})


# ---------------------------------------------------------------- the plain pieces


def test_pair_counts_counts_overlapping_pairs():
    assert pair_counts([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}
    assert pair_counts([5]) == {} and pair_counts([]) == {}


def test_merge_pair_scans_left_to_right_without_overlap():
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([2, 1], (1, 2), 9) == [2, 1]


def test_ties_go_to_the_smaller_pair():
    assert most_frequent_pair({(5, 1): 2, (3, 9): 2, (4, 4): 1}) == (3, 9)
    # every pair of "ab cd" occurs once: the first merge is the smallest pair, (32, 99) = " c"
    assert train_simple("ab cd", 257, pattern=None) == [(32, 99)]


# ---------------------------------------------------------------- training


@pytest.mark.parametrize(
    "text_name, vocab_size, pattern",
    [
        ("shakespeare_20k", 300, "gpt2"),
        ("shakespeare_8k", 400, "gpt2"),
        ("shakespeare_5k", 350, None),
        ("mixed", 330, "gpt2"),
        ("mixed", 290, None),
        ("repeats", 270, None),
    ],
)
def test_fast_training_gives_the_merges_of_the_plain_version(shakespeare, text_name, vocab_size, pattern):
    text = {
        "shakespeare_20k": shakespeare[:20_000],
        "shakespeare_8k": shakespeare[30_000:38_000],
        "shakespeare_5k": shakespeare[5_000:10_000],
        "mixed": MIXED,
        "repeats": "aaaaaaabababab aaaa abab " * 3 + "xyxyxyx",
    }[text_name]
    kwargs = {} if pattern == "gpt2" else {"pattern": None}
    expected = train_simple(text, vocab_size, **kwargs)
    assert train_merges(text, vocab_size, **kwargs) == expected
    assert BPETokenizer.train(text, len(expected) + 256, **kwargs).merges == expected


def test_training_respects_the_pre_split():
    # with GPT-2's split, no merge joins a word to the punctuation around it; without it, ". dog" becomes a token
    text = "dog. dog! dog? dog, " * 20
    assert [BPETokenizer.train(text, 259).vocab[i] for i in range(256, 259)] == [b"do", b"dog", b" dog"]
    assert b". dog" in BPETokenizer.train(text, 262, pattern=None).vocab.values()


def test_trained_tokenizer_compresses_and_round_trips(small_tokenizer, shakespeare):
    text = shakespeare[50_000:60_000]
    ids = small_tokenizer.encode(text)
    assert small_tokenizer.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))
    assert small_tokenizer.vocab_size == 401
    assert max(ids) < 400


def reference_encode(tok: BPETokenizer, text: str) -> list[int]:
    """minbpe's way: per chunk, merge the pair learned earliest, everywhere, until none applies."""
    out = []
    ranks = {pair: 256 + k for k, pair in enumerate(tok.merges)}
    for chunk in split_text(text, tok.pattern):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(pair_counts(ids), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break
            ids = merge_pair(ids, pair, ranks[pair])
        out += ids
    return out


@pytest.mark.parametrize("text", ["", "a", "   ", "\n\n\t ", MIXED, "the king and the queen " * 5])
def test_encoding_applies_merges_in_the_order_they_were_learned(small_tokenizer, text):
    assert small_tokenizer.encode(text) == reference_encode(small_tokenizer, text)
    assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_training_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="≥ 256"):
        BPETokenizer.train("hello", 100)
    with pytest.raises(ValueError, match="only allows 4 merges"):
        BPETokenizer.train("hello", 300)  # h-e-l-l-o collapses to one token after 4 merges
    assert BPETokenizer.train("hello", 256).merges == []


def test_training_512_on_shakespeare_is_quick(shakespeare):
    # a loose sanity bound; the 3 s figure is measured by benchmarks/bench_tokenizer.py
    start = time.perf_counter()
    BPETokenizer.train(shakespeare[:300_000], 512)
    assert time.perf_counter() - start < 10


# ---------------------------------------------------------------- encoding and decoding


def test_edge_cases(small_tokenizer):
    assert small_tokenizer.encode("") == []
    assert small_tokenizer.encode("a") == [ord("a")]
    assert small_tokenizer.decode([]) == ""
    for text in (" ", "\n", "\t\t", "   \n  \n"):
        assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_decoding_a_split_character_gives_the_replacement_character(small_tokenizer):
    ids = small_tokenizer.encode("é")  # two bytes, c3 a9, two ids here
    assert len(ids) == 2
    assert small_tokenizer.decode(ids[:1]) == "\ufffd"
    assert small_tokenizer.decode(ids) == "é"


def test_decoding_an_unknown_id_says_so(small_tokenizer):
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary of 401 ids"):
        small_tokenizer.decode([5, 9999])


def test_special_tokens_only_when_allowed(small_tokenizer):
    text = "to be<|endoftext|>or not"
    with pytest.raises(ValueError, match="allowed_special"):
        small_tokenizer.encode(text)
    ids = small_tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    assert ids.count(400) == 1
    assert small_tokenizer.encode(text, allowed_special="all") == ids
    assert small_tokenizer.decode(ids) == text
    as_text = small_tokenizer.encode(text, disallowed_special=())
    assert 400 not in as_text and as_text == small_tokenizer.encode_ordinary(text)
    # as in tiktoken: a name the tokenizer lacks is accepted (and <|endoftext|> stays disallowed) ...
    assert small_tokenizer.encode("to be", allowed_special={"<|pad|>"}) == small_tokenizer.encode("to be")
    with pytest.raises(ValueError, match="disallowed"):
        small_tokenizer.encode(text, allowed_special={"<|pad|>"})
    # ... and allowed_special must be a set (tests/test_tokenizer_tiktoken_rules.py has every combination)
    with pytest.raises(TypeError, match="set of special tokens"):
        small_tokenizer.encode(text, allowed_special="<|endoftext|>")


def test_lone_surrogates_become_the_replacement_character(small_tokenizer):
    assert small_tokenizer.encode("a\ud800b") == small_tokenizer.encode("a\ufffdb")


def test_chunks_are_remembered(small_tokenizer):
    small_tokenizer.encode("remember me")
    assert small_tokenizer._chunk_cache[" me"] == small_tokenizer.encode(" me")


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="does not exist yet"):
        BPETokenizer([(97, 256)])
    with pytest.raises(ValueError, match="permutation"):
        BPETokenizer(byte_ids=[0] * 256)
    with pytest.raises(ValueError, match="already uses"):
        BPETokenizer([(97, 98)], special_tokens={"<|x|>": 256})


# ---------------------------------------------------------------- files


def test_save_and_load_round_trip(small_tokenizer, tmp_path):
    path = small_tokenizer.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(path)
    assert loaded.merges == small_tokenizer.merges
    assert loaded.special_tokens == small_tokenizer.special_tokens
    assert loaded.pattern == small_tokenizer.pattern and loaded.byte_ids == small_tokenizer.byte_ids
    assert loaded.encode(MIXED) == small_tokenizer.encode(MIXED)
    text = path.read_text(encoding="utf-8")
    # one merge a line
    assert f"[{small_tokenizer.merges[0][0]}, {small_tokenizer.merges[0][1]}]" in text.splitlines()[7]
    json.loads(text)


def _write(tmp_path, data) -> str:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _valid() -> dict:
    return {"format": "minigpt2-bpe", "version": 1, "pattern": None, "special_tokens": {}, "byte_ids": list(range(256)),
            "merges": [[97, 98]]}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: "not json {", "not a tokenizer file"),
        (lambda d: {**d, "format": "other"}, "not a tokenizer file"),
        (lambda d: {**d, "version": 7}, "version 7"),
        (lambda d: {k: v for k, v in d.items() if k != "merges"}, r"\['merges'\]"),
        (lambda d: {**d, "merges": [[97, 98], [300, 1]]}, "merge 1 .* does not exist yet"),
        (lambda d: {**d, "merges": [[97]]}, "merge 0 is \\[97\\]"),
        (lambda d: {**d, "byte_ids": list(range(255)) + [0]}, "permutation"),
        (lambda d: {**d, "special_tokens": {"<|x|>": "1"}}, "map strings to ids"),
    ],
)
def test_loading_a_malformed_file_says_what_is_wrong(tmp_path, change, message):
    with pytest.raises(TokenizerFileError, match=message):
        BPETokenizer.load(_write(tmp_path, change(_valid())))


def test_loading_a_missing_file_says_so(tmp_path):
    with pytest.raises(TokenizerFileError, match="does not exist"):
        BPETokenizer.load(tmp_path / "nope.json")
