"""The optimizer and the learning-rate schedule.

AdamW with two parameter groups, as nanoGPT trains (common practice; GPT-2's paper does not publish its optimizer
settings):

* matrices (Linear weights, embeddings — every parameter with 2 or more dimensions)
  get weight decay: it pulls the weights that do the model's mixing towards zero;
* vectors (biases, LayerNorm gains and shifts) get none: decaying a LayerNorm gain
  towards 0 would fight the normalisation, and a bias has nothing to regularise.

The schedule: a linear warm-up from near 0 to ``max_lr`` (Adam's moment estimates are
noisy in the first steps, so big steps then are risky), then a cosine decay to
``min_lr`` by ``total_steps``, then flat at ``min_lr``::

    lr ▲   ┌──╮
       │  ╱    ╲__
       │ ╱         ╲___
       │╱               ‾‾‾‾──── min_lr
       └──────────────────────▶ step
        warmup   cosine decay
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: parameters with ``dim() >= 2`` decay by ``weight_decay``, the rest not at all.

    A tied weight (GPT-2's token embedding is also its LM head) is one parameter and
    appears once: ``model.parameters()`` yields shared tensors once.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay should be >= 0 (nanoGPT uses 0.1), got {weight_decay}")
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


FUSED_ADAMW_DEVICES = ("cuda", "cpu")  # where torch.optim.AdamW(fused=True) runs


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, with the fastest implementation the device has.

    On CUDA and on the CPU the fused kernel (one call updates every parameter; on the
    2-core CPU of ``benchmarks/RESULTS.md`` it is about 4x faster than ``foreach``);
    elsewhere (MPS) the ``foreach`` implementation (one op per kind of update across all
    parameters, instead of a Python loop over them). All three compute the same update.
    """
    if lr <= 0:
        raise ValueError(f"the learning rate should be positive, got {lr}")
    fused = device_type in FUSED_ADAMW_DEVICES and "fused" in inspect.signature(torch.optim.AdamW).parameters
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, **kwargs)


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate of (0-based) ``step``: linear warm-up, cosine decay, then ``min_lr``.

    Warm-up: step ``s < warmup_steps`` gets ``max_lr * (s + 1) / warmup_steps``, so the
    first step already moves and the last warm-up step reaches ``max_lr``.
    Decay: from ``max_lr`` at ``warmup_steps`` to ``min_lr`` at ``total_steps`` along half a cosine.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


class WarmupCosine:
    """:func:`lr_at` with its settings bound, and a JSON-friendly state for checkpoints.

    ``schedule(step)`` is the rate for that step; ``schedule.apply(optimizer, step)``
    sets it on every parameter group and returns it. The schedule is a pure function
    of the step, so resuming needs only the step and these settings.
    """

    def __init__(self, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int):
        if not 0 <= min_lr <= max_lr:
            raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps <= total_steps, got warmup_steps={warmup_steps}, total_steps={total_steps}; "
                "shorten the warm-up or train for more steps"
            )
        self.max_lr, self.min_lr = float(max_lr), float(min_lr)
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step: int) -> float:
        return lr_at(step, self.max_lr, self.min_lr, self.warmup_steps, self.total_steps)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def __repr__(self) -> str:
        return (
            f"WarmupCosine(max_lr={self.max_lr:g}, min_lr={self.min_lr:g}, "
            f"warmup_steps={self.warmup_steps}, total_steps={self.total_steps})"
        )


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor | None:
    """Scale all gradients down together when their global L2 norm exceeds ``max_norm``;
    return the norm before clipping (worth logging: spikes show trouble early).
    ``max_norm <= 0`` means no clipping: nothing is computed, and None is returned."""
    if max_norm <= 0:
        return None
    params = [p for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)


__all__ = ["param_groups", "make_optimizer", "lr_at", "WarmupCosine", "clip_grad_norm"]
