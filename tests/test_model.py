"""minigpt2.model: the config, the GPT's shape, initialisation, loss, errors and generation.
Equality with Hugging Face's GPT-2 is in test_hf_equivalence.py."""

import math

import pytest
import torch

import minigpt2
from minigpt2.model import GPT, PRESETS, GPTConfig

TINY = GPTConfig(block_size=16, vocab_size=61, n_layer=3, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def gpt2_small():
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("gpt2")).eval()


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return GPT(TINY).eval()


# --------------------------------------------------------------------------- config


def test_top_level_names():
    assert minigpt2.GPT is GPT and minigpt2.GPTConfig is GPTConfig


def test_default_config_is_gpt2_small_with_nanogpt_names():
    c = GPTConfig()
    assert (c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd, c.dropout, c.bias) == (1024, 50257, 12, 12, 768,
                                                                                              0.0, True)
    assert c.head_dim == 64


@pytest.mark.parametrize(
    "name, shape",
    [("gpt2", (12, 12, 768)), ("gpt2-medium", (24, 16, 1024)), ("gpt2-large", (36, 20, 1280)),
     ("gpt2-xl", (48, 25, 1600))],
)
def test_gpt2_presets(name, shape):
    c = GPTConfig.from_preset(name)
    assert (c.n_layer, c.n_head, c.n_embd) == shape
    assert (c.block_size, c.vocab_size) == (1024, 50257)


def test_presets_accept_overrides_and_reject_unknowns():
    assert GPTConfig.from_preset("nano", dropout=0.1).dropout == 0.1
    assert {"nano", "micro", "mini"} <= set(PRESETS)
    with pytest.raises(ValueError, match="unknown preset 'gpt3'.*gpt2-medium"):
        GPTConfig.from_preset("gpt3")
    with pytest.raises(TypeError, match="no field"):
        GPTConfig.from_preset("nano", n_heads=4)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_embd=100, n_head=12), ValueError, "divisible by n_head"),
        (dict(n_layer=0), ValueError, "n_layer should be positive"),
        (dict(vocab_size=-5), ValueError, "vocab_size should be positive"),
        (dict(block_size=10.5), TypeError, "block_size should be an int"),
        (dict(dropout=1.0), ValueError, "dropout should be a probability"),
        (dict(bias="yes"), TypeError, "bias should be True or False"),
        (dict(mlp=0), TypeError, "mlp should be True or False"),
    ],
)
def test_invalid_configs_raise_clearly(kwargs, error, message):
    with pytest.raises(error, match=message):
        GPTConfig(**kwargs)


# --------------------------------------------------------------------------- structure and init


def test_gpt2_small_has_124_439_808_parameters(gpt2_small):
    assert gpt2_small.num_params() == 124_439_808


def test_parameter_count_by_formula(tiny):
    C, V, T, L = TINY.n_embd, TINY.vocab_size, TINY.block_size, TINY.n_layer
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert tiny.num_params() == V * C + T * C + L * per_block + 2 * C


def test_lm_head_is_tied_to_the_token_embedding(tiny):
    assert tiny.lm_head.weight is tiny.transformer.wte.weight
    with torch.no_grad():
        tiny.transformer.wte.weight[3, 0] = 42.0
    assert tiny.lm_head.weight[3, 0] == 42.0


