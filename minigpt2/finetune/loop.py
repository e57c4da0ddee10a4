"""One small training loop for every kind of fine-tuning in lesson 11.

It is lesson 08's loop without what fine-tuning does not need (several processes, resuming):
AdamW over the parameters that train (:func:`minigpt2.train.make_optimizer`), warm-up and
cosine decay (:class:`minigpt2.train.WarmupCosine`), gradient clipping, and an evaluation now
and then. What a batch is and how its loss is computed is the caller's: ``loss_of(batch)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import torch

from minigpt2.train.optim import WarmupCosine, clip_grad_norm, make_optimizer


def fit(
    model: torch.nn.Module,
    loss_of: Callable[[object], torch.Tensor],
    batches: Iterable,
    steps: int,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    warmup: int = 0,
    grad_clip: float = 1.0,
    evaluate: Callable[[], dict] | None = None,
    eval_every: int = 0,
) -> list[dict]:
    """Train ``model`` for ``steps`` optimizer steps on ``batches`` (cycled when shorter).

    Returns the history: a row ``{"step", "train_loss"}`` per step, and after each evaluation
    (every ``eval_every`` steps and at the end, when ``evaluate`` is given) its dict joined in.
    """
    if steps < 1:
        raise ValueError(f"steps should be at least 1, got {steps}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("no parameter of the model trains (requires_grad is False everywhere): choose "
                         "what trains first")
    device_type = next(model.parameters()).device.type
    optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay, device_type=device_type)
    schedule = WarmupCosine(lr, lr / 10, warmup, steps)
    history: list[dict] = []
    model.train()
    for step, batch in zip(range(1, steps + 1), itertools.cycle(batches)):
        schedule.apply(optimizer, step - 1)
        loss = loss_of(batch)
        loss.backward()
        clip_grad_norm(model, grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        row = {"step": step, "train_loss": loss.item()}
        if evaluate is not None and (step == steps or (eval_every and step % eval_every == 0)):
            row.update(evaluate())
            model.train()
        history.append(row)
    model.eval()
    return history


__all__ = ["fit"]
