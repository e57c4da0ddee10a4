"""Checks of lesson 05 (the feed-forward network): GELU in GPT-2's tanh form, the MLP's forward
pass, its parameter count."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor
from minigpt2.i18n.messages import _
from minigpt2.layers import MLP, gelu

# --------------------------------------------------------------------------- 05.1


def _tanh_gelu(x, outer=0.5, cubic_power=3, scale=math.sqrt(2 / math.pi), times_x=True):
    """GPT-2's GELU with one piece changeable, to build each mistake's output."""
    gate = 0.5 * (1 + torch.tanh(scale * (x + 0.044715 * x**cubic_power)))
    return (outer / 0.5) * x * gate if times_x else gate


def _gelu_inputs():
    yield torch.linspace(-5, 5, 1001, dtype=torch.float64)
    yield torch.randn(3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    yield torch.tensor([-30.0, -8.0, -0.75, 0.0, 1e-3, 0.5, 8.0, 30.0], dtype=torch.float64)


@exercise("05.1", "GELU, the tanh form", points=1, name="gelu",
          forbid=("torch.nn.functional.gelu", "minigpt2.layers.gelu", "minigpt2.layers.GELU"))
def check_gelu(gelu_fn):
    for x in _gelu_inputs():
        mistakes = [
            Mistake(x * 0.5 * (1 + torch.erf(x / math.sqrt(2))), _("that is the exact GELU, x·Φ(x) with erf. GPT-2 "
                    "uses the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).")),
            Mistake(torch.relu(x), _("that is ReLU, max(0, x). GELU is smooth: 0.5·x·(1 + tanh(√(2/π)·(x + "
                    "0.044715·x³))).")),
            Mistake(x * torch.sigmoid(1.702 * x), _("that is the sigmoid approximation x·σ(1.702·x); GPT-2 uses the "
                    "tanh form.")),
            Mistake(_tanh_gelu(x, outer=1.0), _("you forgot the factor 0.5 in front: 0.5·x·(1 + tanh(…)).")),
            Mistake(_tanh_gelu(x, cubic_power=2), _("the correction term is 0.044715·x³ (x cubed), not x².")),
            Mistake(_tanh_gelu(x, scale=math.sqrt(math.pi / 2)), _("the scale inside tanh is √(2/π) ≈ 0.798, not "
                    "√(π/2).")),
            Mistake(_tanh_gelu(x, times_x=False), _("you returned the gate, 0.5·(1 + tanh(…)) ≈ Φ(x), without "
                    "multiplying by x: GELU(x) = x·Φ(x).")),
        ]
        original = x.clone()
        got = call(gelu_fn, x)
        if not torch.equal(x, original):
            raise CheckFailed(_("your gelu changed its input tensor in place; compute a new tensor instead."))
        expect_tensor(got, gelu(x), what=_("gelu(x) for x of shape {x_shape}").format(x_shape=tuple(x.shape)),
                      atol=1e-6, rtol=1e-5, mistakes=mistakes)


# --------------------------------------------------------------------------- 05.2


class MLPParameters:
    """What the learner's forward pass gets: the MLP's two layers, not the MLP to call."""

    def __init__(self, mlp: MLP):
        self.c_fc, self.c_proj = mlp.c_fc, mlp.c_proj

    def __call__(self, *args, **kwargs):
        raise TypeError(_("calling mlp(x) would use the package's answer; compute it from mlp.c_fc and mlp.c_proj "
                "yourself"))


@exercise("05.2", "The MLP's forward pass", points=1, name="mlp_forward", forbid=("minigpt2.layers.MLP",))
def check_mlp_forward(mlp_forward):
    for seed, (B, T, C) in enumerate([(2, 5, 8), (1, 7, 12), (3, 4, 6)]):
        torch.manual_seed(seed)
        mlp = MLP(SimpleNamespace(n_embd=C, bias=True, dropout=0.0)).double().eval()
        with torch.no_grad():  # biases that matter
            mlp.c_fc.bias.normal_()
            mlp.c_proj.bias.normal_()
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64) * 2
        fc, proj = mlp.c_fc, mlp.c_proj
        with torch.no_grad():
            expected = mlp(x)
            mistakes = [
                Mistake(proj(torch.relu(fc(x))), _("you used ReLU; GPT-2's MLP uses GELU in the tanh form.")),
                Mistake(proj(F.gelu(fc(x))), _("you used the exact GELU (F.gelu / nn.GELU() with erf); GPT-2 uses "
                        "the tanh form, F.gelu(h, approximate='tanh') or your own gelu.")),
                Mistake(proj(fc(x)), _("there is no nonlinearity between the layers: without GELU the two linear "
                        "layers collapse into one.")),
                Mistake(gelu(fc(x)), _("you stopped after the GELU: project the 4·C hidden units back to C with "
                        "c_proj.")),
                Mistake(gelu(proj(gelu(fc(x)))), _("GELU goes between the two layers only, not after c_proj.")),
                Mistake(gelu(proj(fc(x))), _("GELU goes between the layers (after c_fc), not after c_proj.")),
                Mistake(F.linear(gelu(F.linear(x, fc.weight)), proj.weight), _("the biases are missing: use the "
                        "layers, mlp.c_fc(x), or add mlp.c_fc.bias and mlp.c_proj.bias.")),
            ]
            got = call(mlp_forward, x.clone(), MLPParameters(mlp))
        expect_tensor(got, expected, what=_("mlp_forward(x of shape {shape})").format(shape=(B, T, C)),
                      mistakes=mistakes)


# --------------------------------------------------------------------------- 05.3


@exercise("05.3", "Counting the MLP's parameters", points=1, name="count_mlp_params", forbid=("minigpt2.layers.MLP",))
def check_count_mlp_params(count_mlp_params):
    for C, bias in [(768, True), (48, False), (1600, True), (10, True)]:
        expected = sum(p.numel() for p in MLP(SimpleNamespace(n_embd=C, bias=bias, dropout=0.0)).parameters())
        mistakes = [
            Mistake(2 * C * C + (2 * C if bias else 0), _("the hidden layer is 4× wide: c_fc is C → 4·C, c_proj 4·C "
                    "→ C.")),
            Mistake(4 * C * C + (4 * C if bias else 0), _("you counted only c_fc: add c_proj (4·C·C weights, plus C "
                    "biases).")),
            Mistake(8 * C * C, _("you left out the biases: c_fc has 4·C of them and c_proj C.")),
            Mistake(8 * C * C + 8 * C, _("c_proj has C biases (one per output), not 4·C.")),
            Mistake(8 * C * C + 2 * C, _("c_fc has 4·C biases (one per hidden unit), not C.")),
            Mistake(8 * C * C + 5 * C, _("with bias=False there are no biases: count only the weights.")),
        ]
        got = call(count_mlp_params, C, bias)
        expect_equal(got, expected, what=f"count_mlp_params({C}, bias={bias})",
                     mistakes=[m for m in mistakes if m.output != expected])
