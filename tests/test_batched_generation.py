"""Batched generation with an attention mask: a left-padded batch gives every row the logits and
the tokens it gets alone (with and without the KV cache, past the context too), and equals
Hugging Face's ``generate(..., attention_mask=...)``, greedy and sampled with the same seed."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minigpt2.attention import padded_causal_mask
from minigpt2.hf import config_to_hf, to_hf_state_dict
from minigpt2.model import GPT, GPTConfig

CONFIG = GPTConfig(block_size=24, vocab_size=71, n_layer=3, n_head=3, n_embd=48)
LENGTHS = [5, 1, 9, 3]  # prompt lengths of the batch's rows
PAD = 7  # any id: padding is masked out, whatever it holds


SAMPLING_SETTINGS = [dict(temperature=1.0), dict(temperature=0.8, top_k=9), dict(temperature=1.2, top_p=0.8)]


def spread_out(model: GPT, seed: int) -> GPT:
    """Weights far from the init, so that every layer matters and continuations vary."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(2 * noise / math.sqrt(min(p.shape)) if p.dim() > 1 else 1 + 0.2 * noise if name.endswith("weight")
                    else 0.2 * noise)
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return spread_out(GPT(CONFIG), seed=4).double()


def prompts(lengths, vocab_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (n,), generator=g) for n in lengths]


def left_pad(rows):
    """(B, T) ids and their (B, T) mask, each row padded on the left to the longest."""
    T = max(len(r) for r in rows)
    idx = torch.full((len(rows), T), PAD, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        idx[i, T - len(r) :] = r
        mask[i, T - len(r) :] = 1
    return idx, mask


def test_padded_causal_mask():
    mask = padded_causal_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]), T=3)
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.bool
    # padding sees itself only
    assert mask[0, 0].tolist() == [[True, False, False], [False, True, False], [False, True, True]]
    assert torch.equal(mask[1, 0], torch.ones(3, 3, dtype=torch.bool).tril())  # no padding: the causal mask
    last = padded_causal_mask(torch.tensor([[0, 1, 1, 1]]), T=1)  # one new token after three cached
    assert last[0, 0].tolist() == [[False, True, True, True]]


def test_padded_forward_gives_each_row_its_logits_alone(model):
    rows = prompts(LENGTHS, CONFIG.vocab_size)
    idx, mask = left_pad(rows)
    with torch.no_grad():
        logits, _ = model(idx, attention_mask=mask)  # (B, T, V)
        for i, r in enumerate(rows):
            alone, _ = model(r[None])
            torch.testing.assert_close(logits[i, idx.size(1) - len(r) :], alone[0])
        assert torch.isfinite(logits).all()  # padding rows too: no NaN anywhere


def test_padded_forward_through_the_cache_equals_the_whole_batch(model):
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=1)
    idx, mask = left_pad(rows)
    with torch.no_grad():
        full, _ = model(idx, attention_mask=mask)
        cache = model.new_kv_cache()
        for start, end in [(0, 4), (4, 5), (5, 9)]:
            # the mask covers the cache
            logits, _ = model(idx[:, start:end], kv_cache=cache, attention_mask=mask[:, :end])
            torch.testing.assert_close(logits, full[:, start:end])


def test_padded_forward_equals_transformers_with_its_position_ids(model):
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=2)
    idx, mask = left_pad(rows)
    hf = hf_twin(model)
    position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # what transformers' generate passes
    with torch.no_grad():
        ours, _ = model(idx, attention_mask=mask)
        theirs = hf(idx, attention_mask=mask, position_ids=position_ids).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs[real])


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("new", [6, 30])  # within the context, and past it (the window slides)
def test_greedy_rows_equal_each_row_alone(model, use_cache, new):
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=3)
    idx, mask = left_pad(rows)
    out = model.generate(idx, new, temperature=0, use_cache=use_cache, attention_mask=mask)
    assert out.shape == (len(rows), idx.size(1) + new) and torch.equal(out[:, : idx.size(1)], idx)
    for i, r in enumerate(rows):
        alone = model.generate(r[None], new, temperature=0, use_cache=use_cache)
        assert torch.equal(out[i, idx.size(1) :], alone[0, len(r) :]), f"row {i}"
    assert out[:, idx.size(1) :].unique().numel() > 3  # real continuations


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_sampled_rows_with_one_generator_each_equal_each_row_alone(model, use_cache, settings):
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=4)
    idx, mask = left_pad(rows)
    generators = [torch.Generator().manual_seed(100 + i) for i in range(len(rows))]
    out = model.generate(idx, 30, use_cache=use_cache, generator=generators, attention_mask=mask, **settings)
    for i, r in enumerate(rows):
        alone = model.generate(r[None], 30, use_cache=use_cache, generator=torch.Generator().manual_seed(100 + i),
                               **settings)
        assert torch.equal(out[i, idx.size(1) :], alone[0, len(r) :]), f"row {i}"


