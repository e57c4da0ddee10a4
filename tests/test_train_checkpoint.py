"""minigpt2.train.checkpoint: everything round-trips, nothing is unpickled, writes are atomic."""

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap

import pytest
import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.train.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from minigpt2.train.optim import make_optimizer

CONFIG = GPTConfig(block_size=8, vocab_size=17, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
IDX = torch.randint(17, (4, 8), generator=torch.Generator().manual_seed(0))


def trained(steps=3, seed=0):
    torch.manual_seed(seed)
    model = GPT(CONFIG)
    opt = make_optimizer(model, lr=1e-2)
    for _ in range(steps):
        train_step(model, opt)
    return model, opt


def train_step(model, opt):
    _, loss = model(IDX, IDX)  # dropout draws from torch's generator
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


def test_round_trip_continues_exactly(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, step=3, optimizer=opt, meta={"note": "hi"})
    expected = [train_step(model, opt) for _ in range(3)]

    torch.manual_seed(123)  # a different generator state, which restore must replace
    fresh = GPT(CONFIG)
    fresh_opt = make_optimizer(fresh, lr=1e-2)
    ckpt = load_checkpoint(path)
    assert ckpt.step == 3 and ckpt.meta == {"note": "hi"}
    restore(ckpt, fresh, fresh_opt)
    assert fresh.lm_head.weight is fresh.transformer.wte.weight  # still tied
    assert [train_step(fresh, fresh_opt) for _ in range(3)] == expected
    for (name, a), b in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(a, b), name


def test_optimizer_hyperparameters_round_trip(tmp_path):
    model, opt = trained()
    opt.param_groups[0]["lr"] = 1.234e-4
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt)
    fresh = GPT(CONFIG)
    fresh_opt = make_optimizer(fresh, lr=1e-3)
    restore(load_checkpoint(path), fresh, fresh_opt)
    saved, loaded = opt.state_dict(), fresh_opt.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for index, state in saved["state"].items():
        for key, value in state.items():
            assert torch.equal(loaded["state"][index][key], value), (index, key)


def test_file_is_plain_safetensors_with_json_header(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt, meta={"a": [1, 2]})
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "minigpt2-checkpoint-1"
    assert json.loads(header["__metadata__"]["meta"]) == {"a": [1, 2]}
    assert "model.lm_head.weight" not in header  # stored once, under its tied name
    assert "model.transformer.wte.weight" in header and "rng.cpu" in header
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private 0o600


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt)

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load tried to unpickle")

    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    restore(load_checkpoint(path), GPT(CONFIG), make_optimizer(GPT(CONFIG), 1e-3))


def test_rng_state_is_restored(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt)
    expected = torch.rand(5)
    torch.manual_seed(999)
    restore(load_checkpoint(path), GPT(CONFIG), restore_rng=True)
    assert torch.equal(torch.rand(5), expected)


def test_wrong_model_shape_is_a_clear_error(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt)
    other = GPT(GPTConfig(block_size=8, vocab_size=17, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        restore(load_checkpoint(path), other)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_or_missing_file_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "c.safetensors"
    if damage != "missing":
        model, opt = trained()
        save_checkpoint(path, model, 3, opt)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_other_safetensors_file_is_not_taken_for_a_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="not a minigpt2 checkpoint"):
        load_checkpoint(tmp_path / "weights.safetensors")


def test_failed_write_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    import minigpt2.train.checkpoint as ck

    model, opt = trained()
    path = save_checkpoint(tmp_path / "c.safetensors", model, 3, opt)
    good = path.read_bytes()

    def crash_half_way(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, 4, opt)
    assert path.read_bytes() == good
    assert load_checkpoint(path).step == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temporary left behind


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import minigpt2.train.checkpoint as ck
    from minigpt2.model import GPT, GPTConfig

    path, where = sys.argv[1], sys.argv[2]
    model = GPT(GPTConfig(block_size=8, vocab_size=17, n_layer=2, n_head=2, n_embd=16))
    ck.save_checkpoint(path, model, step=1)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if where == "during-write":
        real_save = ck.save_file
        def half_then_die(tensors, filename, metadata=None):
            real_save(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            die()
        ck.save_file = half_then_die
    else:  # after the write, before the rename
        ck.os.replace = die
    ck.save_checkpoint(path, model, step=2)
    """
)


@pytest.mark.parametrize("where", ["during-write", "before-rename"])
def test_a_kill_mid_write_leaves_the_last_good_checkpoint(tmp_path, where):
    path = tmp_path / "ckpt.safetensors"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), where], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert load_checkpoint(path).step == 1  # the first checkpoint, whole
    leftovers = [p for p in tmp_path.iterdir() if p.name != path.name]
    assert leftovers, "the killed write should have left its temporary file"
    model = GPT(GPTConfig(block_size=8, vocab_size=17, n_layer=2, n_head=2, n_embd=16))
    save_checkpoint(path, model, step=3)  # the next save cleans up
    assert sorted(os.listdir(tmp_path)) == [path.name]
    assert load_checkpoint(path).step == 3
