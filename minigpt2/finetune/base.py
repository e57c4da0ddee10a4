"""The stand-in base model, and continued pre-training (the simplest fine-tuning).

Which base model runs is :func:`minigpt2.utils.pretrained_or_local`'s choice (GPT-2's weights, a
local Hugging Face directory, or a local model), as in lessons 07, 09 and 10. Lesson 11's local
model is :func:`train_small_base`: a GPT with GPT-2's tokenizer pre-trained from scratch here.

:func:`continue_pretraining` trains a model further on new text with the language-model loss,
through lesson 08's pieces (:class:`minigpt2.train.dataset.Batches`, AdamW, the schedule).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from minigpt2.finetune.loop import fit
from minigpt2.model import GPT, GPTConfig
from minigpt2.train.dataset import Batches, eval_batches
from minigpt2.train.loop import evaluate
from minigpt2.utils import set_seed

SMALL_BASE = dict(n_layer=2, n_head=2, n_embd=64, block_size=128)  # the stand-in when GPT-2 cannot be had


def continue_pretraining(model: GPT, train_tokens: torch.Tensor, val_tokens: torch.Tensor, steps: int,
                         batch_size: int = 8, block_size: int | None = None, lr: float = 1e-3, seed: int = 0,
                         eval_every: int = 0, eval_batches_n: int = 4) -> list[dict]:
    """Train ``model`` further on a token stream with the next-token loss; returns the history
    (``val_loss`` on the same fixed validation windows at each evaluation)."""
    block_size = block_size or model.config.block_size
    batches = Batches(train_tokens, batch_size, block_size, seed=seed, device=next(model.parameters()).device)
    val = eval_batches(val_tokens, eval_batches_n, batch_size, block_size, seed, next(model.parameters()).device)
    return fit(model, lambda step: model(*batches(step, 0))[1], range(steps), steps, lr=lr,
               warmup=min(steps // 10, 50), evaluate=lambda: {"val_loss": evaluate(model, val, nullcontext())},
               eval_every=eval_every)


def train_small_base(tokens: torch.Tensor, steps: int, seed: int = 1337, lr: float = 3e-3, batch_size: int = 16,
                     **shape) -> tuple[GPT, list[dict]]:
    """A small GPT with GPT-2's vocabulary (:data:`SMALL_BASE`, or ``shape``) pre-trained from
    scratch on ``tokens`` for ``steps`` steps: the stand-in for GPT-2 when its weights are not here."""
    set_seed(seed)
    model = GPT(GPTConfig(**{**SMALL_BASE, **shape}))
    n_val = max(len(tokens) // 20, model.config.block_size + 1)
    history = continue_pretraining(model, tokens[:-n_val], tokens[-n_val:], steps, batch_size=batch_size, lr=lr,
                                   seed=seed)
    return model, history


__all__ = ["SMALL_BASE", "continue_pretraining", "train_small_base"]
