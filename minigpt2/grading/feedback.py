"""Comparing a learner's answer with the reference, and saying what is wrong.

The central idea: a check knows the common mistakes of an exercise and computes
what each would have produced on the same input (a :class:`Mistake`). When the
learner's answer is wrong but equals one of those, the check names that mistake
("softmax over the wrong axis") instead of printing two tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from minigpt2.grading.core import CheckFailed
from minigpt2.i18n.messages import _


def seeded_randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """A check's input: ``scale`` times standard normal float64 numbers of ``shape``, the same for a seed."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@dataclass
class Mistake:
    output: Any  # what the mistaken implementation returns on the same input
    message: str  # what to tell the learner


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return False
        if a.is_floating_point() or b.is_floating_point():
            return torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=False)
        return torch.equal(a, b)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= atol + rtol * abs(float(b))
        except (TypeError, ValueError):
            return False
    try:
        return bool(a == b)
    except Exception:
        return False


def name_mistake(got: Any, mistakes: list[Mistake], atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise CheckFailed with the message of the first mistake ``got`` matches."""
    for mistake in mistakes:
        if _close(got, mistake.output, atol, rtol):
            raise CheckFailed(mistake.message)


def _broadcast_by_accident(got: torch.Size, expected: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(got, expected) == got != expected
    except RuntimeError:
        return False


def _index(flat: int, shape) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape))


def broken_property(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Which property of the reference ``got`` breaks, in words — rows that should be probabilities
    and do not sum to 1 (the wrong axis, the whole tensor), a future position with weight — or None."""
    g, e = got.double(), expected.double()
    if e.dim() >= 1 and e.numel() and e.size(-1) > 1 and bool((e >= 0).all()):
        ones = torch.ones_like(e.sum(-1))
        if torch.allclose(e.sum(-1), ones, atol=1e-6) and not torch.allclose(g.sum(-1), ones, atol=1e-4):
            if g.dim() >= 2 and torch.allclose(g.sum(-2), torch.ones_like(g.sum(-2)), atol=1e-4):
                return (_("each COLUMN adds up to 1 instead of each row: you normalised over the wrong axis. Each "
                        "query's weights (the last axis) must sum to 1: dim=-1."))
            if abs(g.sum().item() - 1) < 1e-4 and e.numel() > e.size(-1):
                return (_("the whole tensor adds up to 1: you normalised over everything at once. Normalise each row "
                        "on its own (a sum over dim=-1 with keepdim=True)."))
            sums = g.sum(-1)
            bad = _index(int(torch.argmax((sums - 1).abs().nan_to_num(float("inf")))), sums.shape)
            return (_("each row should add up to 1 (they are probabilities), but row {bad} adds up to "
                      "{total:.4g}.").format(bad=bad, total=sums[bad].item()))
    if e.dim() >= 2 and e.size(-1) == e.size(-2) > 1:
        future = torch.ones(e.shape[-2:], dtype=torch.bool).triu(1)
        if bool((e[..., future] == 0).all()) and bool((g[..., future] != 0).any()):
            leaks = (g != 0) & future
            where = _index(int(torch.nonzero(leaks.reshape(-1))[0]), g.shape)
            return (_("at {where} query {query} puts weight {weight:.3g} on key {key}, a FUTURE position: every key "
                    "after the query must get exactly 0 (the causal mask).").format(
                    where=where, query=where[-2], weight=g[where].item(), key=where[-1]))
    return None


def expect_tensor(
    got: Any,
    expected: torch.Tensor,
    *,
    what: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    mistakes: list[Mistake] = (),
    check_dtype: bool = False,
) -> None:
    """``got`` must be a tensor equal to ``expected``; otherwise say how it differs (``what``: the
    result's name in the message, "the result" by default)."""
    what = _("the result") if what is None else what
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(_("{what} should be a torch.Tensor, but it is a {got_type}.").format(
            what=what, got_type=type(got).__name__))
    mistakes = list(mistakes)
    if tuple(got.shape) != tuple(expected.shape):
        name_mistake(got, mistakes, atol, rtol)
        accident = (_(" A shape broadcast by accident? Adding or multiplying a (T,) and a (T, 1) tensor gives (T, "
                "T); keepdim=True keeps the axis a reduction removes.")
                    if _broadcast_by_accident(got.shape, expected.shape) else "")
        raise CheckFailed(_("{what} has shape {got_shape}, but it should have shape "
                            "{expected_shape}.{accident}").format(
            what=what, got_shape=tuple(got.shape), expected_shape=tuple(expected.shape), accident=accident))
    if check_dtype and got.dtype != expected.dtype:
        raise CheckFailed(_("{what} has dtype {got_dtype}, but it should have dtype {expected_dtype}.").format(
            what=what, got_dtype=got.dtype, expected_dtype=expected.dtype))
    if got.is_floating_point() and torch.isnan(got).any() and not torch.isnan(expected).any():
        name_mistake(got, mistakes, atol, rtol)
        raise CheckFailed(_("{what} contains NaN where the reference has numbers: look for 0/0, log(0) or exp of a "
                "huge value.").format(what=what))
    if _close(got, expected.to(got.dtype) if got.is_floating_point() else expected, atol, rtol):
        return
    name_mistake(got, mistakes, atol, rtol)
    broken = broken_property(got, expected)
    if broken is not None:
        raise CheckFailed(_("{what} is wrong: {broken}").format(what=what, broken=broken))
    diff = (got.double() - expected.double()).abs()
    where = tuple(int(i) for i in torch.unravel_index(torch.argmax(diff.nan_to_num(float("inf"))), diff.shape))
    raise CheckFailed(
        _("{what} has the right shape but the wrong values: at index {where} it is {got:.6g} where the reference "
                "gives {expected:.6g} (largest difference {diff_max:.3g}).").format(
                what=what, where=where, got=got[where].item(), expected=expected[where].item(),
                diff_max=diff.max().item())
    )


def expect_equal(got: Any, expected: Any, *, what: str | None = None, mistakes: list[Mistake] = ()) -> None:
    """``got`` must equal ``expected`` (plain Python values); otherwise say how it differs."""
    what = _("the result") if what is None else what
    if _close(got, expected, 0.0, 0.0):
        return
    name_mistake(got, list(mistakes), 0.0, 0.0)
    if type(got) is not type(expected) and not (isinstance(got, (int, float)) and isinstance(expected, (int, float))):
        raise CheckFailed(_("{what} should be a {expected_type}, but it is a {got_type} ({got!r}).").format(
            what=what, expected_type=type(expected).__name__, got_type=type(got).__name__, got=got))
    raise CheckFailed(_("{what} is {got!r}, but it should be {expected!r}.").format(
        what=what, got=got, expected=expected))
