"""LoRA (Hu et al., 2021): fine-tune a big ``nn.Linear`` through a small low-rank update.

A frozen weight W (out, in) gets a trainable update B @ A, with A (r, in) and B (out, r)
and r much smaller than in and out::

    y = x W^T + b  +  (alpha / r) · x A^T B^T

B starts at zero, so a freshly wrapped layer computes exactly what it did before and training
starts from the pre-trained model. Only A and B train: r · (in + out) numbers instead of
in · out, and the optimizer keeps its two moments for those alone. After training,
:func:`merge_lora` folds the update into the weight, W + (alpha / r) · B @ A, and the model is
a plain GPT again, as fast as before and savable in Hugging Face's format.

The layout and initialisation are peft's (``LoraConfig``, ``get_peft_model``): A drawn like
``nn.Linear``'s weight (Kaiming uniform), B zero, ``scaling = alpha / r``, dropout on the
input of the update, every other parameter frozen. tests/test_lora.py checks that the same A
and B give peft's logits on transformers' ``GPT2LMHeadModel`` (``fan_in_fan_out=True``, as
its projections are ``Conv1D`` layers storing W as (in, out)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    """``base`` (an ``nn.Linear``, frozen) plus the trainable low-rank update ``lora_B @ lora_A``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        check_rank(r, alpha, dropout)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got a {type(base).__name__}")
        self.base = base
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))  # (r, in)
        # (out, r): zero, so no change at first
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) initialise a weight
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The update the layer adds to ``base.weight``: scaling · B @ A, (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)  # (..., in) -> (..., r) -> (..., out)
        return self.base(x) + self.scaling * update  # (..., out)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing what this layer computes (without dropout)."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        out.weight.requires_grad_(self.base.weight.requires_grad)
        if out.bias is not None:
            out.bias.requires_grad_(self.base.bias.requires_grad)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def check_rank(r, alpha, dropout=0.0) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"the LoRA rank r should be a positive integer (e.g. 8), got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"the LoRA alpha should be a positive number (e.g. 2 * r = {2 * r}), got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"the LoRA dropout should be a probability in [0, 1), got {dropout!r}")


def _matches(name: str, target: str) -> bool:
    """peft's rule: a module matches a target when its full name is it or ends with '.' + it."""
    return name == target or name.endswith("." + target)


def apply_lora(model: nn.Module, r: int, alpha: float, targets: Sequence[str], dropout: float = 0.0) -> nn.Module:
    """Replace each ``nn.Linear`` of ``model`` named by ``targets`` (full names, or their last
    parts: ``"c_attn"`` matches every ``transformer.h.N.attn.c_attn``) by a :class:`LoRALinear`,
    and freeze every other parameter. Returns ``model``, changed in place.

    A target that matches no layer, or a layer that is not an ``nn.Linear``, is an error that
    lists the Linear layers there are. A layer already wrapped is an error too (LoRA twice).
    """
    check_rank(r, alpha, dropout)
    if isinstance(targets, str):
        targets = [targets]
    targets = list(targets)
    if not targets:
        raise ValueError("give at least one target layer, e.g. targets=['c_attn']")
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("this model already has LoRA layers: merge_lora(model) first, or start from a fresh model")
    chosen: list[str] = []
    for target in targets:
        found = [n for n, m in model.named_modules() if _matches(n, target)]
        if not found:
            short = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
            raise ValueError(f"no layer of the model is named {target!r}; its Linear layers are {short} "
                             f"(or a full name such as {linear_names[0]!r})" if linear_names else
                             f"no layer of the model is named {target!r}, and it has no Linear layers")
        not_linear = [n for n in found if not isinstance(model.get_submodule(n), nn.Linear)]
        if not_linear:
            raise ValueError(f"LoRA wraps nn.Linear layers, but {not_linear[0]!r} is a "
                             f"{type(model.get_submodule(not_linear[0])).__name__}")
        chosen += [n for n in found if n not in chosen]
    for param in model.parameters():
        param.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's LoRA layers by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its layer's weight: each :class:`LoRALinear` becomes a plain
    ``nn.Linear`` with ``W + scaling · B @ A``. Returns ``model``, changed in place; the
    parameters keep the ``requires_grad`` they had (the base weights stay frozen).

    Merging a model that has no LoRA layers (merged already, or never wrapped) is an error:
    folding the same update in twice would double it.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("this model has no LoRA layers to merge: was it merged already? (merging twice would add "
                         "the update twice; apply_lora(model, ...) first)")
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.merged())
    return model


def trainable_parameters(model: nn.Module) -> int:
    """How many numbers the optimizer updates (parameters with ``requires_grad``; a tied one counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adam_state_bytes(model: nn.Module) -> int:
    """Bytes of AdamW's state for ``model``'s trainable parameters: two moments, each as large as
    the parameter (the step counters aside)."""
    return sum(2 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


__all__ = ["LoRALinear", "apply_lora", "merge_lora", "lora_layers", "trainable_parameters", "adam_state_bytes",
           "check_rank"]
