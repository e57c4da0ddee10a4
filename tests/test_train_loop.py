"""minigpt2.train.loop: training learns, resuming equals not stopping, accumulation equals a big batch."""

import pytest
import torch

from minigpt2.data import get_batch, window
from minigpt2.train import TrainConfig, train
from minigpt2.train.config import MODEL_FIELDS
from minigpt2.train.dataset import Batches, eval_batches, load_tokens
from minigpt2.train.loop import History, resolve_dtype


@pytest.fixture(scope="module")
def data():
    return load_tokens("tinyshakespeare", "char", 0.1)


def tiny(out_dir, **overrides):
    settings = dict(
        n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4, max_iters=12, warmup_iters=3, lr=3e-3,
        min_lr=3e-4, eval_interval=4, eval_iters=2, log_interval=1, dropout=0.1, device="cpu",
        progress=False, out_dir=str(out_dir), seed=7,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


TIMINGS = ("tokens_per_s", "flops_per_s", "mfu")


def without_timings(rows):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


@pytest.mark.parametrize("log_interval", [1, 3])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, data, log_interval):
    """Stop at step 5, resume, finish: the losses after the stop and the final weights are
    bit for bit those of a run that never stopped (dropout and accumulation included), and so is
    the logged history, also when the stop falls inside a logging interval (5 is not a multiple of 3)."""
    whole = train(tiny(tmp_path / "whole", grad_accum=2, log_interval=log_interval), data=data)
    first = train(tiny(tmp_path / "split", grad_accum=2, log_interval=log_interval), data=data, until_step=5)
    assert first.step == 5 and first.checkpoint.is_file()
    second = train(tiny(tmp_path / "split", grad_accum=2, log_interval=log_interval), data=data, resume=True)
    assert second.step == 12
    assert [r["step"] for r in whole.history.train] == list(range(log_interval, 13, log_interval))
    assert without_timings(second.history.train) == without_timings(whole.history.train)  # every loss and lr
    assert second.history.val == whole.history.val
    a, b = params(whole.model), params(second.model)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_resume_with_nothing_to_resume_starts_afresh(tmp_path, data):
    result = train(tiny(tmp_path, max_iters=2, warmup_iters=1), data=data, resume=True)
    assert result.step == 2


def test_resume_refuses_a_different_model_shape(tmp_path, data):
    train(tiny(tmp_path, max_iters=2, warmup_iters=1), data=data)
    with pytest.raises(ValueError, match="block_size=16"):
        train(tiny(tmp_path, max_iters=4, warmup_iters=1, block_size=32), data=data, resume=True)


def test_accumulation_equals_one_big_batch(tmp_path, data):
    big = train(tiny(tmp_path / "a", batch_size=8, grad_accum=1, dropout=0.0, max_iters=3), data=data)
    accumulated = train(tiny(tmp_path / "b", batch_size=4, grad_accum=2, dropout=0.0, max_iters=3), data=data)
    # Compare what the models compute, not every weight: the keys' bias gets a gradient that is
    # zero but for rounding (softmax ignores a constant added to every score), and Adam, which
    # divides by the gradient's own size, turns that rounding into steps of size lr.
    x, _ = Batches(data.val, 8, 16, seed=0)(0, 0)
    torch.testing.assert_close(big.model(x)[0], accumulated.model(x)[0], atol=1e-5, rtol=1e-4)
    for row_big, row_acc in zip(big.history.train, accumulated.history.train):
        assert row_acc["train_loss"] == pytest.approx(row_big["train_loss"], rel=1e-5)


def test_training_learns_and_records_its_history(tmp_path, data):
    seen = []
    result = train(tiny(tmp_path, max_iters=40, eval_interval=20, log_interval=10, dropout=0.0), data=data,
                   callback=lambda kind, row, model: seen.append((kind, row["step"], model.training)))
    steps, losses = result.history.curve("val_loss")
    assert steps == [0, 20, 40]
    assert losses[0] == pytest.approx(torch.log(torch.tensor(65.0)).item(), abs=0.3)  # uniform guess at init
    assert losses[-1] < losses[0] - 0.8
    assert result.history.curve("train_loss")[0] == [10, 20, 30, 40]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] <= 1 for r in result.history.train)
    assert all(r["flops_per_s"] == pytest.approx(r["mfu"] * result.peak_flops) for r in result.history.train[-1:])
    assert ("val", 0, True) in seen and ("train", 40, True) in seen  # the model in training, dropout on
    assert not result.model.training
    assert History.from_dict(result.history.to_dict()) == result.history


