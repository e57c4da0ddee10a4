"""Which precision a training run computes in: ``--dtype auto`` decides by what the hardware does.

Mixed precision (bfloat16 autocast) runs the matrix products in bfloat16 — 8 bits of mantissa
instead of float32's 23, the same 8-bit exponent, so the same range — while the weights, their
gradients and the optimizer's state stay float32 (an update of 1e-4 of a weight of 1 would be lost
in bf16's ~3 significant digits). It pays where the hardware multiplies bf16 faster than float32:

* CUDA GPUs with bf16 tensor cores (``torch.cuda.is_bf16_supported()``): always;
* CPUs with bf16 matrix instructions (Intel AMX, AVX512-BF16; on Linux their ``/proc/cpuinfo``
  flags ``amx_bf16`` / ``avx512_bf16``): only when the model's matrix products are big enough
  for the faster products to outweigh the casts around them. At nanoGPT's 6 × 384 Shakespeare
  shape bf16 is about twice as fast on such a CPU; at the 4 × 128 one it is slower. So ``auto``
  keeps float32 for models that small (:data:`MIN_TIMED_FLOPS`) and for bigger ones
  times a few forward + backward passes of the run's own model, at its own batch, both ways,
  alternating, and keeps bf16 only if it is clearly faster (:data:`MIN_SPEEDUP`);
* everywhere else (most laptops, Apple's MPS): float32, without measuring.

:func:`choose_precision` returns the choice with the reason; ``minigpt2 train`` prints it and
``minigpt2 doctor`` reports what the CPU offers.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names for bf16 matrix instructions
MIN_SPEEDUP = 1.15  # bf16 must be this much faster, measured, for auto to take it (noise margin)
# Matrix-product FLOPs of one forward + backward (6 x weights x tokens) at or below which auto does not
# even time bf16: on an AMX CPU the 4 x 128 model (0.8M weights) ran 0.78x as fast in bf16 at 12 x 64
# tokens (3.7 GFLOP) and 0.75x at the shakespeare-char preset's 16 x 64 (5.0 GFLOP), while the 4 x 256
# preset's 39 GFLOP ran 1.57x (benchmarks/RESULTS.md): models this small keep float32, deterministically.
MIN_TIMED_FLOPS = 6e9
ROUNDS = 3  # alternating timed passes per precision


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 matrix-instruction flags (Linux ``/proc/cpuinfo``); empty elsewhere or if none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in BF16_CPU_FLAGS if f in present]
    return []


def autocast_context(device: torch.device, dtype: torch.dtype):
    """Mixed precision: matmuls in ``dtype``, weights and optimizer state stay float32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def time_passes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, rounds: int = ROUNDS) -> dict[torch.dtype,
                                                                                                        list[float]]:
    """Seconds of one forward + backward of ``model`` on (x, y), float32 and under bf16 autocast,
    alternating (so that load from other programs lands on both alike), after one warm-up each.
    Gradients are cleared and the random state (dropout's) is left as it was."""
    device = x.device
    times: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for r in range(rounds + 1):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for dtype in order:
                start = time.perf_counter()
                with autocast_context(device, dtype):
                    _, loss = model(x, y)
                loss.backward()
                if r:  # round 0 warms up kernels and the allocator
                    times[dtype].append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return times


def choose_precision(requested: str, device: torch.device, model: torch.nn.Module | None = None,
                     batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> Precision:
    """The dtype to train in for ``--dtype requested`` ("auto", "float32", "bfloat16"), and why.

    For "auto" on a CPU with bf16 instructions, ``model`` and one micro-batch ``batch`` (x, y)
    are timed both ways (:func:`time_passes`); without them, float32.
    """
    if requested == "float32":
        return Precision(torch.float32, "asked for (--dtype float32)")
    if requested == "bfloat16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU has no bfloat16 support; use --dtype float32")
        return Precision(torch.bfloat16, "asked for (--dtype bfloat16)")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision(torch.bfloat16, "this GPU has bf16 tensor cores")
        return Precision(torch.float32, "this GPU has no bf16 support")
    if device.type != "cpu":
        return Precision(torch.float32, f"bf16 autocast is not used on {device.type}")
    flags = cpu_bf16_flags()
    if not flags:
        return Precision(torch.float32, "this CPU has no bf16 matrix instructions (AMX or AVX512-BF16)")
    if model is None or batch is None:
        return Precision(torch.float32, f"this CPU has {'/'.join(flags)}, but no model was given to time")
    flops = 6 * sum(p.numel() for p in model.parameters()) * batch[0].numel()
    if flops <= MIN_TIMED_FLOPS:
        return Precision(torch.float32, f"this CPU has {'/'.join(flags)}, but at {flops / 1e9:.1f} GFLOP a pass "
                         "this model is too small for bf16 to pay")
    times = time_passes(model, *batch)
    ratios = [f / b for f, b in zip(times[torch.float32], times[torch.bfloat16])]
    speedup = statistics.median(ratios)
    measured = (f"this CPU has {'/'.join(flags)}; one forward + backward of this model took "
                f"{statistics.median(times[torch.float32]) * 1e3:.0f} ms in float32, "
                f"{statistics.median(times[torch.bfloat16]) * 1e3:.0f} ms under bf16 autocast ({speedup:.2f}x)")
    if speedup >= MIN_SPEEDUP:
        return Precision(torch.bfloat16, measured)
    return Precision(torch.float32, f"{measured}: bf16 does not pay at this size")


__all__ = ["Precision", "choose_precision", "cpu_bf16_flags", "autocast_context", "time_passes", "MIN_SPEEDUP",
           "MIN_TIMED_FLOPS", "BF16_CPU_FLAGS"]
