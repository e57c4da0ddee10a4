"""Two CPU processes under torchrun (gloo) train exactly as one process with the same global batch."""

import os
import socket
import subprocess
import sys

import torch

from minigpt2.train.checkpoint import load_checkpoint

SETTINGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--max-iters", "3",
    "--warmup-iters", "1", "--lr", "3e-3", "--min-lr", "3e-4", "--eval-interval", "3", "--eval-iters", "1",
    "--log-interval", "1", "--dropout", "0.0", "--device", "cpu", "--no-progress", "--seed", "5",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, **env):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    run(["-m", "minigpt2.train", *SETTINGS, "--batch-size", "4", "--out-dir", str(tmp_path / "one")])
    torchrun = ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    run([*torchrun, "-m", "minigpt2.train", *SETTINGS, "--batch-size", "2", "--out-dir", str(tmp_path / "two")])

    one = load_checkpoint(tmp_path / "one" / "ckpt.safetensors")
    two = load_checkpoint(tmp_path / "two" / "ckpt.safetensors")
    assert one.step == two.step == 3
    assert two.meta["world_size"] == 2 and one.meta["world_size"] == 1
    assert set(one.model_state) == set(two.model_state)
    for name, weight in one.model_state.items():
        other = two.model_state[name]
        if name.endswith("c_attn.bias"):  # [q | k | v]: leave out the keys' bias, whose gradient is zero but for
            # rounding, which Adam amplifies to steps of size lr (see test_accumulation_equals_one_big_batch)
            weight, other = torch.cat([weight[:32], weight[64:]]), torch.cat([other[:32], other[64:]])
        torch.testing.assert_close(other, weight, atol=1e-5, rtol=1e-4, msg=name)
    for row_one, row_two in zip(one.meta["history"]["train"], two.meta["history"]["train"]):
        assert abs(row_one["train_loss"] - row_two["train_loss"]) < 1e-5  # the global batch's loss, averaged over ranks
