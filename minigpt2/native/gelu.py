"""GPT-2's tanh GELU on the CPU through the native kernel of ``gelu.c``, with its gradient.

The kernel takes float32 and bfloat16 tensors (the latter under bf16 autocast, where the layer
before hands GELU a bf16 tensor; it computes in float32 and rounds the result to bf16, as
PyTorch's bf16 GELU does). :func:`native_gelu` returns None when the kernel does not apply (another dtype or not a CPU
tensor,
inside ``torch.compile``, which fuses GELU itself, or no native library) and the caller
falls back to ``F.gelu(x, approximate="tanh")``: the two agree to float32 rounding.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from minigpt2.native import library

KERNELS = {  # dtype: (forward, backward) in gelu.c
    torch.float32: ("gelu_tanh_forward", "gelu_tanh_backward"),
    torch.bfloat16: ("gelu_tanh_forward_bf16", "gelu_tanh_backward_bf16"),
}


def _forward(lib, x: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(x)
    getattr(lib, KERNELS[x.dtype][0])(x.data_ptr(), y.data_ptr(), x.numel())
    return y


class _GELUTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        ctx.save_for_backward(x)
        return _forward(library(), x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        grad_y = grad_y.contiguous().to(x.dtype)
        grad_x = torch.empty_like(x)
        getattr(library(), KERNELS[x.dtype][1])(grad_y.data_ptr(), x.data_ptr(), grad_x.data_ptr(), x.numel())
        return grad_x


def native_gelu(x: torch.Tensor) -> torch.Tensor | None:
    """gelu(x) by the native kernel (differentiable once), or None where it does not apply."""
    if x.dtype not in KERNELS or x.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    lib = library()
    if lib is None:
        return None
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _forward(lib, x.contiguous())  # no graph to record: skip autograd's bookkeeping
    return _GELUTanh.apply(x)


__all__ = ["native_gelu"]
