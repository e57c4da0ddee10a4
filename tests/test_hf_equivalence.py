"""The same weights in minigpt2's GPT and in Hugging Face's GPT2LMHeadModel give the same
logits and the same greedy tokens; the Hugging Face format round-trips both ways.
Everything is built from local configs: no network."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel

from minigpt2.hf import CheckpointError, from_hf_state_dict, load_state_dict_into
from minigpt2.model import GPT, GPTConfig

TINY = GPTConfig(block_size=32, vocab_size=101, n_layer=2, n_head=2, n_embd=32)
ODD = GPTConfig(block_size=40, vocab_size=97, n_layer=5, n_head=3, n_embd=48)
ATOL = 1e-4


def scramble(model: torch.nn.Module, seed: int) -> None:
    """Weights far from the init (LayerNorm gains and biases too), so that every tensor
    matters and greedy continuations vary instead of repeating one token."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1:
                p.copy_(1 + 0.2 * noise if "ln" in name and name.endswith("weight") else 0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(min(p.shape)))


def hf_from_dir(directory) -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(directory, attn_implementation="eager").eval()


def hf_greedy(hf: GPT2LMHeadModel, idx: torch.Tensor, n: int) -> torch.Tensor:
    return hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
    )


def assert_same_model(ours: GPT, hf: GPT2LMHeadModel, seed: int = 0, B: int = 2, T: int = 24) -> None:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, ours.config.vocab_size, (B, T), generator=g)
    with torch.no_grad():
        logits, _ = ours(idx)
        expected = hf(idx).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=ATOL)
    prompt = idx[:, :4]
    ours_tokens = ours.generate(prompt, 20, temperature=0)
    assert torch.equal(ours_tokens, hf_greedy(hf, prompt, 20))
    assert ours_tokens[:, 4:].unique().numel() > 1, "the continuation should not be one repeated token"


@pytest.fixture(params=[TINY, ODD], ids=["tiny", "odd-3-heads-5-layers"])
def saved(request, tmp_path):
    torch.manual_seed(0)
    model = GPT(request.param).eval()
    scramble(model, seed=1)
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_saved_gpt_loads_in_transformers_with_equal_logits_and_greedy_tokens(saved):
    model, directory = saved
    assert_same_model(model, hf_from_dir(directory))


def test_sdpa_attention_in_transformers_agrees_too(saved):
    model, directory = saved
    hf = GPT2LMHeadModel.from_pretrained(directory, attn_implementation="sdpa").eval()
    idx = torch.randint(0, model.config.vocab_size, (3, 17))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, rtol=0, atol=ATOL)


def test_round_trip_gpt_to_hf_and_back(saved, tmp_path_factory):
    model, directory = saved
    hf = hf_from_dir(directory)
    back_dir = tmp_path_factory.mktemp("from_transformers")
    hf.save_pretrained(back_dir)  # transformers writes its own files
    back = GPT.from_pretrained(back_dir).eval()
    assert back.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    assert back.lm_head.weight is back.transformer.wte.weight
    assert_same_model(back, hf, seed=3)


def test_checkpoint_written_by_transformers_loads_with_equal_logits(tmp_path):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=3, n_head=4, n_embd=64, vocab_size=113, n_positions=48)).eval()
    scramble(hf, seed=2)
    hf.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")), "transformers should have written safetensors"
    ours = GPT.from_pretrained(tmp_path).eval()
    assert ours.config == GPTConfig(block_size=48, vocab_size=113, n_layer=3, n_head=4, n_embd=64)
    assert_same_model(ours, hf)


def test_saved_files_follow_the_huggingface_layout(saved):
    model, directory = saved
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert (config["n_positions"], config["n_layer"], config["n_head"], config["n_embd"]) == (
        model.config.block_size, model.config.n_layer, model.config.n_head, model.config.n_embd,
    )
    assert config["eos_token_id"] is None  # not GPT-2's vocabulary, so no <|endoftext|> id
    tensors = load_file(directory / "model.safetensors")
    assert "lm_head.weight" not in tensors  # tied, as transformers saves it
    C = model.config.n_embd
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (C, 3 * C)  # Conv1D: (in, out)
    assert tensors["transformer.h.0.mlp.c_proj.weight"].shape == (4 * C, C)
    torch.testing.assert_close(tensors["transformer.h.0.mlp.c_fc.weight"], model.transformer.h[0].mlp.c_fc.weight.t(),
                               rtol=0, atol=0)
    assert not list(directory.glob("*.bin")) and not list(directory.glob("*.pt"))


