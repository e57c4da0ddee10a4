"""Faults a training run must survive or refuse before it spends any work: an unusable or busy
out-dir, kills in the middle of a save, a diverging loss, damaged checkpoints, a device that is not there.
Each asserts the message, the exit status, the files left behind and, where it matters, the history."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from minigpt2.train import main, sample_main, train
from minigpt2.train.checkpoint import LOCK_NAME, OutDirError, load_checkpoint, save_checkpoint
from minigpt2.train.config import TrainConfig
from minigpt2.train.dataset import load_tokens
from minigpt2.train.loop import TrainingDiverged

SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4",
         "--warmup-iters", "1", "--eval-interval", "2", "--eval-iters", "1", "--log-interval", "1",
         "--device", "cpu", "--no-progress"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def one_line_error(capsys, code, expected_code=2):
    out, err = capsys.readouterr()
    assert code == expected_code, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0], out


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="module")
def data():
    return load_tokens("tinyshakespeare", "char", 0.1)


def tiny(out_dir, **overrides):
    settings = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, max_iters=6, warmup_iters=1,
                    eval_interval=2, eval_iters=1, log_interval=1, device="cpu", progress=False, out_dir=str(out_dir))
    return TrainConfig(**{**settings, **overrides})


# --------------------------------------------------------------------------- the out-dir, before any work


def read_only_folder(tmp_path):
    """A folder nobody may write in. Tests run as root, who ignores permission bits: there, /sys
    (a kernel file system that refuses new files even to root) stands in for a read-only folder."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not Path("/sys").is_dir():
        pytest.skip("running as root without /sys: no folder here refuses writes to root")
    return Path("/sys")


@pytest.mark.parametrize("where", ["a file", "under a file", "read-only", "read-only, new subfolder"])
def test_an_out_dir_that_cannot_be_written_is_refused_before_the_first_step(tmp_path, capsys, where):
    (tmp_path / "taken").write_text("not a folder")
    out_dir = {
        "a file": tmp_path / "taken",
        "under a file": tmp_path / "taken" / "run",
        "read-only": read_only_folder(tmp_path),
        "read-only, new subfolder": read_only_folder(tmp_path) / "minigpt2-run",
    }[where]
    line, out = one_line_error(capsys, main([*SMALL, "--max-iters", "2", "--out-dir", str(out_dir)]))
    assert line.startswith("minigpt2 train: error:") and "--out-dir" in line and str(out_dir) in line
    expected = {"a file": "is a file, not a folder", "under a file": "part of that path is a file",
                "read-only": "cannot write in the checkpoint folder",
                    "read-only, new subfolder": "cannot create"}[where]
    assert expected in line
    assert "val loss" not in out  # nothing was trained, not even the first evaluation
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_the_check_comes_before_the_data_is_even_loaded(tmp_path):
    (tmp_path / "taken").write_text("")
    seen = []
    with pytest.raises(OutDirError, match="is a file"):
        train(tiny(tmp_path / "taken"), data=None, callback=lambda *a: seen.append(a))
    assert seen == []


