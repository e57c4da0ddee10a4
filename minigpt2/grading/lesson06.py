"""Checks of lesson 06 (residual connections and LayerNorm): LayerNorm, the pre-LN block,
the gradient norm per block."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_tensor
from minigpt2.i18n.messages import _
from minigpt2.layers import Block
from minigpt2.model import GPT, GPTConfig

# --------------------------------------------------------------------------- 06.1


def _layer_norm_inputs():
    g = torch.Generator().manual_seed(0)
    yield torch.randn(2, 5, 8, generator=g, dtype=torch.float64) * 3 + 2
    yield torch.randn(7, 33, generator=g, dtype=torch.float64) - 1
    # rows of tiny variance, where eps matters
    yield torch.randn(3, 16, generator=g, dtype=torch.float64) * 1e-3 + 5


def _ln_variant(x, w, b, eps, unbiased=False, eps_where="inside", dim=-1, affine="normal", centre=True, power=0.5):
    if dim is None:  # over the whole tensor at once
        mean, var = (x.mean() if centre else 0), x.var(unbiased=unbiased)
    else:
        mean = x.mean(dim, keepdim=True) if centre else 0
        var = x.var(dim, keepdim=True, unbiased=unbiased)
    if eps_where == "inside":
        denominator = (var + eps) ** power
    elif eps_where == "outside":
        denominator = var**power + eps
    else:
        denominator = var**power
    x_hat = (x - mean) / denominator
    if affine == "none":
        return x_hat
    if affine == "shift first":
        return (x_hat + b) * w
    if affine == "swapped":
        return x_hat * b + w
    return x_hat * w + b


LAYER_NORM = ("torch.nn.functional.layer_norm", "torch.layer_norm", "torch.native_layer_norm",
              "torch.nn.functional.group_norm", "minigpt2.layers.LayerNorm")


@exercise("06.1", "LayerNorm", points=2, name="layer_norm", forbid=LAYER_NORM)
def check_layer_norm(layer_norm):
    for seed, x in enumerate(_layer_norm_inputs()):
        C = x.size(-1)
        g = torch.Generator().manual_seed(seed + 100)
        w = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
        b = torch.randn(C, generator=g, dtype=torch.float64)
        eps = 1e-5
        mistakes = [
            Mistake(_ln_variant(x, w, b, eps, unbiased=True), _("Bessel's correction: LayerNorm's variance divides "
                    "by C, not C − 1. Use x.var(dim=-1, unbiased=False), or the mean of the squared deviations.")),
            Mistake(_ln_variant(x, w, b, eps, eps_where="outside"), _("ε belongs inside the square root: (x − mean) "
                    "/ sqrt(var + eps), not / (sqrt(var) + eps).")),
            Mistake(_ln_variant(x, w, b, eps, eps_where="none"), _("ε is missing: divide by sqrt(var + eps). Without "
                    "it a row of (almost) equal numbers blows up.")),
            Mistake(_ln_variant(x, w, b, eps, power=1), _("divide by the standard deviation, sqrt(var + eps), not by "
                    "the variance.")),
            Mistake(_ln_variant(x, w, b, eps, affine="none"), _("the gain and shift are missing: return x_hat * "
                    "weight + bias.")),
            Mistake(_ln_variant(x, w, b, eps, affine="shift first"), _("gain and shift in the wrong order: x_hat * "
                    "weight + bias, not (x_hat + bias) * weight.")),
            Mistake(_ln_variant(x, w, b, eps, affine="swapped"), _("weight and bias swapped: multiply by weight, add "
                    "bias.")),
            Mistake(_ln_variant(x, w, b, eps, centre=False), _("you did not subtract the mean before dividing.")),
            Mistake(_ln_variant(x, w, b, eps, dim=None), _("you normalised over the whole tensor (x.mean() and "
                    "x.var() without dim): LayerNorm normalises each position's vector on its own, over the last "
                    "dimension: x.mean(dim=-1, keepdim=True).")),
        ]
        for dim in range(x.dim() - 1):  # every wrong dimension
            message = (_("you normalised over the batch (dim 0), like BatchNorm: LayerNorm works on each position's "
                    "vector, over the last dimension (dim=-1).") if dim == 0 else
                       _("you normalised over dim {dim}; LayerNorm works on each position's vector, over the last "
                               "dimension (dim=-1).").format(dim=dim))
            mistakes.append(Mistake(_ln_variant(x, w, b, eps, dim=dim), message))
        original = x.clone()
        got = call(layer_norm, x, w, b, eps)
        if not torch.equal(x, original):
            raise CheckFailed(_("your layer_norm changed its input tensor in place; compute a new tensor instead."))
        expect_tensor(got, F.layer_norm(x, (C,), w, b, eps), what=_("layer_norm(x of shape {x_shape})").format(
            x_shape=tuple(x.shape)),
                      atol=1e-7, rtol=1e-6, mistakes=mistakes)


# --------------------------------------------------------------------------- 06.2


class BlockParts:
    """What the learner's block gets: its four sub-layers, not the block to call."""

    def __init__(self, block: Block):
        self.ln_1, self.attn, self.ln_2, self.mlp = block.ln_1, block.attn, block.ln_2, block.mlp

    def __call__(self, *args, **kwargs):
        raise TypeError(_("calling block(x) would use the package's answer; compute it from block.ln_1, block.attn, "
                "block.ln_2 and block.mlp yourself"))


