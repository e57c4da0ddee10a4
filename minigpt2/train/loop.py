"""The training loop: one function, :func:`train`, from a :class:`TrainConfig` to a trained model.

Each optimizer step::

    lr = schedule(step)                          # warm-up, then cosine decay
    for each of grad_accum micro-batches:        # a big batch in small pieces
        loss = model(x, y) / grad_accum          # under bf16 autocast where it is faster
        loss.backward()                          # gradients add up; DDP averages them over processes
    clip the gradients' global norm to grad_clip
    optimizer.step(); optimizer.zero_grad()

Around it: evaluation on the validation split every ``eval_interval`` steps, a
checkpoint after each evaluation, tokens per second and MFU, a progress bar, and a
:class:`History` of losses to plot. ``train(config, resume=True)`` continues from
the checkpoint in ``config.out_dir``; the losses then are those of an uninterrupted
run (on a CPU, bit for bit), logged history included.

A run holds a lock on ``config.out_dir`` (checked writable before any work), and
stops with :class:`TrainingDiverged` when the loss stops being a finite number,
leaving the last good checkpoint as it was.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from minigpt2.model import GPT
from minigpt2.train import distributed
from minigpt2.train.checkpoint import OutDirError, load_checkpoint, out_dir_lock, restore, save_checkpoint
from minigpt2.train.config import MODEL_FIELDS, TrainConfig
from minigpt2.train.dataset import Batches, TokenData, eval_batches, load_tokens
from minigpt2.train.mfu import mfu, model_flops_per_token, peak_flops, refresh_peak
from minigpt2.train.optim import WarmupCosine, clip_grad_norm, make_optimizer
from minigpt2.train.precision import Precision, autocast_context, choose_precision
from minigpt2.train.progress import progress_bar
from minigpt2.utils import set_seed

CHECKPOINT_NAME = "ckpt.safetensors"
log = logging.getLogger(__name__)
MODEL_SHAPE_FIELDS = ("tokenizer", "dataset", "vocab_multiple", *(name for name in MODEL_FIELDS if name != "dropout"))


@dataclass
class History:
    """What a run measured: ``train`` rows every ``log_interval`` steps
    (step, train_loss averaged over the interval, lr, tokens_per_s, flops_per_s, mfu) and
    ``val`` rows at every evaluation (step, val_loss)."""

    train: list[dict] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of ``key`` ("train_loss", "lr", "tokens_per_s", "mfu" or "val_loss"), ready to plot."""
        rows = self.val if key == "val_loss" else self.train
        return [r["step"] for r in rows], [r[key] for r in rows]

    def to_dict(self) -> dict:
        return {"train": self.train, "val": self.val}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(train=list(d.get("train", [])), val=list(d.get("val", [])))


@dataclass
class TrainResult:
    model: GPT  # the trained model (unwrapped: no DDP, not compiled), in eval mode
    tokenizer: object
    history: History
    step: int  # optimizer steps done
    checkpoint: Path | None  # where the last checkpoint was written (None on ranks other than 0)
    config: TrainConfig
    peak_flops: float = float("nan")  # the FLOP/s that MFU is a fraction of (all processes together)
    peak_source: str = ""  # where that figure comes from
    precision: Precision | None = None  # the dtype the run computed in, and why

    @property
    def val_loss(self) -> float | None:
        return self.history.val[-1]["val_loss"] if self.history.val else None