# --------------------------------------------------------------------------- one run per folder

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from minigpt2.train.checkpoint import out_dir_lock
    with out_dir_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
    """
)


def test_a_second_run_on_a_busy_folder_refuses_at_once_naming_the_holder(tmp_path, capsys):
    out_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out_dir)], stdout=subprocess.PIPE, text=True,
                              env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        line, out = one_line_error(capsys, main([*SMALL, "--max-iters", "2", "--out-dir", str(out_dir)]))
        assert time.perf_counter() - started < 60
        assert f"another run is using {out_dir}" in line and f"process {holder.pid}" in line and "--out-dir" in line
        assert "val loss" not in out
        with pytest.raises(OutDirError, match=f"process {holder.pid}"):
            # a bare save waits its turn too
            save_checkpoint(out_dir / "ckpt.safetensors", torch.nn.Linear(2, 2), step=1)
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming a dead process
        holder.wait()
    assert LOCK_NAME in files_in(out_dir) and str(holder.pid) in (out_dir / LOCK_NAME).read_text()
    # the kernel released the dead process's lock: the next run takes the file over
    assert main([*SMALL, "--max-iters", "2", "--out-dir", str(out_dir)]) == 0
    assert files_in(out_dir) == ["ckpt.safetensors"]
    assert load_checkpoint(out_dir / "ckpt.safetensors").step == 2


# --------------------------------------------------------------------------- kills in the middle of saves

SAVING_FOREVER = textwrap.dedent(
    """
    import sys
    from minigpt2.model import GPT, GPTConfig
    from minigpt2.train.checkpoint import save_checkpoint
    model = GPT(GPTConfig(block_size=64, vocab_size=4096, n_layer=2, n_head=4, n_embd=256))  # ~10 MB a save
    step = 0
    while True:
        step += 1
        save_checkpoint(sys.argv[1], model, step=step, meta={"step": step})
        print(step, flush=True)
    """
)


def test_kills_at_random_moments_of_saves_leave_a_good_checkpoint_and_no_leftovers(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    rng = random.Random(16)
    saved, caught_mid_save = 0, 0
    for attempt in range(6):
        writer = subprocess.Popen([sys.executable, "-c", SAVING_FOREVER, str(path)], stdout=subprocess.PIPE, text=True,
                                  env=ENV)
        # one save done: now kill it at a random moment of the next ones
        assert writer.stdout.readline().strip().isdigit()
        time.sleep(rng.uniform(0.0, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        ckpt = load_checkpoint(path)  # whole, and its checksum holds
        assert ckpt.meta["step"] == ckpt.step >= 1
        leftovers = [name for name in files_in(tmp_path) if name != path.name]
        assert all(name.startswith(".ckpt-") or name == LOCK_NAME for name in leftovers), leftovers
        assert not any(name.startswith(".tmp") for name in leftovers)  # safetensors' own temporary stays inside ours
        caught_mid_save += any(name.startswith(".ckpt-") for name in leftovers)
        saved = ckpt.step
    assert saved >= 1
    assert caught_mid_save, "no kill landed in the middle of a save"  # saves take most of the writer's time
    save_checkpoint(path, torch.nn.Linear(2, 2), step=99)  # the next save, in a folder nobody holds, cleans up
    assert files_in(tmp_path) == [path.name]


def test_the_next_run_removes_leftovers_of_older_versions_too(tmp_path):
    from safetensors.torch import save_file

    # the package's temporary, as earlier versions named it
    (tmp_path / ".ckpt-abc123.partial").write_bytes(b"\0" * 100)
    save_file({"w": torch.zeros(3)}, str(tmp_path / "ckpt.safetensors"))
    os.replace(tmp_path / "ckpt.safetensors", tmp_path / ".tmpAb12Cd")  # safetensors' own, beside the checkpoint
    (tmp_path / ".tmpXyZ123").write_text("someone else's file")  # not a safetensors file: left alone
    assert main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path)]) == 0
    assert files_in(tmp_path) == [".tmpXyZ123", "ckpt.safetensors"]


# --------------------------------------------------------------------------- a diverging run


def test_a_nan_stops_the_run_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, data):
    def poison(kind, row, model):
        if kind == "train" and row["step"] == 3:
            with torch.no_grad():
                model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")

    with pytest.raises(TrainingDiverged) as err:
        train(tiny(tmp_path), data=data, callback=poison)
    message = str(err.value)
    assert "the training loss became nan or inf at step 4" in message
    assert f"{tmp_path / 'ckpt.safetensors'} still holds the last good checkpoint (step 2)" in message
    assert "learning rate is too high" in message and "--lr" in message
    assert err.value.step == 4
    ckpt = load_checkpoint(tmp_path / "ckpt.safetensors")
    assert ckpt.step == 2 and [r["step"] for r in ckpt.meta["history"]["train"]] == [1, 2]
    assert all(torch.isfinite(t).all() for t in ckpt.model_state.values())
    assert files_in(tmp_path) == ["ckpt.safetensors"]


def test_a_learning_rate_far_too_high_ends_the_command_with_exit_3(tmp_path, capsys):
    args = [*SMALL, "--max-iters", "8", "--lr", "1e6", "--min-lr", "1", "--out-dir", str(tmp_path)]
    line, out = one_line_error(capsys, main(args), expected_code=3)
    assert "became nan or inf at step" in line and "training stopped" in line and "--lr" in line
    assert "done:" not in out
    if files_in(tmp_path):  # a checkpoint written before the loss blew up holds finite weights
        assert files_in(tmp_path) == ["ckpt.safetensors"]
        assert all(torch.isfinite(t).all() for t in load_checkpoint(tmp_path / "ckpt.safetensors").model_state.values())


def test_weights_that_are_nan_are_refused_by_resume_and_by_sample(tmp_path, capsys):
    assert main([*SMALL, "--max-iters", "2", "--out-dir", str(tmp_path)]) == 0
    path = tmp_path / "ckpt.safetensors"
    from minigpt2.model import GPT, GPTConfig
    from minigpt2.train.checkpoint import restore

    ckpt = load_checkpoint(path)
    model = GPT(GPTConfig(**ckpt.meta["model_config"]))
    restore(ckpt, model, restore_rng=False)
    with torch.no_grad():
        model.lm_head.weight[3, :] = float("nan")  # a checkpoint whose weights really are nan (its checksum is right)
    save_checkpoint(path, model, step=2, meta=ckpt.meta)
    bad = path.read_bytes()
    capsys.readouterr()
    line, out = one_line_error(capsys, main(["--resume", "--out-dir", str(tmp_path), "--max-iters", "6"]))
    assert "the checkpoint's weights hold nan or inf (lm_head.weight" in line and "had diverged" in line
    line, out = one_line_error(capsys, sample_main(["--checkpoint", str(path)]))
    assert "the checkpoint's weights hold nan or inf" in line
    assert path.read_bytes() == bad  # never overwritten


# --------------------------------------------------------------------------- damaged checkpoints


@pytest.fixture
def trained_dir(tmp_path, capsys):
    assert main([*SMALL, "--max-iters", "2", "--out-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    return tmp_path


def flip_a_data_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    raw[8 + header_len + (len(raw) - 8 - header_len) // 2] ^= 0x10  # the middle of the tensor data
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage, words", [
    ("flip", "is damaged: its contents do not match the checksum"),
    ("truncate", "cannot be read as a checkpoint"),
    ("garbage", "cannot be read as a checkpoint"),
])
def test_a_damaged_checkpoint_is_refused_by_resume_and_by_sample(trained_dir, capsys, damage, words):
    path = trained_dir / "ckpt.safetensors"
    if damage == "flip":
        flip_a_data_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-1000])
    else:
        path.write_bytes(b"\x07" * 5000)
    damaged = path.read_bytes()
    line, out = one_line_error(capsys, main(["--resume", "--out-dir", str(trained_dir), "--max-iters", "4"]))
    assert line.startswith("minigpt2 train: error:") and str(path) in line and words in line
    line, out = one_line_error(capsys, sample_main(["--checkpoint", str(path), "--max-new-tokens", "5"]))
    assert line.startswith("minigpt2 sample: error:") and words in line
    assert out == ""
    assert path.read_bytes() == damaged and files_in(trained_dir) == ["ckpt.safetensors"]


def test_a_changed_header_is_refused_too(trained_dir):
    from minigpt2.train.checkpoint import CheckpointError

    path = trained_dir / "ckpt.safetensors"
    raw = path.read_bytes()
    assert raw.count(b'"step":"2"') == 1
    path.write_bytes(raw.replace(b'"step":"2"', b'"step":"7"'))  # still valid JSON, another value
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- the device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_cuda_on_a_cpu_only_torch_is_a_one_line_error(tmp_path, capsys):
    line, out = one_line_error(capsys, main([*SMALL[:-3], "--device", "cuda", "--out-dir", str(tmp_path / "o")]))
    assert "device 'cuda' was asked for" in line and "--device cpu" in line
    line, out = one_line_error(capsys, sample_main(["--device", "cuda", "--checkpoint", str(__file__)]))
    assert "device 'cuda'" in line
