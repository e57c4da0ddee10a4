"""Checkpoints: everything a run needs to continue, in one file that never unpickles.

One ``.safetensors`` file holds

* the tensors — the model's weights (``model.<name>``), the optimizer's moment
  estimates (``optimizer.<param index>.<key>``) and torch's random-number-generator
  states (``rng.cpu``, ``rng.cuda.<device>``);
* and, in the file's string metadata, JSON for the rest — the step, the training
  and model configurations, the optimizer's hyper-parameters, the
  tokenizer and the loss history.

Why not ``torch.save``? It pickles, and unpickling a file can run any code in it.
safetensors stores raw tensor bytes plus a JSON header, and JSON is only data.

Writes are atomic: the file is written in a private folder beside its destination
(``.ckpt-XXXX.partial/``, where safetensors also puts its own temporary), flushed to
disk, then renamed over the destination (``os.replace`` is atomic on POSIX and
Windows). A run killed mid-write leaves the previous checkpoint intact, and the next
run (or save) in that folder removes what the killed one left.

Checkpoints are what they say: the header holds a SHA-256 of every tensor's bytes and
of the rest of the header, checked on every load, so flipped bytes on a disk or in a
copy are refused instead of being trained on.

One run per folder: :func:`out_dir_lock` holds a lock file there (released by the
operating system when its process dies), so a second run on the same folder stops
at once and says which process holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from minigpt2.datafiles import replacing

FORMAT = "minigpt2-checkpoint-1"
TEMP_PREFIX = ".ckpt-"
TEMP_SUFFIX = ".partial"
LOCK_NAME = ".minigpt2.lock"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is damaged, or does not fit the model it is loaded into
    (the one such error of the package: :mod:`minigpt2.hf` raises it too)."""


