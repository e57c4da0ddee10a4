"""minigpt2.attention against PyTorch's F.scaled_dot_product_attention."""

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from minigpt2 import attention
from minigpt2.attention import (
    EXPLICIT_BF16_MAX_T,
    CausalSelfAttention,
    attention_weights,
    causal_mask,
    explicit_is_faster,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)

DTYPES = [torch.float32, torch.float64]
# (leading dims, T, head_dim): no batch, batch only, batch and heads, T = 1, odd sizes
SHAPES = [((), 5, 8), ((3,), 7, 4), ((2, 4), 9, 16), ((1, 1), 1, 8), ((2, 3), 13, 5)]


def tight(dtype):
    return dict(atol=1e-6, rtol=1e-6) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)


def config(n_embd=32, n_head=4, dropout=0.0, bias=True, block_size=64):
    return SimpleNamespace(n_embd=n_embd, n_head=n_head, dropout=dropout, bias=bias, block_size=block_size)


def qkv(lead, T, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*lead, T, d, generator=g, dtype=dtype) for _ in range(3)]


# ----------------------------------------------------------------------------- the mask


def test_causal_mask_allows_the_past_and_the_present_only():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_causal_mask_rejects_an_empty_sequence():
    with pytest.raises(ValueError, match="T >= 1"):
        causal_mask(0)


# ----------------------------------------------------------------------------- the reference function


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead,T,d", SHAPES)
def test_reference_equals_torch_causal(lead, T, d, dtype):
    q, k, v = qkv(lead, T, d, dtype)
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(T))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **tight(dtype))
    assert weights.shape == (*lead, T, T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead,T,d", SHAPES)
def test_reference_equals_torch_without_a_mask(lead, T, d, dtype):
    q, k, v = qkv(lead, T, d, dtype, seed=1)
    out, _ = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **tight(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_equals_torch_with_any_bool_mask_and_different_lengths(dtype):
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 3, 6, 8, generator=g, dtype=dtype)
    k = torch.randn(2, 3, 10, 8, generator=g, dtype=dtype)
    v = torch.randn(2, 3, 10, 5, generator=g, dtype=dtype)
    mask = torch.rand(6, 10, generator=g) > 0.5
    mask[:, 0] = True  # every query may see at least one key
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **tight(dtype))


def test_weights_are_a_distribution_over_allowed_keys():
    q, k, _ = qkv((2, 3), 8, 16, torch.float64)
    w = attention_weights(q, k, causal_mask(8))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 8, dtype=torch.float64))
    assert (w >= 0).all()
    assert (w[..., ~causal_mask(8)] == 0).all(), "a masked (future) key got weight"
    assert (w[..., 0, 0] == 1).all(), "the first position can only attend to itself"


def test_weights_are_scaled_by_sqrt_d():
    q, k, _ = qkv((), 4, 64, torch.float64)
    expected = torch.softmax(q @ k.T / 8.0, dim=-1)
    torch.testing.assert_close(attention_weights(q, k), expected)


def test_reference_rejects_mismatched_shapes_and_non_bool_masks():
    q, k, v = qkv((), 4, 8, torch.float32)
    with pytest.raises(ValueError, match="same last size d"):
        scaled_dot_product_attention(q, k[:, :4], v)
    with pytest.raises(ValueError, match="same length T_k"):
        scaled_dot_product_attention(q, k, v[:3])
    with pytest.raises(TypeError, match="bool tensor"):
        scaled_dot_product_attention(q, k, v, causal_mask(4).float())


# ----------------------------------------------------------------------------- heads


def test_split_heads_puts_channel_block_h_in_head_h_and_merge_inverts_it():
    x = torch.arange(2 * 3 * 12).reshape(2, 3, 12).float()  # (B, T, C)
    heads = split_heads(x, 4)  # (B, n_head, T, head_dim)
    assert heads.shape == (2, 4, 3, 3)
    for h in range(4):
        assert torch.equal(heads[:, h], x[..., 3 * h : 3 * (h + 1)])
    assert torch.equal(merge_heads(heads), x)


