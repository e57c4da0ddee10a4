"""Checkpoints: everything a run needs to continue, in one file that never unpickles.

One ``.safetensors`` file holds

* the tensors — the model's weights (``model.<name>``), the optimizer's moment
  estimates (``optimizer.<param index>.<key>``) and torch's random-number-generator
  states (``rng.cpu``, ``rng.cuda.<device>``);
* and, in the file's string metadata, JSON for the rest — the step, the training
  and model configurations, the optimizer's hyper-parameters, the schedule, the
  tokenizer and the loss history.

Why not ``torch.save``? It pickles, and unpickling a file can run any code in it.
safetensors stores raw tensor bytes plus a JSON header, and JSON is only data.

Writes are atomic: the file is written beside its destination under a temporary
name, flushed to disk, then renamed over the destination (``os.replace`` is atomic
on POSIX and Windows). A run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

FORMAT = "minigpt2-checkpoint-1"
TEMP_PREFIX = ".ckpt-"
TEMP_SUFFIX = ".partial"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` reads back (tensors on the CPU)."""

    step: int
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # config, model_config, scheduler, tokenizer, history…
    optimizer_state: dict | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)


# --------------------------------------------------------------------------- saving


def _model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with each shared tensor stored once: (tensors, {alias: stored name}).

    GPT-2 ties ``lm_head.weight`` to ``transformer.wte.weight``; safetensors refuses to
    store two names for one memory, so the second name is kept as an alias.
    """
    tensors, aliases, seen = {}, {}, {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.device)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().contiguous().cpu()
    return tensors, aliases


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's tensors (per-parameter state) and the JSON rest (groups, scalar state)."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def rng_state() -> dict[str, torch.Tensor]:
    """torch's generator states: the CPU one and one per visible CUDA device.

    These drive dropout (and anything else drawn from torch's default generator).
    Training batches come from a generator seeded by the step (see ``loop.py``),
    so they need no saved state.
    """
    states = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"rng.cuda.{i}"] = state
    return states


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and ``optimizer``, RNG states, ``meta``) to ``path``, atomically.

    ``meta`` is any JSON-serialisable dict (the loop stores its config, the model's
    config, the schedule, the tokenizer and the loss history there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _model_tensors(model)
    tensors = {f"model.{name}": t for name, t in tensors.items()}
    header = {"format": FORMAT, "step": str(int(step)), "aliases": json.dumps(aliases)}
    if optimizer is not None:
        opt_tensors, opt_rest = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        header["optimizer"] = json.dumps(opt_rest)
    tensors.update(rng_state())
    header["meta"] = json.dumps(meta or {})

    _remove_stale_temporaries(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=header)
        os.chmod(tmp_name, 0o666 & ~_umask())  # the temporary is private (0o600); a checkpoint is an ordinary file
        with open(tmp_name, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete half-written files a killed run left behind."""
    for leftover in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


# --------------------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; tensors stay on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first (minigpt2 train …) or give the right --out-dir / path")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not a minigpt2 checkpoint (no '{FORMAT}' format tag)")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types for truncated or garbled files
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({err}); it may be truncated or not a checkpoint") from None

    model_state = {k[len("model."):]: t for k, t in tensors.items() if k.startswith("model.")}
    for alias, stored in json.loads(header["aliases"]).items():
        model_state[alias] = model_state[stored]
    optimizer_state = None
    if "optimizer" in header:
        optimizer_state = _optimizer_state(json.loads(header["optimizer"]), tensors)
    rng = {k: t for k, t in tensors.items() if k.startswith("rng.")}
    return Checkpoint(
        step=int(header["step"]),
        model_state=model_state,
        meta=json.loads(header.get("meta", "{}")),
        optimizer_state=optimizer_state,
        rng=rng,
    )


def _optimizer_state(rest: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Rebuild ``optimizer.state_dict()`` from its JSON part and its tensors."""
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def restore(
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> None:
    """Load a checkpoint's weights into ``model`` (strictly: every name must match), its
    optimizer state into ``optimizer``, and its RNG states into torch's generators.

    The optimizer keeps its own implementation choice (``fused`` / ``foreach``), so a
    checkpoint written on a GPU resumes on a CPU and the other way round.
    """
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"the checkpoint does not fit this model: {str(err).splitlines()[0]} (same n_layer, n_embd, vocab?)") from None
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise CheckpointError("this checkpoint holds no optimizer state, so training cannot resume from it")
        implementation = [{k: g.get(k) for k in ("fused", "foreach", "capturable")} for g in optimizer.param_groups]
        optimizer.load_state_dict(checkpoint.optimizer_state)
        for group, keep in zip(optimizer.param_groups, implementation):
            group.update(keep)
    if restore_rng:
        torch.set_rng_state(checkpoint.rng["rng.cpu"])
        cuda_keys = sorted((k for k in checkpoint.rng if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda_states = [checkpoint.rng[k] for k in cuda_keys]
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "restore", "rng_state"]
