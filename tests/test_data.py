"""minigpt2.data: shifted windows, batches, the Dataset, the split, token files; and the CharTokenizer."""

import numpy as np
import pytest
import tiktoken
import tiktoken.load
import torch
from hypothesis import given, settings, strategies as st
from torch.utils.data import DataLoader

from minigpt2.data import (
    BOS,
    CharTokenizer,
    TokenWindows,
    encode_to_file,
    get_batch,
    gpt2_merges_path,
    in_context_bigrams,
    load_text,
    num_windows,
    read_tokens,
    train_val_split,
    window,
    write_tokens,
)

STREAM = torch.arange(100, 150)  # 50 distinct ids, so every id says where it came from


def as_stream(kind, ids):
    """The same ids as each kind of token stream the functions accept."""
    return {"list": list(ids.tolist()), "tensor": ids, "numpy": ids.numpy().astype(np.uint16)}[kind]


# ----------------------------------------------------------------------------- CharTokenizer


def test_char_tokenizer_round_trips_shakespeare():
    text = load_text()
    tok = CharTokenizer(text)
    assert tok.vocab_size == 65  # Tiny Shakespeare's alphabet
    sample = text[:2000]
    assert tok.decode(tok.encode(sample)) == sample
    assert tok.encode("\n !") == [0, 1, 2]  # sorted: newline, space, '!'
    assert tok.decode(torch.tensor(tok.encode("First"))) == "First"


def test_char_tokenizer_errors_name_the_problem():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"\['z'\] are not in this tokenizer's vocabulary"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="outside this tokenizer's vocabulary"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="non-empty string"):
        CharTokenizer("")


# ----------------------------------------------------------------------------- windows


@pytest.mark.parametrize("kind", ["list", "tensor", "numpy"])
def test_targets_are_inputs_shifted_by_one(kind):
    tokens = as_stream(kind, STREAM)
    for start in (0, 7, num_windows(50, 8) - 1):
        x, y = window(tokens, start, 8)
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (8,)
        assert torch.equal(x, STREAM[start : start + 8])
        assert torch.equal(y, STREAM[start + 1 : start + 9])


def test_no_window_crosses_the_end_of_the_stream():
    assert num_windows(50, 8) == 42
    x, y = window(STREAM, 41, 8)  # the last window: its target ends on the last token
    assert y[-1] == STREAM[-1]
    with pytest.raises(IndexError, match="0 to 41"):
        window(STREAM, 42, 8)
    with pytest.raises(IndexError):
        window(STREAM, -1, 8)


def test_streams_too_short_or_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="needs block_size \\+ 1 = 9 tokens"):
        window(STREAM[:8], 0, 8)
    with pytest.raises(ValueError, match="block_size should be a positive int"):
        get_batch(STREAM, 4, 0)
    with pytest.raises(ValueError, match="batch_size should be a positive int"):
        get_batch(STREAM, 0, 4)
    with pytest.raises(ValueError, match="1-D stream"):
        get_batch(STREAM.view(5, 10), 2, 4)


@pytest.mark.parametrize("kind", ["list", "tensor", "numpy"])
def test_batches_are_shifted_windows_that_stay_inside_the_stream(kind):
    tokens = as_stream(kind, STREAM)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = get_batch(tokens, 16, 8, generator=g)
        assert x.shape == y.shape == (16, 8) and x.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])  # shifted by one
        assert torch.equal(x - x[:, :1], torch.arange(8).expand(16, 8))  # contiguous runs of the stream
        assert x.min() >= 100 and y.max() <= 149  # inside the stream


def test_random_batches_cover_every_window_and_repeat_with_the_same_seed():
    starts = set()
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        x, _ = get_batch(STREAM, 8, 8, generator=g)
        starts.update((x[:, 0] - 100).tolist())
    assert starts == set(range(42))
    a = get_batch(STREAM, 4, 8, generator=torch.Generator().manual_seed(7))
    b = get_batch(STREAM, 4, 8, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 80), block_size=st.integers(1, 20), stride=st.integers(1, 25))
def test_dataset_windows_are_shifted_in_range_and_strided(n, block_size, stride):
    tokens = torch.arange(n)
    if n < block_size + 1:
        with pytest.raises(ValueError):
            TokenWindows(tokens, block_size, stride)
        return
    ds = TokenWindows(tokens, block_size, stride)
    starts = [int(ds[i][0][0]) for i in range(len(ds))]
    assert starts == list(range(0, n - block_size, stride))  # every start whose target fits, at the stride
    for i in range(len(ds)):
        x, y = ds[i]
        assert torch.equal(y, x + 1) and y[-1] <= n - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_dataset_works_with_a_dataloader():
    ds = TokenWindows(STREAM, block_size=8)  # stride 8: inputs do not overlap
    assert len(ds) == 6
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 8), (2, 8)]
    firsts = sorted(int(v) for x, _ in batches for v in x[:, 0])
    assert firsts == [100, 108, 116, 124, 132, 140]
    for x, y in batches:
        assert torch.equal(x[:, 1:], y[:, :-1])


# ----------------------------------------------------------------------------- train / val


@pytest.mark.parametrize("kind", ["list", "tensor", "numpy"])
def test_train_and_validation_do_not_overlap(kind):
    tokens = as_stream(kind, STREAM)
    train, val = train_val_split(tokens, val_fraction=0.2)
    assert len(train) == 40 and len(val) == 10
    train_ids, val_ids = set(np.asarray(train).tolist()), set(np.asarray(val).tolist())
    assert not train_ids & val_ids and len(train_ids | val_ids) == 50
    # windows drawn from the training part never reach into validation
    x, y = get_batch(train, 64, 8, generator=torch.Generator().manual_seed(0))
    assert int(y.max()) < min(val_ids)