@exercise("06.2", "The pre-LN block", points=1, name="pre_ln_block", forbid=("minigpt2.layers.Block.forward",))
def check_pre_ln_block(pre_ln_block):
    for seed, (B, T, C, H) in enumerate([(2, 6, 16, 2), (1, 9, 24, 3)]):
        torch.manual_seed(seed)
        block = Block(GPTConfig(block_size=16, vocab_size=10, n_layer=1, n_head=H, n_embd=C)).double().eval()
        with torch.no_grad():  # two different LayerNorms, away from the identity
            for ln in (block.ln_1, block.ln_2):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.normal_()
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
        ln_1, attn, ln_2, mlp = block.ln_1, block.attn, block.ln_2, block.mlp
        with torch.no_grad():
            expected = block(x)
            h = x + attn(ln_1(x))
            a = attn(ln_1(x))  # the first sub-layer without its residual
            post = ln_1(x + attn(x))
            normed_1 = ln_1(x)
            normed_2 = ln_2(normed_1 + attn(normed_1))
            mistakes = [
                Mistake(ln_2(post + mlp(post)), _("that is post-LN, the 2017 order LN(x + f(x)). GPT-2 is pre-LN: x "
                        "= x + attn(ln_1(x)), then x = x + mlp(ln_2(x)).")),
                Mistake(mlp(ln_2(attn(ln_1(x)))), _("the residual connections are missing: add each sub-layer's "
                        "output to its input, x = x + attn(ln_1(x)).")),
                Mistake(a + mlp(ln_2(a)), _("the first residual connection is missing: x = x + attn(ln_1(x)).")),
                Mistake(mlp(ln_2(h)), _("the second residual connection is missing: x = x + mlp(ln_2(x)).")),
                Mistake(normed_2 + mlp(normed_2), _("you normalised the residual stream itself (x = ln(x)); pre-LN "
                        "normalises only the copy a sub-layer reads: x + attn(ln_1(x)) leaves x as it is.")),
                Mistake(h + mlp(ln_1(h)), _("the MLP must read ln_2(x), not ln_1(x): each sub-layer has its own "
                        "LayerNorm.")),
                Mistake(x + attn(ln_1(x)) + mlp(ln_2(x)), _("attention and MLP run in parallel on the same x; in "
                        "GPT-2 the MLP reads the stream after attention's output was added.")),
                Mistake(h + mlp(h), _("the MLP reads the stream without ln_2: x = x + mlp(ln_2(x)).")),
            ]
            got = call(pre_ln_block, x.clone(), BlockParts(block))
        expect_tensor(got, expected, what=_("pre_ln_block(x of shape {shape})").format(shape=(B, T, C)),
                      mistakes=mistakes)


# --------------------------------------------------------------------------- 06.3


def _norms(model: GPT, square=False, combine="all") -> list[float]:
    out = []
    for block in model.transformer.h:
        grads = [p.grad for p in block.parameters() if p.grad is not None]
        if combine == "sum of norms":
            out.append(sum(g.norm().item() for g in grads))
        elif combine == "weights":
            out.append(math.sqrt(sum(p.detach().pow(2).sum().item() for p in block.parameters())))
        else:
            total = sum(g.pow(2).sum().item() for g in grads)
            out.append(total if square else math.sqrt(total))
    return out


def _backward(model: GPT, idx, targets, zero=True) -> GPT:
    """A copy of ``model`` after one backward pass, from zeroed gradients or on top of the old ones."""
    twin = copy.deepcopy(model)  # deepcopy does not copy .grad
    for p, q in zip(model.parameters(), twin.parameters()):
        q.grad = None if zero or p.grad is None else p.grad.clone()
    twin(idx, targets)[1].backward()
    return twin


@exercise("06.3", "Gradient norm per block", points=2, name="grad_norm_per_block")
def check_grad_norm_per_block(grad_norm_per_block):
    for seed, n_layer in enumerate([3, 5]):
        torch.manual_seed(seed)
        model = GPT(GPTConfig(block_size=16, vocab_size=31, n_layer=n_layer, n_head=2, n_embd=16))
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, 31, (2, 12), generator=g)
        targets = torch.randint(0, 31, (2, 12), generator=g)
        for p in model.parameters():  # stale gradients from an earlier step, which must not count
            p.grad = torch.full_like(p, 0.01)
        reference = _backward(model, idx, targets)
        stale = _backward(model, idx, targets, zero=False)
        expected = torch.tensor(_norms(reference), dtype=torch.float64)
        mistakes = [
            Mistake(torch.tensor(_norms(stale), dtype=torch.float64), _("old gradients were still in .grad: "
                    "backward() adds to them. Call model.zero_grad() before loss.backward().")),
            Mistake(torch.tensor(_norms(reference, combine="weights"), dtype=torch.float64), _("you measured the "
                    "parameters themselves; measure their gradients, p.grad.")),
            Mistake(torch.tensor(_norms(reference, square=True), dtype=torch.float64), _("you returned the squared "
                    "norm: take the square root of the sum of squares.")),
            Mistake(torch.tensor(_norms(reference, combine="sum of norms"), dtype=torch.float64), _("you added up "
                    "the norms of the separate tensors; the block's norm is that of all its gradients together: "
                    "sqrt(Σ over its parameters of (p.grad ** 2).sum()).")),
        ]
        got = call(grad_norm_per_block, model, idx, targets)
        try:
            values = torch.tensor([float(v) for v in got], dtype=torch.float64)
        except (TypeError, ValueError):
            raise CheckFailed(_("grad_norm_per_block should return a list of numbers, one per block; got "
                                "{got!r:.80}").format(got=got)) from None
        if values.numel() != n_layer:
            raise CheckFailed(_("with {n_layer} blocks, grad_norm_per_block should return {n_layer} numbers, one per "
                    "block of model.transformer.h, but it returned {values_numel}.").format(
                    n_layer=n_layer, values_numel=values.numel()))
        expect_tensor(values, expected,
                      what=_("the gradient norms of a {n_layer}-block model").format(n_layer=n_layer),
                      atol=1e-7, rtol=1e-4, mistakes=mistakes)