def test_gpt2_initialisation(gpt2_small):
    sd = dict(gpt2_small.named_parameters())
    assert sd["transformer.wte.weight"].std().item() == pytest.approx(0.02, rel=0.01)
    assert sd["transformer.wpe.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert sd["transformer.h.0.attn.c_attn.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    residual_std = 0.02 / math.sqrt(2 * 12)
    for name in ("transformer.h.0.attn.c_proj.weight", "transformer.h.11.mlp.c_proj.weight"):
        assert sd[name].std().item() == pytest.approx(residual_std, rel=0.02), name
    assert torch.all(sd["transformer.h.3.mlp.c_fc.bias"] == 0)
    assert torch.all(sd["transformer.h.3.ln_1.weight"] == 1) and torch.all(sd["transformer.ln_f.bias"] == 0)


def test_loss_at_initialisation_is_about_ln_vocab(gpt2_small):
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 50257, (1, 64), generator=g)
    targets = torch.randint(0, 50257, (1, 64), generator=g)
    with torch.no_grad():
        logits, loss = gpt2_small(idx, targets)
    assert logits.shape == (1, 64, 50257)
    # ln 50257 = 10.82, plus about var(logits) / 2 = 0.15 for logits of std ~0.55 at init
    assert loss.item() == pytest.approx(math.log(50257), abs=0.3)


# --------------------------------------------------------------------------- forward


def test_forward_shapes_and_loss(tiny):
    idx = torch.randint(0, 61, (3, 10))
    logits, loss = tiny(idx)
    assert logits.shape == (3, 10, 61) and loss is None
    targets = torch.randint(0, 61, (3, 10))
    logits, loss = tiny(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 61), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_targets_of_minus_one_are_ignored(tiny):
    idx = torch.randint(0, 61, (2, 8))
    targets = torch.randint(0, 61, (2, 8))
    masked = targets.clone()
    masked[:, 4:] = -1
    logits, loss = tiny(idx, masked)
    expected = torch.nn.functional.cross_entropy(logits[:, :4].reshape(-1, 61), targets[:, :4].reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_the_model_is_causal(tiny):
    idx = torch.randint(0, 61, (1, 12))
    changed = idx.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 61
    torch.testing.assert_close(tiny(changed)[0][:, :7], tiny(idx)[0][:, :7])


def test_a_sequence_longer_than_the_context_raises_clearly(tiny):
    tiny(torch.zeros(1, 16, dtype=torch.long))  # exactly block_size is fine
    with pytest.raises(ValueError,
                       match=r"17 tokens is longer than the model's context, block_size=16.*idx\[:, -16:\]"):
        tiny(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("bad", [torch.zeros(5, dtype=torch.long), torch.zeros(1, 5), [[1, 2, 3]]])
def test_bad_token_ids_raise_clearly(tiny, bad):
    with pytest.raises(ValueError, match=r"\(B, T\) integer tensor"):
        tiny(bad)


def test_targets_of_the_wrong_shape_raise(tiny):
    with pytest.raises(ValueError, match="targets should have the shape of idx"):
        tiny(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))


def test_gpt_needs_a_gpt_config():
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(n_layer=2))


def test_gradients_reach_every_parameter(tiny):
    tiny.train()
    idx = torch.randint(0, 61, (2, 8))
    _, loss = tiny(idx, idx)
    loss.backward()
    for name, p in tiny.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_attention_weights_for_every_layer(tiny):
    idx = torch.randint(0, 61, (2, 9))
    weights = tiny.attention_weights(idx)
    assert len(weights) == TINY.n_layer
    for w in weights:
        assert w.shape == (2, TINY.n_head, 9, 9)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, TINY.n_head, 9))
        assert torch.all(w.triu(diagonal=1) == 0)
    # layer 0's weights are those of its attention on the normalised embeddings
    x = tiny.transformer.wte(idx) + tiny.transformer.wpe(torch.arange(9))
    _, expected = tiny.transformer.h[0].attn(tiny.transformer.h[0].ln_1(x), need_weights=True)
    torch.testing.assert_close(weights[0], expected)