def test_split_arguments_are_checked():
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split(STREAM, 1.0)
    with pytest.raises(ValueError, match="too few"):
        train_val_split(STREAM[:2], 0.1)


# ----------------------------------------------------------------------------- token files and tokenizers


def gpt2_encoding():
    """tiktoken's GPT-2 encoding, built from the local merges file (no network)."""
    ranks = tiktoken.load.load_tiktoken_bpe(str(gpt2_merges_path()))
    pat = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding("gpt2", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


def test_token_file_round_trip_and_memmap(tmp_path):
    ids = [0, 1, 50256, 65535, 7]
    path = write_tokens(tmp_path / "t.bin", ids)
    assert path.stat().st_size == 2 * len(ids)  # two bytes per id
    mm = read_tokens(path)
    assert isinstance(mm, np.memmap) and mm.dtype == np.uint16
    assert mm.tolist() == ids


def test_token_files_reject_what_they_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="run from 0 to 65536"):
        write_tokens(tmp_path / "big.bin", [0, 65536])
    with pytest.raises(ValueError, match="run from -1"):
        write_tokens(tmp_path / "neg.bin", torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match="integers"):
        write_tokens(tmp_path / "f.bin", [0.5, 1.0])
    assert not list(tmp_path.iterdir()), "a failed write should leave no file behind"
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a whole number"):
        read_tokens(tmp_path / "odd.bin")
    with pytest.raises(FileNotFoundError, match="write_tokens"):
        read_tokens(tmp_path / "missing.bin")


@pytest.mark.parametrize("tokenizer", ["char", "gpt2"])
def test_corpus_streams_through_a_token_file_into_batches(tmp_path, tokenizer):
    text = load_text()[:20_000]
    if tokenizer == "char":
        tok = CharTokenizer(load_text())
        encode, decode = tok.encode, tok.decode
    else:
        enc = gpt2_encoding()
        encode, decode = enc.encode_ordinary, enc.decode
    lines = text.splitlines(keepends=True)
    pieces = ("".join(lines[i : i + 50]) for i in range(0, len(lines), 50))  # encoded one piece at a time
    count = encode_to_file(tmp_path / "corpus.bin", pieces, encode)
    tokens = read_tokens(tmp_path / "corpus.bin")
    assert count == len(tokens)
    assert decode(tokens.tolist()) == text  # chunked encoding loses nothing
    train, val = train_val_split(tokens)
    assert isinstance(train, np.memmap)  # the split is a view, not a copy
    x, y = get_batch(train, 4, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row_x in x:
        assert decode(row_x.tolist()) in text


# --------------------------------------------------------------------------- in-context bigrams


def earlier_successors(row: torch.Tensor, t: int) -> set[int]:
    """The tokens that followed the earlier copies of ``row[t - 1]``: what looking back suggests for ``row[t]``."""
    return {int(row[s + 1]) for s in range(1, t - 1) if row[s] == row[t - 1]}


def test_in_context_bigrams_follow_each_rows_own_successors():
    ids, predictable = in_context_bigrams(300, 48, 12, follow=0.75, generator=torch.Generator().manual_seed(0))
    assert ids.shape == predictable.shape == (300, 48) and ids.dtype == torch.long
    assert (ids[:, 0] == BOS).all() and ((ids[:, 1:] >= 1) & (ids[:, 1:] < 12)).all()
    assert not predictable[:, :2].any()
    for row, marks in zip(ids[:50], predictable[:50]):
        for t in marks.nonzero().flatten().tolist():  # looking back can get these right
            assert int(row[t]) in earlier_successors(row, t)
    assert 0.45 < predictable.float().mean() < 0.75
    # Within a row, each token is followed by its favourite about 3 times in 4 (plus chance hits, 1 in 11) ...
    shares, favourites = [], []
    for row in ids:
        counts = torch.zeros(12, 12)  # (token, next token) counts of this row
        counts.index_put_((row[1:-1], row[2:]), torch.ones(46), accumulate=True)
        often = counts.sum(1) >= 5
        shares.append(counts.max(1).values[often] / counts.sum(1)[often])
        favourites.append(int(counts[row[1]].argmax()))  # the favourite of the row's first token
    assert 0.7 < torch.cat(shares).mean() < 0.85
    # ... and the favourites are the row's own: the same token has different favourites in different rows
    same_first = [f for row, f in zip(ids, favourites) if row[1] == 1]
    assert len(set(same_first)) >= 5, same_first


def test_in_context_bigrams_are_repeatable_and_follow_sets_the_share():
    a = in_context_bigrams(64, 32, 20, generator=torch.Generator().manual_seed(1))
    b = in_context_bigrams(64, 32, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    always, marks = in_context_bigrams(64, 32, 20, follow=1.0, generator=torch.Generator().manual_seed(2))
    for row, row_marks in zip(always, marks):  # follow=1: a token always has the same successor in its row
        for t in range(2, 32):
            assert earlier_successors(row, t) <= {int(row[t])}
            assert bool(row_marks[t]) == bool(earlier_successors(row, t))
    never, marks = in_context_bigrams(64, 32, 20, follow=0.0, generator=torch.Generator().manual_seed(2))
    assert not marks.any()
    assert sum(len(earlier_successors(row, t)) > 1 for row in never for t in range(2, 32)) > 50  # plain noise


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(length=2), "length should be at least 3"),
        (dict(vocab_size=2), "at least 3"),
        (dict(follow=1.5), "probability"),
    ],
)
def test_in_context_bigrams_bad_arguments_say_what_to_do(kwargs, message):
    args = dict(n_sequences=2, length=32, vocab_size=20) | kwargs
    with pytest.raises(ValueError, match=message):
        in_context_bigrams(**args)