# ----------------------------------------------------------------------------- the module


def test_gpt2_layout_and_parameter_count():
    attn = CausalSelfAttention(config(n_embd=48, n_head=6, bias=True))
    shapes = {name: tuple(p.shape) for name, p in attn.named_parameters()}
    assert shapes == {"c_attn.weight": (144, 48), "c_attn.bias": (144,), "c_proj.weight": (48, 48),
                      "c_proj.bias": (48, )}
    assert sum(p.numel() for p in attn.parameters()) == 4 * 48 * 48 + 4 * 48
    assert (attn.n_head, attn.n_embd) == (6, 48)
    assert isinstance(attn.attn_dropout, torch.nn.Dropout) and isinstance(attn.resid_dropout, torch.nn.Dropout)
    no_bias = CausalSelfAttention(config(n_embd=48, n_head=6, bias=False))
    assert [name for name, _ in no_bias.named_parameters()] == ["c_attn.weight", "c_proj.weight"]


def by_hand(attn, x):
    """The module's computation written out with PyTorch's own attention, independent of minigpt2."""
    B, T, C = x.shape
    H = attn.n_head
    q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(B, T, H, C // H).permute(0, 2, 1, 3) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
    y = y.permute(0, 2, 1, 3).reshape(B, T, C)
    return F.linear(y, attn.c_proj.weight, attn.c_proj.bias)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,n_embd,n_head", [(1, 1, 8, 1), (2, 7, 32, 4), (3, 16, 48, 6), (2, 33, 64, 8)])
def test_both_paths_equal_torch(B, T, n_embd, n_head, dtype):
    torch.manual_seed(3)
    attn = CausalSelfAttention(config(n_embd=n_embd, n_head=n_head)).to(dtype).eval()
    x = torch.randn(B, T, n_embd, dtype=dtype)
    expected = by_hand(attn, x)
    fused = attn(x)
    explicit, weights = attn(x, need_weights=True)
    torch.testing.assert_close(fused, expected, **tight(dtype))
    torch.testing.assert_close(explicit, expected, **tight(dtype))
    assert weights.shape == (B, n_head, T, T)
    assert (weights[..., ~causal_mask(T)] == 0).all()


def test_both_paths_give_the_same_gradients():
    torch.manual_seed(4)
    attn = CausalSelfAttention(config()).double()
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    grads = []
    for need_weights in (False, True):
        attn.zero_grad()
        out = attn(x, need_weights=need_weights)
        y = out[0] if need_weights else out
        y.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in attn.parameters()])
    for fused, explicit in zip(*grads):
        torch.testing.assert_close(fused, explicit)


@pytest.mark.parametrize("need_weights", [False, True])
def test_no_position_attends_to_a_later_one(need_weights):
    torch.manual_seed(5)
    attn = CausalSelfAttention(config()).double().eval()
    x = torch.randn(2, 12, 32, dtype=torch.float64)

    def run(inp):
        out = attn(inp, need_weights=need_weights)
        return out[0] if need_weights else out

    y = run(x)
    for t in (0, 5, 10):
        perturbed = x.clone()
        perturbed[:, t + 1 :] += torch.randn_like(perturbed[:, t + 1 :]) * 10
        y2 = run(perturbed)
        torch.testing.assert_close(y2[:, : t + 1], y[:, : t + 1], atol=1e-12, rtol=0)
        assert not torch.allclose(y2[:, t + 1 :], y[:, t + 1 :]), "perturbing the future should move the future"


def test_dropout_is_active_in_training_only():
    torch.manual_seed(6)
    attn = CausalSelfAttention(config(dropout=0.5))
    x = torch.randn(2, 8, 32)
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))
    torch.testing.assert_close(attn(x), attn(x, need_weights=True)[0], atol=1e-6, rtol=1e-6)
    attn.train()
    for need_weights in (False, True):
        a = attn(x, need_weights=need_weights)
        b = attn(x, need_weights=need_weights)
        a, b = (a[0], b[0]) if need_weights else (a, b)
        assert not torch.allclose(a, b), "with dropout 0.5 two training passes should differ"