def test_an_attention_only_model_is_the_full_one_with_silent_mlps():
    # mlp=False drops each block's MLP and its LayerNorm: the same network as one whose MLPs output zero.
    torch.manual_seed(0)
    full = GPT(TINY).eval()
    attention_only = GPT(GPTConfig(**{**TINY.to_dict(), "mlp": False})).eval()
    dropped = {name for name in full.state_dict() if ".mlp." in name or ".ln_2." in name}
    assert set(full.state_dict()) - set(attention_only.state_dict()) == dropped
    assert all(block.mlp is None and block.ln_2 is None for block in attention_only.transformer.h)
    assert attention_only.num_params() == full.num_params() - sum(full.state_dict()[n].numel() for n in dropped)
    with torch.no_grad():
        for block in full.transformer.h:  # silence the MLPs: their output projection writes zeros
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
    attention_only.load_state_dict({n: t for n, t in full.state_dict().items() if n not in dropped})
    idx = torch.randint(0, TINY.vocab_size, (2, 12))
    torch.testing.assert_close(attention_only(idx)[0], full(idx)[0])
    for ours, theirs in zip(attention_only.attention_weights(idx), full.attention_weights(idx)):
        torch.testing.assert_close(ours, theirs)


def test_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=1, n_embd=8, dropout=0.5))
    idx = torch.randint(0, 20, (1, 8))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


# --------------------------------------------------------------------------- generate


def greedy_by_hand(model, idx, n):
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def test_greedy_generation_takes_the_argmax(tiny):
    idx = torch.randint(0, 61, (2, 4))
    out = tiny.generate(idx, 6, temperature=0)
    assert out.shape == (2, 10) and torch.equal(out[:, :4], idx)
    assert torch.equal(out, greedy_by_hand(tiny, idx, 6))


def test_generation_runs_past_the_context_by_cropping(tiny):
    idx = torch.randint(0, 61, (1, 14))
    out = tiny.generate(idx, 10, temperature=0)
    assert out.shape == (1, 24)
    assert torch.equal(out, greedy_by_hand(tiny, idx, 10))


def test_top_k_one_and_tiny_top_p_are_greedy(tiny):
    idx = torch.randint(0, 61, (3, 3))
    greedy = tiny.generate(idx, 5, temperature=0)
    torch.manual_seed(0)
    assert torch.equal(tiny.generate(idx, 5, temperature=1.0, top_k=1), greedy)
    assert torch.equal(tiny.generate(idx, 5, temperature=1.0, top_p=1e-6), greedy)


def test_sampling_is_seeded_and_respects_top_k():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=30, n_layer=1, n_head=1, n_embd=8)).eval()
    with torch.no_grad():  # a spread-out next-token distribution
        model.transformer.wte.weight.normal_(0, 0.5)
    idx = torch.zeros(300, 1, dtype=torch.long)
    torch.manual_seed(1)
    a = model.generate(idx, 1, temperature=1.0)
    torch.manual_seed(1)
    assert torch.equal(a, model.generate(idx, 1, temperature=1.0))
    assert a[:, 1].unique().numel() > 3  # sampling, not argmax
    logits = model(idx[:1])[0][0, -1]
    top3 = set(torch.topk(logits, 3).indices.tolist())
    sampled = set(model.generate(idx, 1, temperature=1.0, top_k=3)[:, 1].tolist())
    assert sampled == top3  # all three, and nothing else


def test_top_p_keeps_the_smallest_set_reaching_p():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=30, n_layer=1, n_head=1, n_embd=8)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0, 0.5)
    idx = torch.zeros(300, 1, dtype=torch.long)
    torch.manual_seed(2)
    probs = model(idx[:1])[0][0, -1].softmax(-1)
    order = probs.argsort(descending=True)
    nucleus_size = int((probs[order].cumsum(0) < 0.7).sum()) + 1  # the first tokens whose mass reaches 0.7
    allowed = set(order[:nucleus_size].tolist())
    sampled = set(model.generate(idx, 1, temperature=1.0, top_p=0.7)[:, 1].tolist())
    assert nucleus_size == 3 and sampled == allowed


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5),
                                                                                                     "top_p")],
)
def test_generate_rejects_bad_settings(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny.generate(torch.zeros(1, 1, dtype=torch.long), 2, **kwargs)
