"""minigpt2.sampling: the logits transforms against Hugging Face's warpers, seeded sampling,
argument checks, the generation loop's edge cases, streaming text, perplexity."""

import math

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from minigpt2.model import GPT, GPTConfig
from minigpt2.sampling import (
    Temperature,
    TextAssembler,
    TopK,
    TopP,
    apply_transforms,
    complete_text,
    encode_prompt,
    generate_tokens,
    logits_transforms,
    perplexity,
    prepare_prompt,
    sample_next,
    stream_text,
    top_k_filter,
    top_p_filter,
)
from minigpt2.tokenizer import END_OF_TEXT_ID, gpt2_tokenizer

NEG_INF = float("-inf")


def random_logits(B=4, V=50, seed=0, scale=3.0):
    return scale * torch.randn(B, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models run fastest on one thread (and a shared machine's other threads do not stall them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("k", [1, 2, 7, 49, 50, 51, 10_000])
def test_top_k_equals_hugging_face(k):
    logits = random_logits()
    expected = TopKLogitsWarper(top_k=k, filter_value=NEG_INF)(None, logits.clone())
    assert torch.equal(top_k_filter(logits, k), expected)
    assert torch.equal(TopK(k)(logits), expected)


def test_top_k_keeps_exactly_k_without_ties_and_everything_above_the_vocabulary():
    logits = random_logits(V=30)
    assert (top_k_filter(logits, 5) > NEG_INF).sum(-1).tolist() == [5] * 4
    assert torch.equal(top_k_filter(logits, 500), logits)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_p_equals_hugging_face(p, seed):
    logits = random_logits(seed=seed)
    expected = TopPLogitsWarper(top_p=p, filter_value=NEG_INF)(None, logits.clone())
    assert torch.equal(top_p_filter(logits, p), expected)
    assert torch.equal(TopP(p)(logits), expected)


def test_top_p_keeps_the_boundary_token():
    # probabilities 0.5, 0.3, 0.15, 0.05 (shuffled): 0.6 needs the 0.3 token to be reached
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]], dtype=torch.float64)
    kept = lambda p: (top_p_filter(probs.log(), p) > NEG_INF)[0].nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.6) == [1, 3]  # 0.5 alone does not reach 0.6; the boundary token 0.3 is kept
    assert kept(0.4) == [1]  # the likeliest token alone reaches 0.4
    assert kept(0.9) == [0, 1, 3]
    assert kept(1e-9) == [1]  # the likeliest token always stays
    assert kept(1.0) == [0, 1, 2, 3]


def kept_by_transformers(logits: torch.Tensor, p: float) -> torch.Tensor:
    return TopPLogitsWarper(top_p=p, filter_value=NEG_INF)(None, logits.clone()) > NEG_INF


def test_top_p_passes_transformers_own_test_cases():
    # transformers' test_top_p_dist_warper: 0.1 + 0.3 + 0.5 rounds below 0.8 from the top in float32
    dist = torch.log(torch.tensor([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]]))
    expected = torch.tensor([[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]])
    torch.testing.assert_close(top_p_filter(dist, 0.8).exp(), expected, atol=1e-3, rtol=0)
    assert not torch.equal(top_p_filter(dist, 0.8), dist)  # a new tensor: the input is unchanged
    ramp = torch.arange(10.0).repeat(2, 1) - 5  # ... and its extreme logits
    ramp[1] *= 100.0
    assert (top_p_filter(ramp, 0.9) > NEG_INF).sum(-1).tolist() == [3, 1]


