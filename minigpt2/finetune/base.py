"""The model to fine-tune, and continued pre-training (the simplest fine-tuning).

:func:`choose_base` decides where the base model comes from, without touching the network:

* a local directory in Hugging Face format: that one;
* a hub name ("gpt2", …) whose files are in the Hugging Face cache: loaded from there;
* a hub name, online and ``MINIGPT2_OFFLINE`` unset: downloaded;
* otherwise ``None``: the caller trains a small stand-in (:func:`train_small_base`), a GPT with
  GPT-2's tokenizer pre-trained for a few hundred steps on Tiny Shakespeare, and says so.

:func:`continue_pretraining` trains a model further on new text with the language-model loss,
through lesson 08's pieces (:class:`minigpt2.train.dataset.Batches`, AdamW, the schedule).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from minigpt2 import hf
from minigpt2.datafiles import offline
from minigpt2.finetune.loop import fit
from minigpt2.model import GPT, GPTConfig
from minigpt2.train.dataset import Batches, eval_batches
from minigpt2.train.loop import evaluate
from minigpt2.utils import set_seed

SMALL_BASE = dict(n_layer=2, n_head=2, n_embd=64, block_size=128)  # the stand-in when GPT-2 cannot be had


@dataclass(frozen=True)
class BaseChoice:
    source: str  # "directory" | "cache" | "download" | "none"
    path: Path | None  # where to load it from (None: download, or nothing to load)
    reason: str  # one sentence for the learner

    @property
    def available(self) -> bool:
        return self.source != "none"


def cached_hub_dir(name: str) -> Path | None:
    """The directory of hub checkpoint ``name`` in the Hugging Face cache, if its files are there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = [try_to_load_from_cache(f"{hf.HUB_ORGANISATION}/{name}", f) for f in (hf.CONFIG_FILE, hf.WEIGHTS_FILE)]
    if all(isinstance(f, str) for f in found):
        return Path(found[0]).parent
    return None


def choose_base(name_or_dir: str | os.PathLike = "gpt2") -> BaseChoice:
    """Where the base model can come from (see the module docstring); never uses the network."""
    path = Path(name_or_dir)
    if path.is_dir():
        return BaseChoice("directory", path, f"the model in {path}")
    name = str(name_or_dir)
    if name not in hf.HUB_NAMES:
        raise hf.CheckpointError(f"{name!r} is neither a directory nor a GPT-2 hub name ({', '.join(hf.HUB_NAMES)})")
    cached = cached_hub_dir(name)
    if cached is not None:
        return BaseChoice("cache", cached, f"OpenAI's {name} weights, from the Hugging Face cache")
    if not offline():
        return BaseChoice("download", None, f"OpenAI's {name} weights, downloaded from the Hugging Face hub")
    return BaseChoice("none", None, f"{name}'s weights are not in the Hugging Face cache and downloads are off "
                                    "(MINIGPT2_OFFLINE=1)")


def load_base(choice: BaseChoice, name: str = "gpt2") -> GPT:
    """The model ``choice`` points at."""
    if not choice.available:
        raise hf.CheckpointError(f"no base model to load: {choice.reason}")
    return GPT.from_pretrained(choice.path if choice.path is not None else name)


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


__all__ = ["BaseChoice", "SMALL_BASE", "cached_hub_dir", "choose_base", "load_base", "continue_pretraining",
           "train_small_base"]
