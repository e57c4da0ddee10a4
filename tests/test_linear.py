"""minigpt2.linear: the (in, out) copy gives nn.Linear's result, exists only inside decoding_layout,
and only for the wide layers on the CPU."""

import pytest
import torch
import torch.nn.functional as F

from minigpt2.linear import Linear, decoding_layout
from minigpt2.model import GPT, GPTConfig


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 16), (3, 5, 16), (7, 16)])
def test_the_row_layout_gives_the_linear_result(bias, shape):
    torch.manual_seed(0)
    layer = Linear(16, 40, bias=bias)
    x = torch.randn(shape)
    expected = F.linear(x, layer.weight, layer.bias)
    with decoding_layout(layer):
        assert layer.row_weight is not None and layer.row_weight.shape == (16, 40)
        assert layer.row_weight.is_contiguous()
        torch.testing.assert_close(layer(x), expected)
    assert layer.row_weight is None


def test_only_wide_layers_get_a_copy_and_all_lose_it_after():
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=16))
    linears = {name: m for name, m in model.named_modules() if isinstance(m, Linear)}
    with decoding_layout(model):
        copied = {name for name, m in linears.items() if m.row_weight is not None}
    assert copied == {name for name, m in linears.items() if m.out_features > m.in_features}
    assert {"lm_head", "transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_fc"} <= copied
    assert "transformer.h.0.attn.c_proj" not in copied and "transformer.h.0.mlp.c_proj" not in copied
    assert all(m.row_weight is None for m in linears.values())
    assert not any("row_weight" in key for key in model.state_dict())


def test_the_copies_are_dropped_even_when_the_block_raises():
    layer = Linear(4, 8)
    with pytest.raises(RuntimeError), decoding_layout(layer):
        raise RuntimeError("a learner's mistake")
    assert layer.row_weight is None


def test_generation_leaves_no_copy_behind():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=16)).eval()
    model.generate(torch.zeros(1, 3, dtype=torch.long), max_new_tokens=4)
    assert model.lm_head.row_weight is None