def test_top_p_at_exact_boundaries_and_p_one_with_zero_probability_tokens():
    logits = torch.tensor([[2.0, 0.0, 1.0, 1.0, -1.0]])
    ascending = torch.sort(logits[0]).values.softmax(-1).cumsum(-1)  # what the filter accumulates
    kept = lambda p: (top_p_filter(logits, p) > NEG_INF)[0].nonzero().flatten().tolist()  # noqa: E731
    assert kept(1 - float(ascending[1])) == [0, 2, 3]  # the two least likely sum to exactly 1 - p: dropped
    assert kept(1 - float(ascending[1]) + 1e-6) == [0, 1, 2, 3]  # a little more than that: token 1 is needed
    assert kept(1 - float(ascending[2])) in ([0, 2], [0, 3])  # a tie straddles the boundary: one of the two stays
    with_zeros = torch.tensor([[1.0, NEG_INF, 0.5, NEG_INF, 2.0]])
    assert (top_p_filter(with_zeros, 1.0) > NEG_INF).tolist() == [[True, False, True, False, True]]
    for p in (1 - float(ascending[1]), 1 - float(ascending[1]) + 1e-6, 1 - float(ascending[2]), 1.0):
        assert torch.equal(top_p_filter(logits, p) > NEG_INF, kept_by_transformers(logits, p))
    assert torch.equal(top_p_filter(with_zeros, 1.0) > NEG_INF, kept_by_transformers(with_zeros, 1.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("V", [4, 50, 1000, 50257])
def test_top_p_keeps_transformers_set_on_random_logits_with_ties_and_boundaries(dtype, V):
    """Ties (a few distinct values), -inf tokens, and p set exactly at accumulated sums."""
    g = torch.Generator().manual_seed(V)
    B, trials = (64, 6) if V < 50257 else (2, 3)  # GPT-2's vocabulary: fewer, for time
    for trial in range(trials):
        if trial % 3 == 0:
            logits = torch.randint(0, 4, (B, V), generator=g).to(dtype)  # many ties
        elif trial % 3 == 1:
            logits = (3 * torch.randn(B, V, generator=g)).to(dtype)
        else:
            logits = torch.randint(-3, 3, (B, V), generator=g).to(dtype) / 2
            logits[torch.rand(B, V, generator=g) < 0.3] = NEG_INF  # zero-probability tokens
        ascending = torch.sort(logits[0]).values.softmax(-1).cumsum(-1)
        boundaries = [1 - float(ascending[i]) for i in torch.randint(0, V, (4,), generator=g).tolist()]
        for p in [0.1, 0.5, 0.8, 0.9, 0.95, 1.0] + [b for b in boundaries if 0 < b <= 1]:
            assert torch.equal(top_p_filter(logits, p) > NEG_INF, kept_by_transformers(logits, p)), (trial, p)


def test_temperature_equals_hugging_face_and_sharpens_or_flattens():
    logits = random_logits()
    for t in (0.3, 1.0, 2.5):
        assert torch.equal(Temperature(t)(logits), TemperatureLogitsWarper(t)(None, logits.clone()))
    entropy = lambda l: -(l.softmax(-1) * l.log_softmax(-1)).sum(-1)  # noqa: E731
    assert (entropy(Temperature(0.5)(logits)) < entropy(logits)).all()
    assert (entropy(Temperature(2.0)(logits)) > entropy(logits)).all()


def test_transforms_compose_in_hugging_faces_order():
    logits = random_logits(seed=5)
    transforms = logits_transforms(0.7, top_k=10, top_p=0.8)
    assert transforms == [Temperature(0.7), TopK(10), TopP(0.8)]
    expected = logits.clone()
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(10, NEG_INF), TopPLogitsWarper(0.8, NEG_INF)):
        expected = warper(None, expected)
    assert torch.equal(apply_transforms(logits, transforms), expected)


def test_neutral_settings_add_no_transform():
    assert logits_transforms(1.0) == [] and logits_transforms(0) == [] and logits_transforms(1.0, top_p=1.0) == []


# --------------------------------------------------------------------------- sampling


def test_temperature_zero_is_the_argmax_whatever_the_filters():
    logits = random_logits()
    expected = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next(logits, temperature=0), expected)
    assert torch.equal(sample_next(logits, temperature=0, top_k=3, top_p=0.1), expected)


