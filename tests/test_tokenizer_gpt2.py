"""gpt2_tokenizer(): the course's BPE with GPT-2's merges gives tiktoken's ids, id for id."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from minigpt2.data import load_text
from minigpt2.tokenizer import END_OF_TEXT, BPETokenizer, gpt2_tokenizer, recover_merges, tiktoken_gpt2
from minigpt2.tokenizer.gpt2 import bpe_with_ranks, read_ranks


@pytest.fixture(scope="module")
def ours() -> BPETokenizer:
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def reference():
    return tiktoken_gpt2()


def test_shape_of_gpt2s_vocabulary(ours):
    assert ours.vocab_size == 50_257
    assert ours.special_tokens == {END_OF_TEXT: 50256}
    assert len(ours.merges) == 50_000
    # GPT-2's byte tokens are not in byte order: "!" (byte 33) is id 0, byte 0 is id 188
    assert ours.byte_ids[33] == 0 and ours.byte_ids[0] == 188


def test_every_token_has_tiktokens_bytes(ours, reference):
    for i in range(50_257):
        assert ours.vocab[i] == reference.decode_single_token_bytes(i), i


def test_recovered_merges_rebuild_each_token_from_two_earlier_ones(ours):
    ranks = read_ranks()
    token_of = {rank: token for token, rank in ranks.items()}
    for k in (0, 1, 2, 1000, 49_999):
        a, b = ours.merges[k]
        assert a < 256 + k and b < 256 + k
        assert token_of[a] + token_of[b] == token_of[256 + k]
    assert token_of[256] == b" t" and ours.merges[0] == (ours.byte_ids[ord(" ")], ours.byte_ids[ord("t")])
    assert bpe_with_ranks(ranks, b" the", max_rank=ranks[b" the"]) == [b" t", b"he"]
    assert bpe_with_ranks(ranks, b" the", max_rank=50_000) == [b" the"]


def test_recovering_from_ranks_that_are_not_bpe_says_so():
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"abc"] = 256  # no two-part token "ab" or "bc" exists before it
    with pytest.raises(ValueError, match="not the merge of two earlier tokens"):
        recover_merges(ranks)
    with pytest.raises(ValueError, match="no gaps"):
        recover_merges({bytes([b]): b for b in range(255)} | {b"\xff": 300})


def test_all_of_tinyshakespeare_matches_tiktoken(ours, reference):
    text = load_text("tinyshakespeare")
    ids = ours.encode(text)
    assert ids == reference.encode(text)
    assert ours.decode(ids) == text


@pytest.mark.parametrize(
    "text",
    ["", "a", " ", "      ", "\n", "\t\t\n \n", "  leading and trailing  ", "I'm sure you'll see they've GOT'em",
     "x = 12345678 + 0.5", "héllo wörld", "日本語のテキスト", "🌞🏳️‍🌈👩‍👩‍👧", "e\u0301\u0301", "\x00\x01"],
)
def test_edge_cases_match_tiktoken(ours, reference, text):
    assert ours.encode(text) == reference.encode(text)
    assert ours.decode(ours.encode(text)) == text


def test_end_of_text_allowed_and_disallowed(ours, reference):
    text = "The end.<|endoftext|>A new story"
    with pytest.raises(ValueError):
        reference.encode(text)
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        ours.encode(text)
    allowed = ours.encode(text, allowed_special={END_OF_TEXT})
    assert allowed == reference.encode(text, allowed_special={END_OF_TEXT})
    assert 50256 in allowed and ours.decode(allowed) == text
    assert ours.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=())
    assert ours.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_split_character_decodes_like_tiktoken(ours, reference):
    ids = ours.encode("日本")
    for cut in range(1, len(ids)):
        assert ours.decode(ids[:cut]) == reference.decode(ids[:cut])


FRAGMENTS = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n",
    " \n ", "\u00a0", "\u3000", "😀", "👩‍👩‍👧", "🏳️‍🌈", "中文", "日本語", "한국어",
    "Привет", "مرحبا", "नमस्ते", "Ελληνικά",
    "123", " 4567", "٣٤", "½", "Ünïcödé", "ﬁ", "\u200b", "\x00", "<|endoftext", "|>", "\ufffd", "e\u0301",
]
TEXTS = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(categories=("Mn", "Mc", "Me")), min_size=1, max_size=3),  # lone combining marks
        st.text(st.sampled_from(" \t\n"), min_size=1, max_size=6),
    ),
    max_size=24,
).map("".join)


# bounded: 300 examples, no per-example deadline (a loaded machine must not fail it), nothing written to disk
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_arbitrary_unicode_matches_tiktoken(ours, reference, text):
    ids = ours.encode(text, disallowed_special=())
    assert ids == reference.encode(text, disallowed_special=())
    assert ours.decode(ids) == text
