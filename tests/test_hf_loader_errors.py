"""The Hugging Face loader refuses broken directories with a CheckpointError that names the file at
fault, never a traceback from json, safetensors or GPTConfig; and the package has one CheckpointError."""

import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from minigpt2.hf import CheckpointError
from minigpt2.model import GPT, GPTConfig

TINY_HF = {"model_type": "gpt2", "n_positions": 8, "vocab_size": 10, "n_layer": 1, "n_head": 2, "n_embd": 4}


@pytest.fixture
def good_dir(tmp_path):
    GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=2, n_embd=4)).save_pretrained(tmp_path)
    return tmp_path


def refused(directory, *words):
    with pytest.raises(CheckpointError) as err:
        GPT.from_pretrained(directory)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("text, words", [
    ("{not json", ["is not valid JSON", "line 1"]),
    ("[1, 2, 3]", ["holds a JSON list, not an object"]),
    ("\"gpt2\"", ["holds a JSON str, not an object"]),
    (b"\xff\xfe\x00garbage", ["is not text"]),
])
def test_a_config_that_is_not_a_json_object_names_the_file(good_dir, text, words):
    path = good_dir / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(good_dir, str(path), *words)


@pytest.mark.parametrize("change, words", [
    ({"n_embd": "4"}, ["n_embd='4'", "positive whole number"]),
    ({"n_layer": 1.5}, ["n_layer=1.5"]),
    ({"n_head": True}, ["n_head=True"]),
    ({"vocab_size": -3}, ["vocab_size=-3"]),
    ({"n_positions": None}, ["n_positions=None"]),
])
def test_sizes_of_the_wrong_type_name_the_file_and_the_field(good_dir, change, words):
    path = good_dir / "config.json"
    path.write_text(json.dumps({**TINY_HF, **change}))
    refused(good_dir, str(path), *words)


def test_heads_that_do_not_divide_the_width_get_no_advice_meant_for_a_new_model(good_dir):
    path = good_dir / "config.json"
    path.write_text(json.dumps({**TINY_HF, "n_embd": 30, "n_head": 4}))
    message = refused(good_dir, str(path), "n_embd=30 and n_head=4", "damaged or was not written for GPT-2")
    assert "Try" not in message


def test_weights_that_are_not_safetensors_name_the_file(good_dir):
    (good_dir / "model.safetensors").write_bytes(b"PK\x03\x04 a zip, say" * 10)
    refused(good_dir, str(good_dir / "model.safetensors"), "not a readable safetensors file")
    (good_dir / "model.safetensors").write_bytes(b"")
    refused(good_dir, str(good_dir / "model.safetensors"))


def test_a_missing_or_broken_shard_names_it(good_dir):
    weights = good_dir / "model.safetensors"
    tensors = load_file(weights)
    weights.unlink()
    names = sorted(tensors)
    half = len(names) // 2
    save_file({k: tensors[k] for k in names[:half]}, str(good_dir / "model-00001-of-00002.safetensors"))
    save_file({k: tensors[k] for k in names[half:]}, str(good_dir / "model-00002-of-00002.safetensors"))
    index = good_dir / "model.safetensors.index.json"
    weight_map = {k: f"model-0000{1 if i < half else 2}-of-00002.safetensors" for i, k in enumerate(names)}
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert isinstance(GPT.from_pretrained(good_dir), GPT)  # the shards load

    (good_dir / "model-00002-of-00002.safetensors").unlink()
    refused(good_dir, str(index), "model-00002-of-00002.safetensors", "not in")
    index.write_text("{")
    refused(good_dir, str(index), "is not valid JSON")
    index.write_text(json.dumps({"weight_map": ["a", "b"]}))
    refused(good_dir, str(index), "no 'weight_map'")


def test_the_package_has_one_checkpoint_error():
    import minigpt2.hf
    import minigpt2.train
    import minigpt2.train.checkpoint

    assert minigpt2.hf.CheckpointError is minigpt2.train.CheckpointError is minigpt2.train.checkpoint.CheckpointError
    assert issubclass(CheckpointError, ValueError)
    package = Path(minigpt2.hf.__file__).parent
    defined = [p for p in package.rglob("*.py") if re.search(r"^class CheckpointError\b", p.read_text(), re.M)]
    assert [p.name for p in defined] == ["checkpoint.py"]


def test_a_training_checkpoint_is_not_taken_for_a_hugging_face_directory(tmp_path):
    from minigpt2.train.checkpoint import load_checkpoint

    GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=2, n_embd=4)).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="not a minigpt2 checkpoint"):
        load_checkpoint(tmp_path / "model.safetensors")