class OutDirError(ValueError):
    """A checkpoint folder that cannot be written, or that another run is using."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` reads back (tensors on the CPU)."""

    step: int
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # config, model_config, tokenizer, history…
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
    config, the tokenizer and the loss history there).
    """
    path = Path(path)
    tensors, aliases = _model_tensors(model)
    tensors = {f"model.{name}": t for name, t in tensors.items()}
    header = {"format": FORMAT, "step": str(int(step)), "aliases": json.dumps(aliases)}
    if optimizer is not None:
        opt_tensors, opt_rest = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        header["optimizer"] = json.dumps(opt_rest)
    tensors.update(rng_state())
    header["meta"] = json.dumps(meta or {})

    header["checksum"] = checksum(tensors, header)

    with out_dir_lock(path.parent):  # no other run writes here meanwhile (already held when train() saves)
        with replacing(path, TEMP_PREFIX, TEMP_SUFFIX, durable=True) as written:
            save_file(tensors, str(written), metadata=header)  # safetensors' own temporary lands beside it, in ours
            os.chmod(written, 0o666 & ~_umask())  # an ordinary file, not one only its owner may read
    return path


def checksum(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> str:
    """SHA-256 of every tensor (name, dtype, shape, bytes) and of the header's other entries."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)  # the raw bytes, whatever the dtype
    for key in sorted(header):
        if key != "checksum":
            digest.update(f"{key}={header[key]}\n".encode())
    return "sha256:" + digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_leftovers(directory: Path) -> list[Path]:
    """Delete what killed saves left in ``directory``: the package's ``.ckpt-*.partial`` folders
    (and files, from earlier versions), and safetensors' ``.tmpXXXXXX`` siblings that earlier
    versions let it write next to the checkpoint. Call it only while holding the folder's lock."""
    removed = []
    for leftover in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    for leftover in directory.glob(".tmp??????"):
        if leftover.is_file() and not leftover.is_symlink() and _looks_like_safetensors(leftover):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (8 bytes) and the header's '{'."""
    try:
        with open(path, "rb") as f:
            return f.read(9)[8:] == b"{"
    except OSError:
        return False


# --------------------------------------------------------------------------- one run per folder

_held_locks: dict[str, int] = {}  # folder -> the lock file's descriptor, for the locks this process holds


@contextmanager
def out_dir_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Make ``directory`` (if needed), prove it writable, and hold its lock while the block runs.

    Raises :class:`OutDirError` when the folder cannot be made or written, or when another
    process holds the lock (the message names it). The lock is an OS lock (``flock``) on a file
    that names its holder: a run that dies, even by ``kill -9``, releases it, and the next run
    takes the file over. On entry, the leftovers of killed saves are removed. Re-entrant
    within one process.
    """
    directory = Path(directory)
    _make_dir(directory)
    key = str(directory.resolve())
    if key in _held_locks:
        yield directory
        return
    fd = _acquire(directory / LOCK_NAME)
    _held_locks[key] = fd
    try:
        remove_leftovers(directory)
        yield directory
    finally:
        del _held_locks[key]
        _release(fd, directory / LOCK_NAME)


def _make_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise OutDirError(f"the checkpoint folder {directory} is a file, not a folder; give another --out-dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutDirError(f"cannot create the checkpoint folder {directory}: part of that path is a file; give "
                          "another --out-dir") from None
    except OSError as err:
        raise OutDirError(
            f"cannot create the checkpoint folder {directory} ({err.strerror}); give another --out-dir"
        ) from None


def _acquire(path: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OutDirError(
                f"cannot write in the checkpoint folder {path.parent} ({err.strerror}); give another --out-dir"
            ) from None
        try:
            _lock(fd, path)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutDirError(
                f"another run is using {path.parent}: {holder or 'a process on this machine'} holds {path.name}. "
                "Wait for it to finish or stop it, or give this run another --out-dir"
            ) from None
        try:  # the previous holder may have removed the file between our open and our lock
            current = os.stat(path)
            mine = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    command = " ".join(sys.argv).replace("\n", " ") or "python"
    holder = f"process {os.getpid()} on {socket.gethostname()} ({command}), since {time.strftime('%H:%M:%S')}"
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode("utf-8", "replace"))
    return fd


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""


if os.name == "nt":  # pragma: no cover - Windows
    import msvcrt

    _LOCKED_BYTE = 1 << 20  # past the holder's text, which stays readable

    def _lock(fd: int, path: Path) -> None:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as err:  # held by another process
            raise BlockingIOError(str(err)) from None

    def _release(fd: int, path: Path) -> None:
        os.close(fd)  # releases the lock; Windows removes no open file
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
else:
    import fcntl

    def _lock(fd: int, path: Path) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: another process holds it
        except BlockingIOError:
            raise
        except OSError as err:  # a file system without locks (some network mounts): run, unguarded
            warnings.warn(f"cannot lock {path} ({err.strerror}): nothing stops a second run from using its folder",
                          stacklevel=4)

    def _release(fd: int, path: Path) -> None:
        path.unlink(missing_ok=True)  # before the lock goes: a waiting run then sees the file gone and retries
        os.close(fd)


# --------------------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; tensors stay on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not a minigpt2 checkpoint (no "
                                      f"'{FORMAT}' format tag)")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types for truncated or garbled files
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({err}); it may be truncated or not a checkpoint"
        ) from None
    if "checksum" in header and checksum(tensors, header) != header["checksum"]:  # files of older versions have none
        raise CheckpointError(
            f"{path} is damaged: its contents do not match the checksum written with them (bytes changed on the disk "
            "or in a copy). Use another copy of it, or train afresh in another folder"
        )

    try:
        return _from_file(header, tensors)
    except (KeyError, ValueError) as err:  # a header without its entries: not written by save_checkpoint
        raise CheckpointError(f"{path} is not a complete minigpt2 checkpoint ({type(err).__name__}: {err})") from None


def _from_file(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> Checkpoint:
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
    broken = sorted(name for name, t in checkpoint.model_state.items() if t.is_floating_point()
                    and not t.isfinite().all())
    if broken:
        raise CheckpointError(
            f"the checkpoint's weights hold nan or inf ({broken[0]}{' and others' if len(broken) > 1 else ''}): the "
            "run that wrote it had diverged. Use an earlier copy, or train afresh in another folder"
        )
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"the checkpoint does not fit this model: {str(err).splitlines()[0]} (same n_layer, "
                              "n_embd, vocab?)") from None
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise CheckpointError("this checkpoint holds no optimizer state, so training cannot resume from it")
        implementation = [{k: g.get(k) for k in ("fused", "foreach", "capturable")} for g in optimizer.param_groups]
        optimizer.load_state_dict(checkpoint.optimizer_state)
        for group, keep in zip(optimizer.param_groups, implementation):
            group.update(keep)
    if restore_rng:
        torch.set_rng_state(checkpoint.rng["rng.cpu"])
        cuda_keys = sorted((k for k in checkpoint.rng if k.startswith("rng.cuda.")),
                           key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda_states = [checkpoint.rng[k] for k in cuda_keys]
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


__all__ = [
    "Checkpoint", "CheckpointError", "OutDirError", "save_checkpoint", "load_checkpoint", "restore", "rng_state",
    "checksum", "out_dir_lock", "remove_leftovers",
]
