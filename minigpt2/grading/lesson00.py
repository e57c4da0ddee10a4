"""Checks of lesson 00 (welcome): three warm-ups that walk through read, attempt, check, grade."""

from __future__ import annotations

import torch

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor
from minigpt2.i18n.messages import _


@exercise("00.1", "Bytes in a string", points=1, name="utf8_length")
def check_utf8_length(utf8_length):
    for text in ["hello", "", "naïve café", "你好，世界", "GPT-2 🤖", "a\nb\tc"]:
        got = call(utf8_length, text)
        expect_equal(
            got,
            len(text.encode("utf-8")),
            what=f"utf8_length({text!r})",
            mistakes=[
                Mistake(len(text), _("you counted characters (len(text)), not bytes: encode the text to UTF-8 first, "
                        "then count. 'é' is one character but two bytes."))
            ]
            if len(text) != len(text.encode("utf-8"))
            else [],
        )


@exercise("00.2", "Parameters of a linear layer", points=1, name="count_linear_params")
def check_count_linear_params(count_linear_params):
    for n_in, n_out, bias in [(768, 3072, True), (768, 50257, False), (3, 5, True), (1, 1, False)]:
        got = call(count_linear_params, n_in, n_out, bias)
        expected = sum(p.numel() for p in torch.nn.Linear(n_in, n_out, bias=bias, device="meta").parameters())
        mistakes = [
            Mistake(n_in * n_out + n_in,
                    _("the bias has one entry per OUTPUT feature (n_out), not per input feature.")),
            Mistake(n_in * n_out + n_out, _("with bias=False there is no bias vector: count only the weight matrix.")),
            Mistake(n_in * n_out, _("you forgot the bias: it adds n_out parameters when bias=True.")),
        ]
        expect_equal(got, expected, what=f"count_linear_params({n_in}, {n_out}, bias={bias})",
                     mistakes=[m for m in mistakes if m.output != expected])


def _reference_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.double(), dim=-1).to(x.dtype)


SOFTMAX = (  # every finished softmax: the functional, method and special forms, the log form, and the grader's own
    "torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
    "torch.log_softmax", "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax", "torch._softmax",
    "minigpt2.grading.lesson00._reference_softmax",
)


@exercise("00.3", "A numerically stable softmax", points=2, name="softmax", forbid=SOFTMAX)
def check_softmax(softmax):
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(5, generator=generator),
        torch.randn(3, 4, generator=generator),
        torch.randn(2, 3, 7, generator=generator) * 3,
    ]
    for x in inputs:
        got = call(softmax, x.clone())
        expect_tensor(
            got,
            _reference_softmax(x),
            what=_("softmax of a tensor of shape {x_shape}").format(x_shape=tuple(x.shape)),
            mistakes=[
                Mistake(torch.exp(x),
                        _("you return exp(x) without dividing by the sum: the outputs must add up to 1.")),
                Mistake(torch.softmax(x, dim=0), _("the softmax is taken over the wrong axis: normalise over the "
                        "LAST dimension (dim=-1), so that each row adds up to 1.")),
                Mistake(torch.exp(x) / torch.exp(x).sum(), _("you divided by the sum over the whole tensor; divide "
                        "each row by its own sum (sum over dim=-1 with keepdim=True).")),
            ],
        )
    big = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    got = call(softmax, big.clone())
    if isinstance(got, torch.Tensor) and torch.isnan(got).any():
        raise CheckFailed(
            _("your softmax gives NaN for large inputs such as [1000, 1001, 1002]: exp(1000) overflows to inf and "
                    "inf/inf is NaN. Subtract each row's maximum before exponentiating; the result is the same, "
                    "and nothing overflows.")
        )
    expect_tensor(got, _reference_softmax(big), what="softmax([[1000, 1001, 1002], [-1000, 0, 1000]])")