def test_a_seeded_generator_repeats_the_draws():
    logits = random_logits(B=64, scale=1.0)
    draw = lambda seed: sample_next(logits, 1.0, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_draws_follow_the_filtered_distribution():
    logits = random_logits(B=1, V=20, seed=3, scale=1.0).float()
    n = 20_000
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(n, -1), temperature=0.8, top_k=6, generator=g)  # (n, 1)
    expected = apply_transforms(logits, [Temperature(0.8), TopK(6)]).softmax(-1)[0]
    freq = torch.bincount(draws.flatten(), minlength=20).float() / n
    assert set(draws.unique().tolist()) == set(torch.topk(logits[0], 6).indices.tolist())
    assert (freq - expected).abs().max() < 0.02  # 4 standard deviations at most


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(temperature=-0.5), "temperature should be >= 0"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=0), "top_k should be a whole number of tokens >= 1"),
        (dict(top_k=2.5), "top_k"),
        (dict(top_k=True), "top_k"),
        (dict(top_p=0.0), r"top_p should be a probability in \(0, 1\]"),
        (dict(top_p=1.01), "top_p"),
        (dict(top_p=-0.2), "top_p"),
    ],
)
def test_bad_settings_raise_clearly(settings, message):
    with pytest.raises(ValueError, match=message):
        sample_next(random_logits(), **settings)
    with pytest.raises(ValueError, match=message):
        logits_transforms(**settings)


def test_temperature_zero_as_a_transform_points_to_greedy():
    with pytest.raises(ValueError, match="greedy"):
        Temperature(0)


def test_sample_next_wants_a_batch_of_rows():
    with pytest.raises(ValueError, match=r"logits\[None\]"):
        sample_next(torch.zeros(10))


# --------------------------------------------------------------------------- the generation loop

