"""``nn.Linear``, plus a second layout of its weight for generating on a CPU.

Generating one token at a time multiplies one row, ``x`` (1, in), by every weight matrix: the
time goes into reading the weights, not into arithmetic. How fast a CPU reads them depends on
their layout. ``nn.Linear`` stores (out, in) and computes ``x @ W.T``; for the wide matrices of
GPT-2 (``c_attn`` 768 → 2304, ``c_fc`` 768 → 3072, the LM head 768 → 50257) the same product
from a contiguous (in, out) copy runs at 1.6–1.7× the bandwidth on the 2-core machine of
``benchmarks/RESULTS.md`` (the narrow ones, out <= in, are as fast or faster as they are).

:func:`decoding_layout` makes those (in, out) copies for the length of a generation and drops
them after: the weights themselves, their names and the checkpoints do not change.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    """``nn.Linear`` that reads ``row_weight`` — its weight as a contiguous (in, out) copy — when one is set."""

    row_weight: torch.Tensor | None = None  # (in_features, out_features), set by decoding_layout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.row_weight is None:
            return F.linear(x, self.weight, self.bias)  # (..., out)
        rows = x.reshape(-1, self.in_features)  # (N, in)
        out = rows @ self.row_weight if self.bias is None else torch.addmm(self.bias, rows, self.row_weight)  # (N, out)
        return out.view(*x.shape[:-1], self.out_features)  # (..., out)


@contextmanager
def decoding_layout(model: nn.Module):
    """Within the block, every wide :class:`Linear` of ``model`` on the CPU reads an (in, out) copy
    of its weight. For inference only: the copies do not follow changes to the weights."""
    wide = [m for m in model.modules()
            if isinstance(m, Linear) and m.weight.device.type == "cpu" and m.out_features > m.in_features]
    try:
        for m in wide:
            m.row_weight = m.weight.detach().t().contiguous()  # (in, out)
        yield
    finally:
        for m in wide:
            m.row_weight = None


__all__ = ["Linear", "decoding_layout"]