def test_accepts_any_object_with_nanogpt_field_names():
    @torch.no_grad()
    def run(cfg):
        return CausalSelfAttention(cfg)(torch.zeros(1, 3, cfg.n_embd)).shape

    class Cfg:
        n_embd, n_head, dropout, bias, block_size = 16, 2, 0.0, False, 8

    assert run(Cfg()) == (1, 3, 16)


def test_clear_errors_for_bad_config_and_input():
    with pytest.raises(ValueError, match="divisible by n_head"):
        CausalSelfAttention(config(n_embd=30, n_head=4))
    attn = CausalSelfAttention(config())
    with pytest.raises(ValueError, match=r"\(B, T, 32\)"):
        attn(torch.zeros(3, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 32\)"):
        attn(torch.zeros(1, 3, 16))


# ----------------------------------------------------------------------------- with a KV cache (lesson 09)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("chunks", [[1] * 9, [4, 1, 1, 3], [5, 4]])
def test_feeding_tokens_through_a_kv_cache_equals_the_whole_sequence(chunks, need_weights):
    from minigpt2.kv_cache import LayerKVCache

    torch.manual_seed(7)
    attn = CausalSelfAttention(config()).double().eval()
    x = torch.randn(2, sum(chunks), 32, dtype=torch.float64)
    whole = attn(x)
    cache, pieces, start = LayerKVCache(capacity=16), [], 0
    for n in chunks:
        out = attn(x[:, start : start + n], need_weights=need_weights, kv_cache=cache)
        if need_weights:
            out, weights = out
            assert weights.shape == (2, 4, n, start + n)  # new queries against every cached key
            assert (weights[..., ~causal_mask(start + n)[start:]] == 0).all()
        pieces.append(out)
        start += n
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- bf16 on a CPU


def test_the_explicit_path_is_taken_in_bf16_on_a_cpu_up_to_its_length_limit():
    q = torch.zeros(2, 4, EXPLICIT_BF16_MAX_T, 8)
    assert explicit_is_faster(q.bfloat16())
    assert not explicit_is_faster(q)  # float32: the fused kernel
    assert not explicit_is_faster(torch.zeros(2, 4, EXPLICIT_BF16_MAX_T + 1, 8, dtype=torch.bfloat16))


def test_under_bf16_autocast_the_explicit_path_is_as_accurate_as_torchs_fused_kernel(monkeypatch):
    """The output and the gradients under bf16 autocast, against float64: the explicit path that
    ``forward(x)`` takes there errs no more than PyTorch's fused bf16 kernel (to within 1.5x)."""
    torch.manual_seed(7)
    attn = CausalSelfAttention(config(n_embd=64, n_head=4))
    x, grad_y = torch.randn(3, 40, 64), torch.randn(3, 40, 64)

    def run(module, dtype, explicit=False):
        monkeypatch.setattr(attention, "explicit_is_faster", lambda q: explicit)
        module.zero_grad()
        inp = x.to(dtype, copy=True).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.float32):
            y = module(inp)  # float32 weights and input, bf16 inside; or float64 throughout
        y.backward(grad_y.to(y.dtype))
        return [y, inp.grad, *(p.grad for p in module.parameters())]

    exact = run(copy.deepcopy(attn).double(), torch.float64)
    errors = {}
    for explicit in (True, False):
        got = run(attn, torch.float32, explicit)
        errors[explicit] = [((a.double() - e).abs().max() / e.abs().max()).item() for a, e in zip(got, exact)]
    for mine, torchs in zip(errors[True], errors[False]):
        assert mine < 0.03  # a few bf16 roundings (2**-8 each) of the largest value
        assert mine <= 1.5 * torchs + 1e-3, (errors[True], errors[False])
