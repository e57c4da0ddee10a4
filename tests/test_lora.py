"""minigpt2.lora against peft's LoRA on transformers' GPT2LMHeadModel: same A and B, same logits."""

import pytest
import torch
import torch.nn as nn

from minigpt2 import GPT, GPTConfig
from minigpt2.lora import LoRALinear, adam_state_bytes, apply_lora, lora_layers, merge_lora, trainable_parameters

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

CONFIG = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=24, vocab_size=101)


def small_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(CONFIG).eval()


def hf_copy(model, tmp_path):
    model.save_pretrained(tmp_path / "hf")
    return transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()


def peft_model(hf, r, alpha, targets):
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0,
                             fan_in_fan_out=True, bias="none")
    return peft.get_peft_model(hf, config).eval()


def randomise_b(model, seed=1):
    """Give every B random values (at the start they are zero, which would hide a wrong update)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(0.1 * torch.randn(layer.lora_B.shape, generator=g))


def copy_ab_into_peft(ours, theirs):
    """Put our A and B into peft's layers of the same name."""
    peft_params = dict(theirs.named_parameters())
    for name, layer in lora_layers(ours).items():
        prefix = f"base_model.model.{name}"
        with torch.no_grad():
            peft_params[f"{prefix}.lora_A.default.weight"].copy_(layer.lora_A)  # (r, in), as ours
            peft_params[f"{prefix}.lora_B.default.weight"].copy_(layer.lora_B)  # (out, r)
    return len(lora_layers(ours))


@pytest.mark.parametrize("r, alpha, targets", [(4, 8, ["c_attn"]), (2, 5, ["c_attn", "c_proj", "c_fc"]),
                                               (8, 8, ["mlp.c_proj"])])
def test_same_a_and_b_give_peft_logits(tmp_path, r, alpha, targets):
    model = small_gpt()
    hf = hf_copy(model, tmp_path)
    apply_lora(model, r=r, alpha=alpha, targets=targets)
    randomise_b(model)
    theirs = peft_model(hf, r, alpha, targets)
    assert copy_ab_into_peft(model, theirs) > 0
    idx = torch.randint(0, CONFIG.vocab_size, (3, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, _ = model(idx)
        ref = theirs(input_ids=idx).logits
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    trainable_peft, _ = theirs.get_nb_trainable_parameters()
    assert trainable_parameters(model) == trainable_peft


def test_trainable_count_is_r_times_in_plus_out():
    model = apply_lora(small_gpt(), r=4, alpha=8, targets=["c_attn"])
    C = CONFIG.n_embd
    assert trainable_parameters(model) == CONFIG.n_layer * 4 * (C + 3 * C)
    assert adam_state_bytes(model) == 2 * 4 * trainable_parameters(model)  # float32 moments
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_fresh_lora_changes_nothing_and_merge_equals_unmerged():
    model = small_gpt()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 11), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before, _ = model(idx)
        apply_lora(model, r=4, alpha=16, targets=["c_attn", "c_fc"])
        fresh, _ = model(idx)
        randomise_b(model)
        unmerged, _ = model(idx)
        merge_lora(model)
        merged, _ = model(idx)
    torch.testing.assert_close(fresh, before, atol=0, rtol=0)  # B = 0: exactly the pre-trained model
    assert not torch.allclose(unmerged, before)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not lora_layers(model)
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n.endswith(("c_attn", "c_fc")))


def test_gradients_reach_only_a_and_b():
    model = apply_lora(small_gpt(), r=2, alpha=4, targets=["c_attn"])
    randomise_b(model)
    idx = torch.randint(0, CONFIG.vocab_size, (2, 9))
    _, loss = model(idx, idx)
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n in dict(model.named_parameters()) if "lora_" in n}


def test_scaling_and_dropout():
    layer = LoRALinear(nn.Linear(6, 5), r=3, alpha=12, dropout=0.5)
    assert layer.scaling == 4.0
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6)
    layer.eval()
    expected = layer.base(x) + 4.0 * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    layer.train()
    assert not torch.allclose(layer(x), expected)  # dropout acts on the update's input in training


@pytest.mark.parametrize("r", [0, -2, 1.5, True])
def test_bad_rank_is_a_clear_error(r):
    with pytest.raises(ValueError, match="rank r should be a positive integer"):
        apply_lora(small_gpt(), r=r, alpha=8, targets=["c_attn"])


def test_unknown_target_names_the_layers_there_are():
    with pytest.raises(ValueError, match=r"no layer of the model is named 'q_proj'.*c_attn"):
        apply_lora(small_gpt(), r=4, alpha=8, targets=["q_proj"])
    with pytest.raises(ValueError, match="wraps nn.Linear layers, but 'transformer.ln_f' is a LayerNorm"):
        apply_lora(small_gpt(), r=4, alpha=8, targets=["ln_f"])


def test_merging_twice_and_wrapping_twice_are_errors():
    model = apply_lora(small_gpt(), r=4, alpha=8, targets=["c_attn"])
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model, r=4, alpha=8, targets=["c_fc"])
    merge_lora(model)
    with pytest.raises(ValueError, match="merged already"):
        merge_lora(model)