CONFIG = GPTConfig(block_size=12, vocab_size=END_OF_TEXT_ID + 1, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def gpt2_vocab_model():
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


def test_an_empty_prompt_starts_from_end_of_text(gpt2_vocab_model):
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert prepare_prompt(empty, 12, CONFIG.vocab_size).tolist() == [[END_OF_TEXT_ID]] * 2
    out = gpt2_vocab_model.generate(empty, 5, temperature=0)
    start = torch.full((2, 1), END_OF_TEXT_ID)
    assert out.shape == (2, 5)  # the start token is context, not output
    assert torch.equal(out, gpt2_vocab_model.generate(start, 5, temperature=0)[:, 1:])


def test_an_empty_prompt_needs_an_end_of_text_token():
    with pytest.raises(ValueError, match="at least one token"):
        prepare_prompt(torch.zeros(1, 0, dtype=torch.long), 12, 65)


def test_a_prompt_longer_than_the_context_is_cropped_with_a_warning(gpt2_vocab_model):
    long = torch.randint(0, 1000, (1, 20))
    with pytest.warns(UserWarning, match="only the last 12"):
        out = gpt2_vocab_model.generate(long, 3, temperature=0)
    assert out.shape == (1, 23) and torch.equal(out[:, :20], long)
    assert torch.equal(out[:, 20:], gpt2_vocab_model.generate(long[:, -12:], 3, temperature=0)[:, 12:])


def test_top_k_above_the_vocabulary_is_clamped(gpt2_vocab_model):
    idx = torch.tensor([[1, 2, 3]])
    a = gpt2_vocab_model.generate(idx, 4, top_k=10**6, generator=torch.Generator().manual_seed(0))
    b = gpt2_vocab_model.generate(idx, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [torch.tensor([1, 2, 3]), [[1, 2]], torch.zeros(1, 3)])
def test_prompts_that_are_not_token_ids_raise_clearly(gpt2_vocab_model, bad):
    with pytest.raises(ValueError, match="token ids"):
        generate_tokens(gpt2_vocab_model, bad, 2)


def test_the_settings_are_checked_once_per_generate_not_per_token(gpt2_vocab_model, monkeypatch):
    import minigpt2.sampling as sampling

    calls = []
    monkeypatch.setattr(sampling, "check_sampling_settings", lambda *a, **k: calls.append(a or k))
    counts = []
    for n in (1, 10):
        calls.clear()
        gpt2_vocab_model.generate(torch.tensor([[1, 2]]), n, temperature=0.8, top_k=5, top_p=0.9)
        counts.append(len(calls))
    assert counts[0] == counts[1] > 0


def test_generate_shows_the_parameters_of_generate_tokens():
    import inspect

    assert list(inspect.signature(GPT(CONFIG).generate).parameters) == [
        "idx", "max_new_tokens", "temperature", "top_k", "top_p", "use_cache", "generator", "attention_mask"]


def test_bad_settings_raise_before_any_step(gpt2_vocab_model):
    idx = torch.tensor([[1]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_tokens(gpt2_vocab_model, idx, -1)
    with pytest.raises(ValueError, match="top_p"):
        generate_tokens(gpt2_vocab_model, idx, 3, top_p=2.0)


# --------------------------------------------------------------------------- text


class ScriptedModel(torch.nn.Module):
    """A stand-in model that 'predicts' a fixed script of tokens, one per step, and records
    what it was shown."""

    def __init__(self, script, vocab_size=END_OF_TEXT_ID + 1, block_size=1024):
        super().__init__()
        self.config = GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=1, n_head=1, n_embd=4)
        self.script = list(script)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # so that the model has a device
        self.seen = []

    def forward(self, idx, targets=None, kv_cache=None, last_only=False):
        self.seen.append(idx.tolist())
        step = len(self.seen) - 1
        logits = torch.zeros(idx.size(0), 1, self.config.vocab_size)
        logits[:, :, self.script[step]] = 100.0
        return logits, None


MIXED_TEXT = "naïve café — 你好，世界 🙂!"


def test_the_script_splits_characters_across_tokens(tokenizer):
    ids = tokenizer.encode(MIXED_TEXT)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # otherwise the next test tests nothing


def test_streaming_yields_only_complete_text(tokenizer):
    ids = tokenizer.encode(MIXED_TEXT)
    pieces = list(stream_text(ScriptedModel(ids), tokenizer, "Hi", len(ids), temperature=0, use_cache=False))
    assert "".join(pieces) == MIXED_TEXT
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) > 5  # text comes out as it is made, not at the end


def test_generation_stops_at_end_of_text_and_an_empty_prompt_starts_there(tokenizer):
    ids = tokenizer.encode("Hello there") + [END_OF_TEXT_ID] + tokenizer.encode(" more")
    model = ScriptedModel(ids)
    assert complete_text(model, tokenizer, "", 50, temperature=0, use_cache=False) == "Hello there"
    assert model.seen[0] == [[END_OF_TEXT_ID]]
    assert len(model.seen) == len(tokenizer.encode("Hello there")) + 1
    model = ScriptedModel(ids)
    whole = complete_text(model, tokenizer, "x", len(ids), temperature=0, use_cache=False, stop_at_end_of_text=False)
    assert whole == "Hello there<|endoftext|> more"


def test_ids_of_a_padded_vocabulary_come_out_as_a_marker_on_every_path(tokenizer):
    """vocab_multiple=64 rounds a vocabulary up: the model has ids its tokenizer does not (here 2 and 50300)."""
    from minigpt2.chartokenizer import CharTokenizer
    from minigpt2.train.sample import generate_text, stream_sample

    class Scripted(ScriptedModel):
        generate = GPT.generate

        def new_kv_cache(self):
            return None  # no cache: the paths that use one run uncached

    for tok, script, vocab_size in ((CharTokenizer("ab"), [0, 2, 1], 64), (tokenizer, [64, 50300, 65], 50304)):
        expected = f"a<|unused {script[1]}|>b"
        steps = dict(max_new_tokens=3, temperature=0)
        assert complete_text(Scripted(script, vocab_size), tok, "a", **steps, use_cache=False) == expected
        assert "".join(stream_sample(Scripted(script, vocab_size), tok, tok.encode("a"), **steps)) == expected
        assert generate_text(Scripted(script, vocab_size), tok, "a", **steps) == ["a" + expected]


@pytest.mark.parametrize("stop, expected",
                         [("\n\n", "First line.\nSecond"), (["ird", "line."], "First "), ("zzz", None)])
def test_generation_stops_at_a_stop_string(tokenizer, stop, expected):
    text = "First line.\nSecond\n\nThird"
    ids = tokenizer.encode(text)
    out = complete_text(ScriptedModel(ids), tokenizer, "x", len(ids), temperature=0, use_cache=False, stop=stop)
    assert out == (text if expected is None else expected)


def test_max_new_tokens_ends_the_stream(tokenizer):
    ids = tokenizer.encode("one two three four five")
    assert complete_text(ScriptedModel(ids), tokenizer, "x", 3, temperature=0, use_cache=False) == "one two three"


def test_the_assembler_holds_back_what_may_start_a_stop_string():
    a = TextAssembler(stop=["\n\n"])
    assert a.feed(b"ab\n") == "ab"
    assert a.feed(b"c") == "\nc"
    assert a.feed(b"\n") == "" and a.feed(b"\n") == "" and a.stopped
    assert a.feed(b"more") == ""


def test_the_assembler_waits_for_a_whole_character_and_marks_broken_bytes():
    a = TextAssembler()
    smile = "🙂".encode()
    assert [a.feed(smile[:1]), a.feed(smile[1:3]), a.feed(smile[3:])] == ["", "", "🙂"]
    assert a.feed(b"ok\xe4") == "ok"
    assert a.feed(b"", final=True) == "\ufffd"  # a character cut off at the end


def test_sampled_text_is_repeatable_with_a_seed(gpt2_vocab_model, tokenizer):
    def text(seed):
        return complete_text(gpt2_vocab_model, tokenizer, "Once", 8, seed=seed, stop_at_end_of_text=False)

    assert text(3) == text(3)
    assert text(3) != text(4)


def test_a_prompt_must_be_text_and_an_empty_one_needs_end_of_text(tokenizer):
    assert encode_prompt(tokenizer, "") == [END_OF_TEXT_ID]
    with pytest.raises(TypeError, match="str"):
        encode_prompt(tokenizer, [1, 2])

    class NoSpecials:
        def encode(self, text):
            return [ord(c) for c in text]

    with pytest.raises(ValueError, match="at least one character"):
        encode_prompt(NoSpecials(), "")


# --------------------------------------------------------------------------- perplexity


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(1)
    model = GPT(GPTConfig(block_size=16, vocab_size=40, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0, 1.0)  # a confident, opinionated model
    return model


def test_perplexity_of_a_short_text_is_exp_of_the_loss(small_model):
    ids = torch.randint(0, 40, (13,), generator=torch.Generator().manual_seed(0))
    _, loss = small_model(ids[None, :-1], ids[None, 1:])
    assert perplexity(small_model, ids) == pytest.approx(math.exp(loss.item()), rel=1e-5)
    assert perplexity(small_model, ids.tolist()) == pytest.approx(math.exp(loss.item()), rel=1e-5)


def test_perplexity_of_a_long_text_scores_every_token_once_with_its_window(small_model):
    ids = torch.randint(0, 40, (50,), generator=torch.Generator().manual_seed(1))
    nll = []
    for t in range(1, 50):  # token t, seen after at most block_size tokens
        context = ids[max(0, t - 16) : t]
        logits, _ = small_model(context[None])
        nll.append(-logits[0, -1].log_softmax(-1)[ids[t]].item())
    assert perplexity(small_model, ids, stride=1) == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)
    # a longer stride gives some tokens less context: a different, still finite number
    assert math.isfinite(perplexity(small_model, ids)) and perplexity(small_model, ids, stride=16) > 1


def test_a_model_that_knows_nothing_has_the_vocabulary_size_as_perplexity():
    model = GPT(GPTConfig(block_size=8, vocab_size=40, n_layer=1, n_head=1, n_embd=8)).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit 0: the uniform distribution
    assert perplexity(model, list(range(30))) == pytest.approx(40.0, rel=1e-6)


def test_perplexity_rejects_bad_input(small_model):
    with pytest.raises(ValueError, match="at least 2 tokens"):
        perplexity(small_model, [3])
    with pytest.raises(ValueError, match="stride"):
        perplexity(small_model, [1, 2, 3], stride=0)