def test_a_mask_of_ones_is_the_unmasked_path(model):
    idx = prompts([8, 8], CONFIG.vocab_size, seed=5)
    idx = torch.stack(idx)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    masked = model.generate(idx, 10, generator=g(), attention_mask=torch.ones_like(idx))
    assert torch.equal(masked, model.generate(idx, 10, generator=g()))


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(4, 3, dtype=torch.long), "prompt's shape"),
        (torch.full((4, 9), 2), "only 1"),
        (torch.ones(4, 9), "only 1"),  # float
        (torch.zeros(4, 9, dtype=torch.long), r"row\(s\) \[0, 1, 2, 3\]"),
        ([[1] * 9] * 4, "prompt's shape"),
    ],
)
def test_bad_masks_raise_clearly(model, mask, message):
    idx, _ = left_pad(prompts(LENGTHS, CONFIG.vocab_size))
    with pytest.raises(ValueError, match=message):
        model.generate(idx, 2, attention_mask=mask)


def test_bad_forward_masks_and_generator_lists_raise_clearly(model):
    idx, mask = left_pad(prompts(LENGTHS, CONFIG.vocab_size))
    with pytest.raises(ValueError, match="cached \\+ T"):
        model(idx[:, 1:], attention_mask=mask)
    with pytest.raises(ValueError, match="one per row \\(4\\)"):
        model.generate(idx, 2, generator=[torch.Generator()], attention_mask=mask)


# --------------------------------------------------------------------------- against Hugging Face


def hf_twin(model: GPT) -> GPT2LMHeadModel:
    """transformers' GPT-2 with our weights and no end-of-text token (every row runs to the end)."""
    hf_config = {k: v for k, v in config_to_hf(model.config).items() if k not in ("bos_token_id", "eos_token_id")}
    hf = GPT2LMHeadModel(GPT2Config(**hf_config)).to(next(model.parameters()).dtype).eval()
    hf.load_state_dict(to_hf_state_dict(model), strict=False)
    return hf


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_batch_equals_transformers_generate_with_the_mask(model, use_cache):
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=6)
    idx, mask = left_pad(rows)
    new = CONFIG.block_size - idx.size(1)  # transformers cannot slide the window
    expected = hf_twin(model).generate(
        idx, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=PAD,
        use_cache=use_cache
    )
    assert torch.equal(model.generate(idx, new, temperature=0, use_cache=use_cache, attention_mask=mask), expected)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_sampled_batch_equals_transformers_generate_with_the_same_seed(model, use_cache, settings):
    """One seed for the whole batch: both draw every row's token with one torch.multinomial call."""
    rows = prompts(LENGTHS, CONFIG.vocab_size, seed=7)
    idx, mask = left_pad(rows)
    new = CONFIG.block_size - idx.size(1)
    hf_settings = {"top_k": 0, "top_p": 1.0, **settings}  # transformers' defaults are top_k=50
    hf = hf_twin(model)  # made before seeding: its init draws from the global generator
    torch.manual_seed(11)
    expected = hf.generate(
        idx, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=True, pad_token_id=PAD,
        use_cache=use_cache, **hf_settings,
    )
    torch.manual_seed(11)
    ours = model.generate(idx, new, use_cache=use_cache, attention_mask=mask, **settings)
    assert torch.equal(ours, expected)
