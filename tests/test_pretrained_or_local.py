"""Which model the lessons run: GPT-2's real weights where they can be had, else a local one.

No test touches the network: the Hugging Face cache is a temporary folder of our own,
and a download is a function that records being called.
"""

import pytest
import torch

import minigpt2.hf as hf
from minigpt2 import GPT, GPTConfig
from minigpt2.utils import cached_checkpoint, pretrained_or_local

TINY = GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0)


def local():
    return "the local model"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; downloads fail loudly if anything asks for one."""
    monkeypatch.delenv("MINIGPT2_LOCAL_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    calls = []

    def refused(name):
        calls.append(name)
        raise hf.CheckpointError("could not download 'gpt2' from the Hugging Face hub (ConnectionError: refused)")

    monkeypatch.setattr(hf, "download", refused)
    return tmp_path / "hub", calls


def put_in_cache(cache, model):
    """Lay ``model`` out as huggingface_hub's cache does: models--org--name/snapshots/<rev>/."""
    repo = cache / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / ("0" * 40)
    model.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_weights_in_the_cache_are_used_even_offline(hub_cache, monkeypatch):
    cache, calls = hub_cache
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    torch.manual_seed(0)
    saved = GPT(TINY)
    snapshot = put_in_cache(cache, saved)
    assert cached_checkpoint("gpt2") == snapshot
    monkeypatch.setenv("MINIGPT2_LOCAL_MODELS", "0")
    lines = []
    choice = pretrained_or_local(local, say=lines.append)
    assert choice.pretrained and isinstance(choice.model,
                                            GPT) and not choice.model.training and choice.directory == snapshot
    idx = torch.randint(0, 64, (1, 8))
    torch.testing.assert_close(choice.model(idx)[0], saved.eval()(idx)[0], rtol=0, atol=0)
    assert calls == [] and lines == [choice.reason] and "real weights" in lines[0] and "cache" in lines[0]


def test_offline_without_the_cache_takes_the_local_model_and_never_downloads(hub_cache, monkeypatch):
    _, calls = hub_cache
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    lines = []
    choice = pretrained_or_local(local, say=lines.append)
    assert choice.model == "the local model" and not choice.pretrained
    assert calls == []
    assert "MINIGPT2_OFFLINE=1" in lines[0] and "local model" in lines[0]


def test_a_refused_download_falls_back_and_says_why(hub_cache, monkeypatch):
    _, calls = hub_cache
    monkeypatch.delenv("MINIGPT2_OFFLINE")
    choice = pretrained_or_local(local, say=None)
    assert calls == ["gpt2"] and choice.model == "the local model" and not choice.pretrained
    assert "ConnectionError: refused" in choice.reason and "local model" in choice.reason


def test_a_download_that_works_is_loaded(hub_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("MINIGPT2_OFFLINE")
    torch.manual_seed(1)
    GPT(TINY).save_pretrained(tmp_path / "downloaded")
    monkeypatch.setattr(hf, "download", lambda name: tmp_path / "downloaded")
    choice = pretrained_or_local(local, say=None)
    assert choice.pretrained and choice.model.config.n_embd == 16 and "downloaded" in choice.reason


def test_half_a_checkpoint_in_the_cache_is_not_used(hub_cache, monkeypatch):
    cache, _ = hub_cache
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    snapshot = put_in_cache(cache, GPT(TINY))
    (snapshot / hf.WEIGHTS_FILE).unlink()  # an interrupted download: config.json alone
    assert cached_checkpoint("gpt2") is None
    assert not pretrained_or_local(local, say=None).pretrained


def test_the_local_models_flag_wins_over_the_cache(hub_cache, monkeypatch):
    cache, calls = hub_cache
    put_in_cache(cache, GPT(TINY))
    monkeypatch.setenv("MINIGPT2_LOCAL_MODELS", "1")
    choice = pretrained_or_local(local, say=None)
    assert choice.model == "the local model" and calls == [] and "MINIGPT2_LOCAL_MODELS=1" in choice.reason


def test_a_directory_is_loaded_whatever_the_flags(hub_cache, tmp_path, monkeypatch):
    _, calls = hub_cache
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    monkeypatch.setenv("MINIGPT2_LOCAL_MODELS", "1")
    torch.manual_seed(2)
    saved = GPT(TINY)
    saved.save_pretrained(tmp_path / "mine")
    choice = pretrained_or_local(local, tmp_path / "mine", say=None, local_because="quick mode")
    idx = torch.randint(0, 64, (1, 8))
    assert choice.pretrained and choice.directory == tmp_path / "mine" and str(tmp_path / "mine") in choice.reason
    torch.testing.assert_close(choice.model(idx)[0], saved.eval()(idx)[0], rtol=0, atol=0)
    assert calls == []


def test_a_reason_for_the_local_model_wins_over_the_cache(hub_cache, monkeypatch):
    cache, calls = hub_cache
    monkeypatch.setenv("MINIGPT2_LOCAL_MODELS", "0")
    put_in_cache(cache, GPT(TINY))
    choice = pretrained_or_local(local, say=None, local_because="quick mode")
    assert choice.model == "the local model" and not choice.pretrained and calls == []
    assert choice.reason.startswith("quick mode: using the small local model")


def test_a_name_that_is_neither_a_directory_nor_a_hub_name_is_an_error(hub_cache):
    with pytest.raises(hf.CheckpointError, match="neither a directory nor a GPT-2 hub name"):
        pretrained_or_local(local, "gpt5", say=None)


def test_without_a_local_model_the_cache_is_used_and_nothing_else_is_an_error(hub_cache, monkeypatch):
    """``minigpt2 finetune``'s case: GPT-2's weights or a directory, never a stand-in, whatever the flag says."""
    cache, calls = hub_cache
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    monkeypatch.setenv("MINIGPT2_LOCAL_MODELS", "1")
    with pytest.raises(hf.CheckpointError, match="downloads are off") as raised:
        pretrained_or_local(None, say=None)
    assert "local model" not in str(raised.value)
    monkeypatch.delenv("MINIGPT2_OFFLINE")
    with pytest.raises(hf.CheckpointError, match="ConnectionError: refused"):
        pretrained_or_local(None, say=None)
    assert calls == ["gpt2"]
    snapshot = put_in_cache(cache, GPT(TINY))
    choice = pretrained_or_local(None, say=None)
    assert choice.pretrained and choice.directory == snapshot and calls == ["gpt2"]