def test_batches_depend_only_on_seed_and_step(data):
    a = Batches(data.train, 4, 16, grad_accum=2, seed=3)
    b = Batches(data.train, 4, 16, grad_accum=2, seed=3)
    b(0, 0), b(1, 1)  # drawing other steps first changes nothing
    for step, micro in ((5, 0), (5, 1)):
        x1, y1 = a(step, micro)
        x2, y2 = b(step, micro)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x, y = a(2, 0)
    assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])  # targets are inputs shifted by one


def test_processes_split_the_global_batch(data):
    whole = Batches(data.train, 4, 16, seed=3)
    halves = [Batches(data.train, 2, 16, seed=3, rank=r, world_size=2) for r in (0, 1)]
    x, _ = whole(9, 0)
    assert torch.equal(torch.cat([h(9, 0)[0] for h in halves]), x)


def test_one_window_needs_block_size_plus_one_tokens_everywhere():
    """The training batches follow minigpt2.data's rule: block_size + 1 tokens hold exactly one window."""
    stream = torch.arange(17)  # block_size 16 + 1
    only = (stream[:-1], stream[1:])
    for x, y in (Batches(stream, 3, 16, seed=0)(0, 0), eval_batches(stream, 1, 3, 16, 0, torch.device("cpu"))[0],
                 get_batch(stream, 3, 16)):
        assert torch.equal(x, only[0].expand(3, 16)) and torch.equal(y, only[1].expand(3, 16))
    assert all(torch.equal(a, b) for a, b in zip(window(stream, 0, 16), only))
    short = stream[:-1]  # 16 tokens: no window
    for make in (lambda: Batches(short, 3, 16), lambda: eval_batches(short, 1, 3, 16, 0, torch.device("cpu")),
                 lambda: get_batch(short, 3, 16), lambda: window(short, 0, 16)):
        with pytest.raises(ValueError, match=r"needs block_size \+ 1 = 17 tokens .* has 16"):
            make()


def test_vocab_is_padded_to_the_multiple(tmp_path):
    assert tiny(tmp_path, vocab_multiple=64).model_config(65).vocab_size == 128
    assert tiny(tmp_path).model_config(65).vocab_size == 65


def test_the_model_settings_are_gptconfigs_fields_and_checks(tmp_path):
    config = tiny(tmp_path)
    assert {name: getattr(config.model_config(65), name) for name in MODEL_FIELDS} == {
        name: getattr(config, name) for name in MODEL_FIELDS}
    for bad, words in ((dict(n_embd=30, n_head=4), "divisible by n_head"), (dict(dropout=1.0), "dropout"),
                       (dict(n_layer=0), "n_layer should be positive"), (dict(n_head=2.0), "n_head should be an int")):
        with pytest.raises(ValueError, match=words):
            tiny(tmp_path, **bad).validate()


def test_dtype_is_float32_on_cpu_unless_asked(tmp_path):
    cpu = torch.device("cpu")
    assert resolve_dtype(tiny(tmp_path), cpu) == torch.float32
    assert resolve_dtype(tiny(tmp_path, dtype="bfloat16"), cpu) == torch.bfloat16


def test_mfu_never_exceeds_one_even_against_a_disturbed_peak_measurement(tmp_path, data, monkeypatch):
    """A peak measured while the machine was busy can be far below what the device does; training
    faster than it raises the peak instead of reporting MFU above 100 %."""
    import minigpt2.train.loop as loop

    monkeypatch.setattr(loop, "peak_flops", lambda device, dtype: (1e3, "measured float32 matmul peak of the CPU"))
    monkeypatch.setattr(loop, "refresh_peak", lambda device, dtype: 1e3)  # and every later look as busy
    result = train(tiny(tmp_path, max_iters=4, dropout=0.0), data=data)
    rows = result.history.train
    assert all(0 < r["mfu"] <= 1 for r in rows)
    assert result.peak_flops >= max(r["flops_per_s"] for r in rows) > 1e3
    assert "the best rate this run reached on the CPU" in result.peak_source


def test_the_measured_peak_only_goes_up(monkeypatch):
    from minigpt2.train import mfu

    key = ("cpu", torch.float32)
    monkeypatch.setitem(mfu._measured, key, 1e18)  # an earlier, better measurement
    monkeypatch.setitem(mfu._measured_at, key, float("-inf"))  # and an old one: refresh_peak measures again
    assert mfu.refresh_peak("cpu", torch.float32) == 1e18  # a new, lower figure does not replace it
    # an explicit size is just measured
    assert mfu.measure_matmul_flops("cpu", torch.float32, size=64, repeats=1) < 1e18
