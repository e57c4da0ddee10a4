"""minigpt2.train.precision: ``--dtype auto`` picks bf16 autocast only where the hardware makes it
faster, says why, and a bf16 run learns what a float32 run learns."""

import pytest
import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.train import TrainConfig, main, precision, train
from minigpt2.train.dataset import load_tokens
from minigpt2.train.precision import choose_precision, time_passes

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return load_tokens("tinyshakespeare", "char", 0.1)


def tiny_model_and_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=65, n_layer=1, n_head=2, n_embd=32, dropout=0.1)).train()
    x = torch.randint(65, (4, 16))
    return model, (x, torch.roll(x, -1, dims=1))


def fake_times(float32_s, bf16_s):
    return lambda model, x, y: {torch.float32: [float32_s] * 3, torch.bfloat16: [bf16_s] * 3}


def test_explicit_dtypes_are_taken_as_asked():
    assert choose_precision("float32", CPU).dtype == torch.float32
    assert choose_precision("bfloat16", CPU).dtype == torch.bfloat16


def test_auto_is_float32_on_a_cpu_without_bf16_instructions(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    monkeypatch.setattr(precision, "time_passes", lambda *a: pytest.fail("nothing to time without bf16 instructions"))
    model, batch = tiny_model_and_batch()
    chosen = choose_precision("auto", CPU, model, batch)
    assert chosen.dtype == torch.float32
    assert "no bf16 matrix instructions" in chosen.reason


def test_auto_keeps_float32_for_a_small_model_without_timing(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16"])
    monkeypatch.setattr(precision, "time_passes", lambda *a: pytest.fail("a model this small is not timed"))
    model, batch = tiny_model_and_batch()
    chosen = choose_precision("auto", CPU, model, batch)
    assert chosen.dtype == torch.float32 and "too small" in chosen.reason


def test_auto_is_bf16_where_the_instructions_are_there_and_timed_faster(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16"])
    monkeypatch.setattr(precision, "MIN_TIMED_FLOPS", 0)  # the tiny model stands in for a big one
    model, batch = tiny_model_and_batch()
    monkeypatch.setattr(precision, "time_passes", fake_times(0.30, 0.12))
    faster = choose_precision("auto", CPU, model, batch)
    assert faster.dtype == torch.bfloat16 and "amx_bf16" in faster.reason and "2.50x" in faster.reason
    monkeypatch.setattr(precision, "time_passes", fake_times(0.010, 0.013))  # the small shape: bf16 slower
    slower = choose_precision("auto", CPU, model, batch)
    assert slower.dtype == torch.float32 and "does not pay" in slower.reason
    monkeypatch.setattr(precision, "time_passes", fake_times(0.100, 0.095))  # within the noise margin
    assert choose_precision("auto", CPU, model, batch).dtype == torch.float32


def test_timing_leaves_the_model_and_the_random_state_alone():
    model, (x, y) = tiny_model_and_batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    times = time_passes(model, x, y, rounds=2)
    assert all(len(t) == 2 and all(s > 0 for s in t) for t in times.values())
    assert torch.equal(torch.get_rng_state(), rng)  # dropout's masks in training stay those of the seed
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_the_run_says_which_precision_and_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    args = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4",
            "--max-iters", "1", "--warmup-iters", "1", "--eval-iters", "1", "--device", "cpu", "--no-progress",
            "--out-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "minigpt2 train: precision: float32 (this CPU has no bf16 matrix instructions" in out


@pytest.fixture
def one_thread():
    """A tiny model's step is too short to share among threads (on a busy host they only wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bf16_training_tracks_float32(tmp_path, data, one_thread):
    """A few hundred steps of a tiny model, float32 and under bf16 autocast: the same learning curve
    to within bf16's rounding (its 8-bit mantissa; weights and the optimizer stay float32)."""
    def run(dtype):
        config = TrainConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=8, max_iters=200,
                             warmup_iters=20, lr=3e-3, min_lr=3e-4, eval_interval=50, eval_iters=4, log_interval=50,
                             dropout=0.0, device="cpu", dtype=dtype, progress=False, out_dir=str(tmp_path / dtype))
        return train(config, data=data)

    full, half = run("float32"), run("bfloat16")
    assert half.precision.dtype == torch.bfloat16 and full.precision.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in half.model.parameters())  # master weights stay float32
    (_, val32), (_, val16) = full.history.curve("val_loss"), half.history.curve("val_loss")
    assert val32[-1] < val32[0] - 1.2  # both learned something (4.17 at init)
    for a, b in zip(val32, val16):
        assert b == pytest.approx(a, abs=0.05)
    for a, b in zip(full.history.curve("train_loss")[1], half.history.curve("train_loss")[1]):
        assert b == pytest.approx(a, abs=0.08)


def test_doctor_reports_the_precision_choice(monkeypatch):
    from minigpt2 import doctor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    assert "uses float32" in doctor._precision().detail
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16", "avx512_bf16"])
    assert "amx_bf16, avx512_bf16" in doctor._precision().detail and "bf16 autocast" in doctor._precision().detail
