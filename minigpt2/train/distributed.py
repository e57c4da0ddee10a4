"""Several processes, one model: what ``torchrun`` sets up and DistributedDataParallel needs.

``torchrun --nproc_per_node=N -m minigpt2.train …`` starts N copies of the training
script and tells each, through environment variables, who it is: ``RANK`` (0…N-1
over all machines), ``LOCAL_RANK`` (which GPU on this machine) and ``WORLD_SIZE``.
Each process joins a process group — NCCL between GPUs, gloo between CPU processes —
and DistributedDataParallel averages the gradients across the group during
``backward()``, so every copy of the model takes the same optimizer step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from minigpt2.utils import pick_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints; the others only train."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: str = "auto") -> DistInfo:
    """Pick the device and, under torchrun, join the process group.

    Under torchrun on GPUs, process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK``; the
    backend is NCCL on CUDA and gloo otherwise.
    """
    if not launched_by_torchrun():
        return DistInfo(device=pick_device(device))
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"process LOCAL_RANK={local_rank} has no GPU: only {torch.cuda.device_count()} are visible. "
                "Use --nproc_per_node at most the number of GPUs."
            )
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=chosen if chosen.type == "cuda" else None)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=chosen)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """The model DistributedDataParallel-wrapped when there are several processes, else as is."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def average(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Replace ``tensor`` in place by its mean over the processes (every process must call this)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= info.world_size
    return tensor


__all__ = ["DistInfo", "setup", "teardown", "wrap", "launched_by_torchrun", "average"]