def test_original_openai_layout_loads(saved, tmp_path_factory):
    """The hub's gpt2 model.safetensors has no "transformer." prefix and keeps the causal-mask buffers."""
    model, directory = saved
    tensors = load_file(directory / "model.safetensors")
    old = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    T = model.config.block_size
    for i in range(model.config.n_layer):
        old[f"h.{i}.attn.bias"] = torch.ones(T, T).tril().view(1, 1, T, T)
    old_dir = tmp_path_factory.mktemp("openai_layout")
    save_file(old, old_dir / "model.safetensors", metadata={"format": "pt"})
    (old_dir / "config.json").write_text((directory / "config.json").read_text())
    loaded = GPT.from_pretrained(old_dir)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_conversion_transposes_exactly_the_conv1d_weights():
    hf = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=11, n_positions=5))
    converted = from_hf_state_dict(hf.state_dict())
    transposed = {k for k, v in hf.state_dict().items() if k in converted and not torch.equal(v, converted[k])}
    assert all(torch.equal(hf.state_dict()[k].t(), converted[k]) for k in transposed)
    assert transposed == {
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
    }


# --------------------------------------------------------------------------- GPT-2 small's shape


@pytest.fixture(scope="module")
def gpt2_small_pair(tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt2")).eval()
    scramble(model, seed=4)
    directory = tmp_path_factory.mktemp("gpt2_small")
    model.save_pretrained(directory)
    return model, hf_from_dir(directory)


def test_gpt2_small_shape_equals_transformers(gpt2_small_pair):
    model, hf = gpt2_small_pair
    assert model.num_params() == 124_439_808 == hf.num_parameters()
    assert_same_model(model, hf, B=1, T=12)  # small: 20 uncached steps of a 124M model on a CPU


def test_gpt2_small_shape_conversion_from_transformers_state_dict(gpt2_small_pair):
    model, hf = gpt2_small_pair
    fresh = load_state_dict_into(GPT(GPTConfig.from_preset("gpt2")), hf.state_dict()).eval()
    idx = torch.randint(0, 50257, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(fresh(idx)[0], hf(idx).logits, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------- errors


def test_hub_name_offline_raises_clearly(monkeypatch):
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"cannot download 'gpt2'.*MINIGPT2_OFFLINE=1.*local directory"):
        GPT.from_pretrained("gpt2")


def test_hub_name_without_network_raises_clearly(monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.delenv("MINIGPT2_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(CheckpointError, match=r"could not download 'gpt2-medium'.*ConnectionError.*local directory"):
        GPT.from_pretrained("gpt2-medium")


def test_hub_name_loads_what_the_hub_client_fetched(monkeypatch, saved):
    import huggingface_hub

    model, directory = saved
    asked = []

    def fake_download(repo_id, allow_patterns):
        asked.append((repo_id, sorted(allow_patterns)))
        return str(directory)

    monkeypatch.delenv("MINIGPT2_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    loaded = GPT.from_pretrained("gpt2")
    assert asked == [("openai-community/gpt2", ["config.json", "model.safetensors"])]
    assert loaded.config == model.config


def test_unknown_name_raises_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="neither a directory nor a GPT-2 hub name"):
        GPT.from_pretrained(tmp_path / "nowhere")


def test_directory_without_files_raises_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        GPT.from_pretrained(tmp_path)
    TINY_HF = {"model_type": "gpt2", "n_positions": 8, "vocab_size": 10, "n_layer": 1, "n_head": 1, "n_embd": 4}
    (tmp_path / "config.json").write_text(json.dumps(TINY_HF))
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="safetensors only"):
        GPT.from_pretrained(tmp_path)


def test_other_architectures_and_settings_are_refused(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    for change, message in [({"model_type": "llama"}, "'llama' model"), ({"activation_function": "relu"},
                                                                         "activation_function")]:
        (directory / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(CheckpointError, match=message):
            GPT.from_pretrained(directory)


def test_wrong_shapes_name_the_tensor(saved):
    model, directory = saved
    tensors = load_file(directory / "model.safetensors")
    tensors["transformer.h.1.mlp.c_fc.weight"] = tensors["transformer.h.1.mlp.c_fc.weight"].t().contiguous()
    with pytest.raises(CheckpointError, match=r"h\.1\.mlp\.c_fc\.weight has shape .*Conv1D weight not transposed"):
        load_state_dict_into(GPT(model.config), tensors)
    del tensors["transformer.h.1.mlp.c_fc.weight"]
    with pytest.raises(CheckpointError, match=r"missing: \['transformer.h.1.mlp.c_fc.weight'\]"):
        load_state_dict_into(GPT(model.config), tensors)


def test_untied_lm_head_is_refused(saved):
    model, directory = saved
    tensors = load_file(directory / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn_like(tensors["transformer.wte.weight"])
    with pytest.raises(CheckpointError, match="ties the two"):
        load_state_dict_into(GPT(model.config), tensors)


def test_an_attention_only_model_cannot_be_saved_in_gpt2_format(tmp_path):
    model = GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=1, n_embd=8, mlp=False))
    with pytest.raises(ValueError, match="MLP in every block"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_model_without_biases_cannot_be_saved_in_gpt2_format(tmp_path):
    model = GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=1, n_embd=8, bias=False))
    with pytest.raises(ValueError, match="always has biases"):
        model.save_pretrained(tmp_path)
