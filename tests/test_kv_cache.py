"""The KV cache: attention and the model computed piece by piece through the cache equal the
full computation; generation with the cache gives the uncached path's tokens (greedy, and
sampling with the same seed), past the context too; Hugging Face's cached generation agrees."""

import copy
import math
import warnings
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minigpt2.attention import CausalSelfAttention
from minigpt2.hf import config_to_hf, to_hf_state_dict
from minigpt2.kv_cache import KVCache, LayerKVCache
from minigpt2.model import GPT, GPTConfig

CONFIG = GPTConfig(block_size=24, vocab_size=71, n_layer=3, n_head=3, n_embd=48)
CHUNKS = [(0, 5), (5, 6), (6, 11), (11, 12), (12, 19)]  # a prompt, single tokens, several tokens at once


def spread_out(model: GPT, seed: int) -> GPT:
    """Weights far from the init, so that every layer matters and continuations vary."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(2 * noise / math.sqrt(min(p.shape)) if p.dim() > 1 else 1 + 0.2 * noise if name.endswith("weight")
                    else 0.2 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return spread_out(GPT(CONFIG), seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models run fastest on one thread (and a shared machine's other threads do not stall them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_through_the_cache_equals_attention_on_the_whole_sequence(need_weights):
    config = SimpleNamespace(n_embd=32, n_head=4, dropout=0.0, bias=True)
    torch.manual_seed(0)
    attn = CausalSelfAttention(config).double().eval()
    x = torch.randn(2, 19, 32, dtype=torch.float64)
    full, full_weights = attn(x, need_weights=True)
    cache = LayerKVCache(capacity=24)
    for start, end in CHUNKS:
        out = attn(x[:, start:end], need_weights=need_weights, kv_cache=cache)
        if need_weights:
            out, weights = out
            assert weights.shape == (2, 4, end - start, end)  # the new queries against every key so far
            torch.testing.assert_close(weights, full_weights[:, :, start:end, :end])
        torch.testing.assert_close(out, full[:, start:end])
    assert cache.length == 19


def test_the_cache_is_written_in_place_and_never_reallocated():
    cache = LayerKVCache(capacity=10)
    k = torch.randn(1, 2, 3, 4)
    keys, values = cache.append(k, 2 * k)
    storage = cache.keys.data_ptr()
    keys, values = cache.append(k[:, :, :1] + 1, k[:, :, :1])
    assert cache.keys.data_ptr() == storage and cache.keys.shape == (1, 2, 10, 4)
    assert keys.shape == (1, 2, 4, 4) and torch.equal(keys[:, :, :3], k) and torch.equal(values[:, :, 3:], k[:, :, :1])


def test_a_full_cache_and_mismatched_shapes_raise_clearly():
    cache = LayerKVCache(capacity=4)
    cache.append(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="do not fit: reset"):
        cache.append(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    with pytest.raises(ValueError, match="one cache per batch"):
        cache.append(torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))
    with pytest.raises(ValueError, match=r"\(B, n_head, T, head_dim\)"):
        cache.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 2, 4))


# --------------------------------------------------------------------------- the model


def test_the_model_through_the_cache_equals_the_model_on_the_whole_sequence():
    model = spread_out(GPT(CONFIG), seed=1).double()
    idx = torch.randint(0, 71, (2, 19), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_kv_cache()
        for start, end in CHUNKS:
            logits, _ = model(idx[:, start:end], kv_cache=cache)
            torch.testing.assert_close(logits, full[:, start:end])  # positions follow the cached ones
        last, _ = model(idx, last_only=True)
    assert cache.length == 19 and isinstance(cache, KVCache)
    torch.testing.assert_close(last, full[:, -1:])


def test_running_past_the_cache_raises_clearly(model):
    cache = model.new_kv_cache()
    with torch.no_grad():
        model(torch.zeros(1, 20, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="reset"):
            model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
        cache.reset()
        assert cache.length == 0
        model(torch.zeros(1, 24, dtype=torch.long), kv_cache=cache)


def test_last_only_refuses_a_loss(model):
    idx = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="without last_only"):
        model(idx, idx, last_only=True)


# --------------------------------------------------------------------------- generation: cached == uncached

@contextmanager
def crop_warning_if(cropped: bool):
    """Expect the cropping warning for a prompt longer than the context, and no warning otherwise."""
    if cropped:
        with pytest.warns(UserWarning, match="sees only the last"):
            yield
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield


# (B, T): one token, short, batch, at and past the context
PROMPTS = [(1, 1), (1, 7), (3, 5), (2, 23), (1, 24), (2, 30)]


@pytest.mark.parametrize("B, T", PROMPTS)
@pytest.mark.parametrize("new", [1, 17, 40])  # within the context, and well past it (the window slides)
def test_greedy_with_the_cache_gives_the_uncached_tokens(model, B, T, new):
    idx = torch.randint(0, 71, (B, T), generator=torch.Generator().manual_seed(B * 100 + T))
    with crop_warning_if(T > CONFIG.block_size):
        cached = model.generate(idx, new, temperature=0, use_cache=True)
        uncached = model.generate(idx, new, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached[:, T:].unique().numel() > 1 or new == 1  # a real continuation, not one repeated token


@pytest.mark.parametrize("B, T", PROMPTS)
@pytest.mark.parametrize(
    "settings", [dict(temperature=1.0), dict(temperature=0.7, top_k=5), dict(temperature=1.3, top_p=0.9)]
)
def test_sampling_with_the_cache_and_the_same_seed_gives_the_uncached_tokens(model, B, T, settings):
    idx = torch.randint(0, 71, (B, T), generator=torch.Generator().manual_seed(T))
    with crop_warning_if(T > CONFIG.block_size):
        cached = model.generate(idx, 40, use_cache=True, generator=torch.Generator().manual_seed(5), **settings)
        uncached = model.generate(idx, 40, use_cache=False, generator=torch.Generator().manual_seed(5), **settings)
    assert torch.equal(cached, uncached)


def test_past_the_context_the_window_slides(model):
    """Each token past block_size is the greedy choice given exactly the last block_size tokens."""
    idx = torch.randint(0, 71, (1, 10), generator=torch.Generator().manual_seed(3))
    out = model.generate(idx, 30, temperature=0)
    with torch.no_grad():
        for t in range(10, 40):
            logits, _ = model(out[:, max(0, t - CONFIG.block_size) : t])
            assert out[0, t] == logits[0, -1].argmax()


# --------------------------------------------------------------------------- against Hugging Face


def test_cached_greedy_equals_hugging_faces_cached_generate():
    config = GPTConfig(block_size=64, vocab_size=97, n_layer=4, n_head=4, n_embd=64)
    ours = spread_out(GPT(config), seed=2)
    hf_config = {key: value for key, value in config_to_hf(config).items() if key not in ("bos_token_id",
                                                                                          "eos_token_id")}
    hf = GPT2LMHeadModel(GPT2Config(**hf_config)).eval()  # no end-of-text token: all 40 tokens are greedy
    hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    idx = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(0))
    expected = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=40, min_new_tokens=40, do_sample=False, pad_token_id=0,
        use_cache=True
    )
    assert torch.equal(ours.generate(idx, 40, temperature=0, use_cache=True), expected)


def test_bf16_weights_generate_as_accurately_as_hugging_faces_in_bf16():
    """Generation on a bfloat16 copy of the weights (half the bytes a token reads; faster at batch 1 on a
    CPU with bf16 instructions, benchmarks/RESULTS.md): its logits are as close to float32's as Hugging
    Face's bf16 model's are, and its cached greedy tokens are its uncached ones."""
    config = GPTConfig(block_size=64, vocab_size=97, n_layer=4, n_head=4, n_embd=64)
    ours = spread_out(GPT(config), seed=2)
    hf_config = {key: value for key, value in config_to_hf(config).items()
                 if key not in ("bos_token_id", "eos_token_id")}
    hf = GPT2LMHeadModel(GPT2Config(**hf_config)).eval()
    hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    idx = torch.randint(0, 97, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = ours(idx)[0].double()
        ours16, hf16 = copy.deepcopy(ours).to(torch.bfloat16), hf.to(torch.bfloat16)
        ours_err = (ours16(idx)[0].double() - exact).abs().max().item()
        hf_err = (hf16(idx).logits.double() - exact).abs().max().item()
    assert ours_err <= 1.5 * hf_err + 1e-3, (ours_err, hf_err)
    assert ours_err < 0.05 * exact.abs().max().item()  # a few bf16 roundings of the largest logit
    cached = ours16.generate(idx[:, :6], 40, temperature=0, use_cache=True)
    assert torch.equal(cached, ours16.generate(idx[:, :6], 40, temperature=0, use_cache=False))
    assert cached[:, 6:].unique().numel() > 1
