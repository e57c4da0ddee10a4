"""minigpt2.layers against PyTorch's own GELU and LayerNorm, and the pre-LN block's wiring."""

import pytest
import torch
import torch.nn as nn

from minigpt2.attention import CausalSelfAttention
from minigpt2.layers import GELU, MLP, Block, LayerNorm, gelu
from minigpt2.model import GPTConfig

CONFIG = GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=3, n_embd=24)


def test_gelu_equals_torch_tanh_gelu():
    x = torch.linspace(-8, 8, 2001, dtype=torch.float64)
    torch.testing.assert_close(gelu(x), nn.GELU(approximate="tanh")(x), rtol=0, atol=1e-12)
    x32 = torch.randn(3, 5, 7)
    torch.testing.assert_close(GELU()(x32), nn.GELU(approximate="tanh")(x32))


def test_gelu_is_the_tanh_form_not_the_exact_erf_form():
    x = torch.linspace(-4, 4, 401, dtype=torch.float64)
    gap = (gelu(x) - nn.GELU()(x)).abs().max().item()
    assert 1e-5 < gap < 1e-3  # close to the exact GELU, but not it


def test_gelu_known_values():
    assert gelu(torch.tensor(0.0)).item() == 0.0
    assert gelu(torch.tensor(10.0)).item() == pytest.approx(10.0)
    assert gelu(torch.tensor(-10.0)).item() == pytest.approx(0.0, abs=1e-6)
    # the minimum of GELU is about -0.17 near x = -0.75
    assert gelu(torch.tensor(-0.75)).item() == pytest.approx(-0.1700, abs=1e-3)


@pytest.mark.parametrize("shape", [(2, 5, 24), (7, 24), (1, 1, 1, 24)])
def test_layernorm_equals_torch_layernorm(shape):
    torch.manual_seed(0)
    ours, ref = LayerNorm(24), nn.LayerNorm(24)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())
    x = 3 * torch.randn(shape) + 1.5
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_layernorm_without_bias_equals_torch():
    ours, ref = LayerNorm(10, bias=False), nn.LayerNorm(10, bias=False)
    assert ours.bias is None and [n for n, _ in ours.named_parameters()] == ["weight"]
    with torch.no_grad():
        ref.weight.uniform_(0.5, 2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 10)
    torch.testing.assert_close(ours(x), ref(x))


def test_layernorm_normalises_with_the_biased_variance():
    x = torch.randn(6, 32, dtype=torch.float64) * 5 + 2
    y = LayerNorm(32).double()(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(6, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(6, dtype=torch.float64), atol=1e-4, rtol=0)


def test_layernorm_gradients_equal_torch():
    ours, ref = LayerNorm(8), nn.LayerNorm(8)
    x = torch.randn(3, 8, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    (ours(x) ** 2).sum().backward()
    (ref(x_ref) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)


def test_mlp_is_four_times_wide_and_keeps_the_shape():
    mlp = MLP(CONFIG)
    assert mlp.c_fc.weight.shape == (4 * 24, 24)
    assert mlp.c_proj.weight.shape == (24, 4 * 24)
    assert sum(p.numel() for p in mlp.parameters()) == 8 * 24 * 24 + 4 * 24 + 24
    assert mlp(torch.randn(2, 5, 24)).shape == (2, 5, 24)


def test_mlp_computes_proj_of_gelu_of_fc_position_by_position():
    mlp = MLP(CONFIG).eval()
    x = torch.randn(2, 5, 24)
    expected = mlp.c_proj(nn.GELU(approximate="tanh")(mlp.c_fc(x)))
    torch.testing.assert_close(mlp(x), expected)
    # changing one position leaves the others alone
    x2 = x.clone()
    x2[:, 3] += 1
    torch.testing.assert_close(mlp(x2)[:, :3], mlp(x)[:, :3])


def test_mlp_without_bias_has_no_bias():
    mlp = MLP(GPTConfig(n_layer=1, n_head=2, n_embd=8, bias=False))
    assert mlp.c_fc.bias is None and mlp.c_proj.bias is None


def test_block_uses_gpt2_names():
    block = Block(CONFIG)
    assert isinstance(block.attn, CausalSelfAttention)
    names = {n for n, _ in block.named_parameters()}
    assert {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "ln_2.weight", "mlp.c_fc.weight",
            "mlp.c_proj.bias"} <= names


def test_block_is_pre_layernorm_with_residuals():
    torch.manual_seed(1)
    block = Block(CONFIG).eval()
    with torch.no_grad():  # make the LayerNorms matter
        for ln in (block.ln_1, block.ln_2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_()
    x = torch.randn(2, 7, 24)
    h = x + block.attn(block.ln_1(x))
    expected = h + block.mlp(block.ln_2(h))
    torch.testing.assert_close(block(x), expected)
    post_ln = block.ln_1(x + block.attn(x))  # the original transformer's order, which GPT-2 dropped
    assert not torch.allclose(block(x), block.ln_2(post_ln + block.mlp(post_ln)), atol=1e-3)


def test_block_returns_attention_weights_on_request():
    block = Block(CONFIG).eval()
    x = torch.randn(2, 6, 24)
    y, weights = block(x, need_weights=True)
    torch.testing.assert_close(y, block(x), rtol=1e-5, atol=1e-5)
    assert weights.shape == (2, CONFIG.n_head, 6, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, CONFIG.n_head, 6))
    assert torch.all(weights.triu(diagonal=1) == 0), "a position attended to the future"


def test_block_is_causal():
    block = Block(CONFIG).eval()
    x = torch.randn(1, 8, 24)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 24)
    torch.testing.assert_close(block(x2)[:, :5], block(x)[:, :5])


def test_gelu_derivative_dips_below_zero_for_negative_inputs():
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    gelu(x).sum().backward()
    slope_at_minus_one, slope_at_zero, slope_at_one = x.grad.tolist()
    assert slope_at_minus_one == pytest.approx(-0.083, abs=2e-3)  # ReLU's slope there is 0
    assert slope_at_zero == pytest.approx(0.5)
    assert slope_at_one == pytest.approx(1.083, abs=2e-3)  # above 1: GELU overshoots, then settles to 1
