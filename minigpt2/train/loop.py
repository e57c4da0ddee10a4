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
from contextlib import contextmanager, nullcontext
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
    run = _Run(config, info, data or load_tokens(config.dataset, config.tokenizer, config.val_fraction), resume,
               until_step, callback)
    return run.run()


class _Run:
    """One training run, in the steps a reader can follow: set up (``__init__``), one optimizer step
    (:meth:`optimizer_step`), evaluate and log (:meth:`evaluate_and_save`, :meth:`log`), checkpoint
    (:meth:`save`); :meth:`run` is the loop that calls them."""

    def __init__(self, config: TrainConfig, info, data: TokenData, resume: bool, until_step: int | None, callback):
        self.config, self.info, self.data, self.callback = config, info, data, callback
        device = self.device = info.device
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls outside autocast use TF32 tensor cores
            torch.backends.cudnn.allow_tf32 = True

        set_seed(config.seed)  # the same initial weights in every process
        self.model = GPT(config.model_config(data.vocab_size)).to(device)
        self.optimizer = make_optimizer(self.model, lr=config.lr, weight_decay=config.weight_decay,
                                        betas=(config.beta1, config.beta2), device_type=device.type)
        self.schedule = WarmupCosine(config.lr, config.min_lr, config.warmup_iters, config.max_iters)
        torch.manual_seed(config.seed + info.rank)  # dropout masks differ between processes

        self.step, self.history, unlogged = 0, History(), {}
        self.ckpt_path = checkpoint_path(config)
        if resume and self.ckpt_path.is_file():
            ckpt = load_checkpoint(self.ckpt_path)
            check_resumable(ckpt.meta.get("config", {}), config)
            restore(ckpt, self.model, self.optimizer, restore_rng=True)
            self.step, self.history = ckpt.step, History.from_dict(ckpt.meta.get("history", {}))
            unlogged = ckpt.meta.get("history", {}).get("unlogged", {})  # the steps since the last logged row
            if info.rank:
                torch.manual_seed(config.seed + info.rank + self.step)  # the saved RNG state is rank 0's
        self.saved_step = self.step if self.step else None  # the last checkpoint written, at saved_path
        self.saved_path = self.ckpt_path if self.step else None

        self.stop = min(config.max_iters, until_step if until_step is not None else config.max_iters)
        self.batches = Batches(data.train, config.batch_size, config.block_size, config.grad_accum,
                               seed=config.seed, rank=info.rank, world_size=info.world_size, device=device)
        self.val_batches = eval_batches(data.val, config.eval_iters, config.batch_size, config.block_size,
                                        config.seed, device)
        # auto: timed on this model, this batch
        self.precision = choose_precision(config.dtype, device, self.model, self.batches(self.step, 0))
        self.dtype, self.autocast = self.precision.dtype, autocast_context(device, self.precision.dtype)
        if info.is_main:
            log.info("precision: %s (%s)", "bf16 autocast" if self.dtype == torch.bfloat16 else self.precision.name,
                     self.precision.reason)

        self.train_model = distributed.wrap(torch.compile(self.model) if config.compile else self.model, info)
        self.flops_per_token = model_flops_per_token(self.model)
        self.peak, self.peak_source = peak_flops(device, self.dtype) if info.is_main else (float("nan"), "")
        self.measured_peak = self.peak_source.startswith("measured")
        self.tokens_per_step = config.tokens_per_step * info.world_size

        self.loss_sum = torch.tensor(float(unlogged.get("loss_sum", 0.0)), device=device)  # float32, as saved
        self.steps_in_interval = int(unlogged.get("steps", 0))  # steps whose losses loss_sum holds
        self.nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)  # the first step with a nan/inf loss
        self.timed_steps, self.interval_start = 0, time.perf_counter()  # for tokens/s, this process's own steps
        self.bar = progress_bar(total=self.stop, initial=self.step, enabled=config.progress and info.is_main)

    def run(self) -> TrainResult:
        config, info = self.config, self.info
        self.model.train()
        while True:
            due = self.step % config.eval_interval == 0 or self.step == config.max_iters
            done = self.history.val and self.history.val[-1]["step"] == self.step  # evaluated before a resume
            if info.is_main and due and not done:
                with self.paused():
                    self.evaluate_and_save()
            if self.step >= self.stop:
                break
            lr = self.optimizer_step()
            if self.step % config.log_interval == 0 or self.step == config.max_iters:
                self.log(lr)
            self.bar.update(1)
            if info.is_main and config.checkpoint_interval and self.step % config.checkpoint_interval == 0:
                with self.paused():
                    self.save()
        self.bar.close()
        if info.is_main and self.saved_step != self.step:
            self.save()
        self.model.eval()
        return TrainResult(model=self.model, tokenizer=self.data.tokenizer, history=self.history, step=self.step,
                           checkpoint=self.saved_path, config=config, peak_flops=self.peak * info.world_size,
                           peak_source=self.peak_source, precision=self.precision)

    def optimizer_step(self) -> float:
        """One optimizer step over ``grad_accum`` micro-batches; returns its learning rate."""
        config = self.config
        lr = self.schedule.apply(self.optimizer, self.step)
        for micro in range(config.grad_accum):
            x, y = self.batches(self.step, micro)  # (B, T) each
            last_micro = micro == config.grad_accum - 1
            sync = nullcontext() if last_micro or not self.info.enabled else self.train_model.no_sync()
            with sync:  # DDP averages gradients only on the last micro-batch
                with self.autocast:
                    _, loss = self.train_model(x, y)
                (loss / config.grad_accum).backward()
            self.loss_sum += loss.detach().float() / config.grad_accum
        clip_grad_norm(self.model, config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.steps_in_interval += 1
        self.timed_steps += 1
        # once a loss is nan or inf, so is loss_sum until the next log: note the first such step, without a GPU sync
        self.nonfinite_at = torch.where((self.nonfinite_at < 0) & ~torch.isfinite(self.loss_sum), self.step,
                                        self.nonfinite_at)
        return lr

    def log(self, lr: float) -> None:
        """The mean training loss since the last log, with tokens/s and MFU: a row of the history."""
        info, device = self.info, self.device
        distributed.average(self.loss_sum, info)  # the global batch's loss, not this process's share
        mean_loss = self.loss_sum.item() / self.steps_in_interval  # .item() waits for the GPU
        if not math.isfinite(mean_loss):  # every process sees the same average, so all of them stop
            self.check_finite()
            raise self.diverged("the training loss became nan or inf", self.step)
        if info.is_main:
            elapsed = time.perf_counter() - self.interval_start
            tokens_per_s = self.tokens_per_step * self.timed_steps / elapsed
            flops_per_s = tokens_per_s * self.flops_per_token
            if flops_per_s / info.world_size > self.peak:  # the device evidently reaches this: MFU never exceeds 1
                self.peak = flops_per_s / info.world_size
                self.peak_source = (f"the best rate this run reached on the {device.type.upper()}, above its "
                                    "measured matmul peak")
            row = {"step": self.step, "train_loss": mean_loss, "lr": lr, "tokens_per_s": tokens_per_s,
                   "flops_per_s": flops_per_s,
                   "mfu": mfu(tokens_per_s, self.flops_per_token, self.peak * info.world_size)}
            self.history.train.append(row)
            self.bar.set_postfix_str(status(self.history), refresh=False)
            if self.callback:
                self.callback("train", row, self.model)
        self.loss_sum.zero_()
        self.steps_in_interval = self.timed_steps = 0
        self.interval_start = time.perf_counter()

    def evaluate_and_save(self) -> None:
        """The validation loss, a row of the history; and a checkpoint, unless they are written every N steps."""
        row = {"step": self.step, "val_loss": evaluate(self.model, self.val_batches, self.autocast)}
        if not math.isfinite(row["val_loss"]):
            self.check_finite()
            raise self.diverged(f"the validation loss became {row['val_loss']}", self.step)
        self.history.val.append(row)
        self.bar.set_postfix_str(status(self.history), refresh=False)
        if self.callback:
            self.callback("val", row, self.model)
        if self.measured_peak:  # one more look at the device's peak, while training is paused anyway
            self.peak = max(self.peak, refresh_peak(self.device, self.dtype))
        if self.config.checkpoint_interval == 0 and self.step > 0:
            self.save()

    def save(self) -> None:
        self.check_finite()  # a diverged model never overwrites the last good checkpoint
        try:
            self.saved_path = save_checkpoint(self.ckpt_path, self.model, self.step, self.optimizer, self.meta())
            self.saved_step = self.step
        except OSError as err:
            raise OutDirError(f"could not write the checkpoint {self.ckpt_path} ({err.strerror or err}); "
                              "the previous one, if any, is intact. Free some space or give another "
                              "--out-dir") from None

    def meta(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model_config": self.model.config.to_dict(),
            "tokenizer": self.data.tokenizer_meta,
            # the part of the interval not logged yet goes along, so a resumed run logs what an uninterrupted one does
            "history": {**self.history.to_dict(),
                        "unlogged": {"loss_sum": self.loss_sum.item(), "steps": self.steps_in_interval}},
            "world_size": self.info.world_size,
        }

    def check_finite(self) -> None:
        """Raise TrainingDiverged if a loss since the last check, or a weight, is not finite."""
        bad_step = int(self.nonfinite_at.item())
        if bad_step >= 0:
            raise self.diverged("the training loss became nan or inf", bad_step)
        if not torch.stack([p.isfinite().all() for p in self.model.parameters()]).all().item():
            raise self.diverged("the weights became nan or inf", self.step)

    def diverged(self, what: str, at_step: int) -> TrainingDiverged:
        self.bar.close()
        kept = (f"{self.saved_path} still holds the last good checkpoint (step {self.saved_step})"
                if self.saved_path else "no checkpoint was written")
        return TrainingDiverged(f"{what} at step {at_step}; training stopped, and {kept}. {DIVERGENCE_ADVICE}.",
                                at_step, self.saved_path)

    @contextmanager
    def paused(self):
        """Training time stops while the block runs: tokens/s counts training time only."""
        started = time.perf_counter()
        yield
        self.interval_start += time.perf_counter() - started


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