def resolve_dtype(config: TrainConfig, device: torch.device, model=None, batch=None) -> torch.dtype:
    """The dtype ``config.dtype`` comes to on ``device`` (see :func:`minigpt2.train.precision.choose_precision`)."""
    return choose_precision(config.dtype, device, model, batch).dtype


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list, autocast) -> float:
    """The mean loss over ``batches``, dropout off; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    total = torch.zeros(())
    for x, y in batches:
        with autocast:
            _, loss = model(x, y)
        total += loss.float().cpu()
    model.train(was_training)
    return total.item() / len(batches)


def checkpoint_path(config: TrainConfig) -> Path:
    return Path(config.out_dir) / CHECKPOINT_NAME


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) stopped being finite; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


DIVERGENCE_ADVICE = (
    "This usually means the learning rate is too high (try a tenth of --lr), the warm-up too short "
    "(--warmup-iters), clipping switched off (--grad-clip 0), or damaged weights resumed from"
)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    until_step: int | None = None,
    callback: Callable[[str, dict, GPT], None] | None = None,
    data: TokenData | None = None,
) -> TrainResult:
    """Train a GPT as ``config`` says; under torchrun, as one of several processes.

    resume: continue from ``config.out_dir/ckpt.safetensors`` if it exists.
    until_step: stop (with a checkpoint) after this many steps, although the schedule
        runs to ``max_iters``: resume later to finish.
    callback: called on rank 0 as ``callback("train", row, model)`` at every log and
        ``callback("val", row, model)`` at every evaluation, ``model`` being the GPT in training
        (a notebook redraws its plot there, or samples from the model).
    data: the token streams, if already loaded (saves re-tokenizing in a notebook).
    """
    config.validate()
    info = distributed.setup(config.device)
    try:
        # One run per folder, and a folder that cannot be written is found before any work is done.
        with out_dir_lock(config.out_dir) if info.is_main else nullcontext():
            return _train(config, info, resume, until_step, callback, data)
    finally:
        distributed.teardown()


def _train(config, info, resume, until_step, callback, data) -> TrainResult:
    device = info.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls outside autocast use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True

    data = data or load_tokens(config.dataset, config.tokenizer, config.val_fraction)
    set_seed(config.seed)  # the same initial weights in every process
    model = GPT(config.model_config(data.vocab_size)).to(device)
    optimizer = make_optimizer(
        model, lr=config.lr, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2),
        device_type=device.type
    )
    schedule = WarmupCosine(config.lr, config.min_lr, config.warmup_iters, config.max_iters)
    torch.manual_seed(config.seed + info.rank)  # dropout masks differ between processes

    step, history, unlogged = 0, History(), {}
    ckpt_path = checkpoint_path(config)
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        check_resumable(ckpt.meta.get("config", {}), config)
        restore(ckpt, model, optimizer, restore_rng=True)
        step, history = ckpt.step, History.from_dict(ckpt.meta.get("history", {}))
        unlogged = ckpt.meta.get("history", {}).get("unlogged", {})  # the steps since the last logged row
        if info.rank:
            torch.manual_seed(config.seed + info.rank + step)  # the saved RNG state is rank 0's

    stop = min(config.max_iters, until_step if until_step is not None else config.max_iters)
    batches = Batches(data.train, config.batch_size, config.block_size, config.grad_accum,
                      seed=config.seed, rank=info.rank, world_size=info.world_size, device=device)
    val_batches = eval_batches(data.val, config.eval_iters, config.batch_size, config.block_size, config.seed, device)
    precision = choose_precision(config.dtype, device, model, batches(step, 0))  # auto: timed on this model, this batch
    dtype, autocast = precision.dtype, autocast_context(device, precision.dtype)
    if info.is_main:
        log.info("precision: %s (%s)", "bf16 autocast" if dtype == torch.bfloat16 else precision.name, precision.reason)

    train_model = torch.compile(model) if config.compile else model
    train_model = distributed.wrap(train_model, info)
    flops_per_token = model_flops_per_token(model)
    peak, peak_source = peak_flops(device, dtype) if info.is_main else (float("nan"), "")
    measured_peak = peak_source.startswith("measured")
    tokens_per_step = config.tokens_per_step * info.world_size

    def meta() -> dict:
        return {
            "config": config.to_dict(),
            "model_config": model.config.to_dict(),
            "tokenizer": data.tokenizer_meta,
            # the part of the interval not logged yet goes along, so a resumed run logs what an uninterrupted one does
            "history": {**history.to_dict(), "unlogged": {"loss_sum": loss_sum.item(), "steps": steps_in_interval}},
            "world_size": info.world_size,
        }

    saved: dict = {"step": step, "path": ckpt_path} if step else {}  # the last checkpoint written

    def diverged(what: str, at_step: int) -> TrainingDiverged:
        bar.close()
        kept = (f"{saved['path']} still holds the last good checkpoint (step {saved['step']})" if saved
                else "no checkpoint was written")
        return TrainingDiverged(f"{what} at step {at_step}; training stopped, and {kept}. {DIVERGENCE_ADVICE}.",
                                at_step, saved.get("path"))

    def check_finite() -> None:
        """Raise TrainingDiverged if a loss since the last check, or a weight, is not finite."""
        bad_step = int(nonfinite_at.item())
        if bad_step >= 0:
            raise diverged("the training loss became nan or inf", bad_step)
        if not torch.stack([p.isfinite().all() for p in model.parameters()]).all().item():
            raise diverged("the weights became nan or inf", step)

    def save() -> None:
        check_finite()  # a diverged model never overwrites the last good checkpoint
        try:
            saved.update(step=step, path=save_checkpoint(ckpt_path, model, step, optimizer, meta()))
        except OSError as err:
            raise OutDirError(f"could not write the checkpoint {ckpt_path} ({err.strerror or err}); the previous one, "
                              "if any, is intact. Free some space or give another --out-dir") from None

    def evaluate_and_save() -> None:
        nonlocal peak
        row = {"step": step, "val_loss": evaluate(model, val_batches, autocast)}
        if not math.isfinite(row["val_loss"]):
            check_finite()
            raise diverged(f"the validation loss became {row['val_loss']}", step)
        history.val.append(row)
        bar.set_postfix_str(status(history), refresh=False)
        if callback:
            callback("val", row, model)
        if measured_peak:  # one more look at the device's peak, while training is paused anyway
            peak = max(peak, refresh_peak(device, dtype))
        if config.checkpoint_interval == 0 and step > 0:
            save()

    bar = progress_bar(total=stop, initial=step, enabled=config.progress and info.is_main)
    model.train()
    loss_sum = torch.tensor(float(unlogged.get("loss_sum", 0.0)), device=device)  # float32, as it was saved
    steps_in_interval = int(unlogged.get("steps", 0))  # steps whose losses loss_sum holds
    nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)  # the first step with a nan/inf loss
    timed_steps, interval_start = 0, time.perf_counter()  # for tokens/s, this process's own steps
    while True:
        due = step % config.eval_interval == 0 or step == config.max_iters
        if info.is_main and due and not (history.val and history.val[-1]["step"] == step):  # not twice on resume
            paused = time.perf_counter()
            evaluate_and_save()
            interval_start += time.perf_counter() - paused  # tokens/s counts training time only
        if step >= stop:
            break

        lr = schedule.apply(optimizer, step)
        for micro in range(config.grad_accum):
            x, y = batches(step, micro)  # (B, T) each
            last_micro = micro == config.grad_accum - 1
            sync = nullcontext() if last_micro or not info.enabled else train_model.no_sync()
            with sync:  # DDP averages gradients only on the last micro-batch
                with autocast:
                    _, loss = train_model(x, y)
                (loss / config.grad_accum).backward()
            loss_sum += loss.detach().float() / config.grad_accum
        clip_grad_norm(model, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_in_interval += 1
        timed_steps += 1
        # once a loss is nan or inf, so is loss_sum until the next log: note the first such step, without a GPU sync
        nonfinite_at = torch.where((nonfinite_at < 0) & ~torch.isfinite(loss_sum), step, nonfinite_at)

        if step % config.log_interval == 0 or step == config.max_iters:
            distributed.average(loss_sum, info)  # the global batch's loss, not this process's share
            mean_loss = loss_sum.item() / steps_in_interval  # .item() waits for the GPU
            if not math.isfinite(mean_loss):  # every process sees the same average, so all of them stop
                check_finite()
                raise diverged("the training loss became nan or inf", step)
            if info.is_main:
                elapsed = time.perf_counter() - interval_start
                tokens_per_s = tokens_per_step * timed_steps / elapsed
                flops_per_s = tokens_per_s * flops_per_token
                if flops_per_s / info.world_size > peak:  # the device evidently reaches this: MFU never exceeds 1
                    peak = flops_per_s / info.world_size
                    peak_source = (f"the best rate this run reached on the {device.type.upper()}, above its "
                                   "measured matmul peak")
                row = {"step": step, "train_loss": mean_loss, "lr": lr, "tokens_per_s": tokens_per_s,
                       "flops_per_s": flops_per_s, "mfu": mfu(tokens_per_s, flops_per_token, peak * info.world_size)}
                history.train.append(row)
                bar.set_postfix_str(status(history), refresh=False)
                if callback:
                    callback("train", row, model)
            loss_sum.zero_()
            steps_in_interval = timed_steps = 0
            interval_start = time.perf_counter()
        bar.update(1)
        if info.is_main and config.checkpoint_interval and step % config.checkpoint_interval == 0:
            paused = time.perf_counter()
            save()
            interval_start += time.perf_counter() - paused

    bar.close()
    if info.is_main and saved.get("step") != step:
        save()
    model.eval()
    return TrainResult(model=model, tokenizer=data.tokenizer, history=history, step=step,
                       checkpoint=saved.get("path"), config=config,
                       peak_flops=peak * info.world_size, peak_source=peak_source, precision=precision)


def status(history: History) -> str:
    parts = []
    if history.train:
        last = history.train[-1]
        parts += [f"loss {last['train_loss']:.3f}", f"{last['tokens_per_s']:,.0f} tok/s", f"MFU {last['mfu']:.0%}"]
    if history.val:
        parts.append(f"val {history.val[-1]['val_loss']:.3f}")
    return ", ".join(parts)


def check_resumable(saved: dict, config: TrainConfig) -> None:
    """A checkpoint resumes only into a model of the same shape, trained on the same tokens."""
    for name in MODEL_SHAPE_FIELDS:
        if name in saved and saved[name] != getattr(config, name):
            raise ValueError(
                f"the checkpoint was trained with {name}={saved[name]!r} but this run asks for "
                f"{getattr(config, name)!r}; drop that setting to resume, or use another --out-dir to start afresh"
            )


__all__ = [
    "train", "TrainResult", "TrainingDiverged", "History", "evaluate", "resolve_dtype", "checkpoint_path",
    "CHECKPOINT_NAME",
]
