"""How much of the hardware a training run uses: model FLOPs utilisation (MFU).

MFU = (FLOPs the model needs per token × tokens per second) / the device's peak FLOP/s.

FLOPs per token of training (PaLM, appendix B; nanoGPT's ``estimate_mfu``)::

    6 N + 12 · n_layer · n_embd · T

* ``6 N``: every weight does one multiply-add (2 FLOPs) per token going forward and
  two going backward (gradients for the input and for the weight): 2 + 4 = 6.
  N counts the matrices a token is multiplied by: every parameter except the
  position embeddings (a table lookup, no multiply). The token embedding stays in:
  it is tied to the LM head, which is a full matrix product.
* ``12 · n_layer · n_embd · T``: attention's own products, q·kᵀ and weights·v, which
  have no parameters — 2 products × 2 FLOPs × n_embd × T keys, times 3 for backward.

The peak: a table of published dense bf16 figures for data-centre GPUs, and otherwise
a measurement — the best rate of large square matrix products on the device itself,
which is what a CPU or an unlisted GPU can really do.

A measurement is only as good as the moment it was taken: on a busy machine one
timing can come out at a third of the device's real rate, and MFU against it above
100 %. So the measured peak is the best of many rounds, it is measured again now and
then during a run (:func:`refresh_peak`, while evaluation pauses training) and only
ever goes up, and the training loop raises it to the rate training itself reached if
that was higher: MFU never exceeds 1, and the figure it is a fraction of is reported
with it.
"""

from __future__ import annotations

import time

import torch
from torch import nn

# Published dense (no sparsity) bf16 tensor-core peaks, FLOP/s. Longer names first:
# "H100 PCIe" must match before "H100".
KNOWN_BF16_PEAKS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def training_flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> float:
    """6·N + 12·n_layer·n_embd·T (see the module docstring); N excludes position embeddings."""
    return 6.0 * n_params + 12.0 * n_layer * n_embd * block_size


def model_flops_per_token(model: nn.Module, block_size: int | None = None) -> float:
    """:func:`training_flops_per_token` for a GPT (anything with ``.config`` and ``transformer.wpe``)."""
    config = model.config
    n_params = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()
    return training_flops_per_token(n_params, config.n_layer, config.n_embd, block_size or config.block_size)


def known_peak_flops(device_name: str, dtype: torch.dtype) -> float | None:
    """The published bf16 peak of a GPU named ``device_name``, or None if it is not listed."""
    if dtype != torch.bfloat16:
        return None
    for key, peak in KNOWN_BF16_PEAKS:
        if key.lower() in device_name.lower():
            return peak
    return None


_measured: dict[tuple[str, torch.dtype], float] = {}  # the best rate seen so far, per device and dtype
_measured_at: dict[tuple[str, torch.dtype], float] = {}  # when it was last measured (time.monotonic())


def measure_matmul_flops(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    size: int | None = None,
    repeats: int = 10,
    refresh: bool = False,
) -> float:
    """The best FLOP/s of ``size × size`` matrix products on ``device``.

    The best of ``repeats`` timings, not the mean: the machine's peak is what it reaches
    when nothing else gets in the way. With the default size, the result is the best of
    every measurement this process made on that device and dtype: later calls return it
    without measuring, unless ``refresh``, which measures again and keeps the higher figure.
    """
    device = torch.device(device)
    key = (str(device), dtype)
    if key in _measured and size is None and not refresh:
        return _measured[key]
    n = size or (1024 if device.type == "cpu" else 8192)
    generator = torch.Generator(device=device).manual_seed(0)  # leaves the global generator (dropout's) alone
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    inner = 2 if device.type == "cpu" else 20
    best = float("inf")
    for attempt in range(repeats + 1):
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        _synchronize(device)
        elapsed = (time.perf_counter() - start) / inner
        if attempt:  # the first round warms up caches and kernels
            best = min(best, elapsed)
    flops = 2.0 * n**3 / best
    if size is None:
        flops = max(flops, _measured.get(key, 0.0))
        _measured[key], _measured_at[key] = flops, time.monotonic()
    return flops


def refresh_peak(device: torch.device | str, dtype: torch.dtype = torch.float32, every_s: float = 30.0) -> float:
    """The best measured peak so far, measured once more if the last measurement is older than ``every_s``."""
    device = torch.device(device)
    key = (str(device), dtype)
    stale = time.monotonic() - _measured_at.get(key, float("-inf")) > every_s
    return measure_matmul_flops(device, dtype, repeats=2, refresh=stale)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def peak_flops(device: torch.device | str, dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """The device's peak FLOP/s for ``dtype`` and where the figure comes from."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        known = known_peak_flops(name, dtype)
        if known is not None:
            return known, f"published {dtype_name(dtype)} peak of the {name}"
        return measure_matmul_flops(device, dtype), f"measured {dtype_name(dtype)} matmul peak of the {name}"
    return measure_matmul_flops(device, dtype), f"measured {dtype_name(dtype)} matmul peak of the {device.type.upper()}"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def mfu(tokens_per_second: float, flops_per_token: float, peak: float) -> float:
    """The fraction of ``peak`` FLOP/s that training at ``tokens_per_second`` uses."""
    return tokens_per_second * flops_per_token / peak


__all__ = [
    "KNOWN_BF16_PEAKS",
    "training_flops_per_token",
    "model_flops_per_token",
    "known_peak_flops",
    "measure_matmul_flops",
    "refresh_peak",
    "peak_flops",
    "mfu",
]
