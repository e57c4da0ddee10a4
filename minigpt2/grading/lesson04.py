"""Checks of lesson 04 (multi-head attention): split and merge heads, count the parameters,
the whole multi-head forward pass."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from minigpt2.attention import CausalSelfAttention, merge_heads, split_heads
from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor, seeded_randn
from minigpt2.i18n.messages import _

# (B, T, n_head, head_size): all four different, so that a mix-up shows in the shape or the values
SHAPES = [(2, 5, 3, 4), (1, 7, 2, 3), (3, 4, 6, 2)]


def _split_wrong_order(x, n_head):  # head h gets channels h, h + n_head, …
    B, T, C = x.shape
    return x.view(B, T, C // n_head, n_head).permute(0, 3, 1, 2)


def _split_without_transpose(x, n_head):  # right shape, time steps mixed across heads
    B, T, C = x.shape
    return x.reshape(B, n_head, T, C // n_head)


def _merge_wrong_order(y):
    B, n_head, T, head_size = y.shape
    return y.permute(0, 2, 3, 1).reshape(B, T, n_head * head_size)


def _merge_without_transpose(y):
    B, n_head, T, head_size = y.shape
    return y.reshape(B, T, n_head * head_size)


# --------------------------------------------------------------------------- 04.1


@exercise("04.1", "Split into heads", points=2, name="split_heads", forbid=("minigpt2.attention.split_heads",))
def check_split_heads(split_heads_fn):
    for seed, (B, T, H, hs) in enumerate(SHAPES):
        x = seeded_randn(B, T, H * hs, seed=seed)
        got = call(split_heads_fn, x.clone(), H)
        expect_tensor(
            got,
            split_heads(x, H),
            what=_("split_heads(x of shape {shape}, n_head={H})").format(shape=(B, T, H * hs), H=H),
            mistakes=[
                Mistake(_split_wrong_order(x, H), _("heads split in the wrong order: your head h gets channels h, h "
                        "+ n_head, h + 2·n_head, … Head h must get the BLOCK of channels h·head_size … "
                        "(h+1)·head_size − 1: view(B, T, n_head, head_size), in that order.")),
                Mistake(_split_without_transpose(x, H), _("you reshaped straight to (B, n_head, T, head_size): the "
                        "shape is right but each 'head' now holds other time steps' channels (and would see the "
                        "future). View as (B, T, n_head, head_size), then transpose(1, 2).")),
                Mistake(x.view(B, T, H, hs), _("you split the channels but left the heads after time: the result "
                        "must be (B, n_head, T, head_size). Add .transpose(1, 2).")),
            ],
        )


# --------------------------------------------------------------------------- 04.2


@exercise("04.2", "Merge the heads", points=2, name="merge_heads", forbid=("minigpt2.attention.merge_heads",))
def check_merge_heads(merge_heads_fn):
    for seed, (B, T, H, hs) in enumerate(SHAPES):
        y = seeded_randn(B, H, T, hs, seed=seed)
        got = call(merge_heads_fn, y.clone())
        expect_tensor(
            got,
            merge_heads(y),
            what=_("merge_heads(y of shape {shape})").format(shape=(B, H, T, hs)),
            mistakes=[
                Mistake(_merge_without_transpose(y), _("you reshaped (B, n_head, T, head_size) straight to (B, T, "
                        "C): that mixes time steps across heads. Transpose(1, 2) back to (B, T, n_head, head_size) "
                        "first, then .contiguous().view(B, T, C).")),
                Mistake(_merge_wrong_order(y), _("heads merged in the wrong order: your channels interleave the "
                        "heads. Head h's channels must be one block, h·head_size … (h+1)·head_size − 1: "
                        "transpose(1, 2), then view(B, T, n_head * head_size).")),
                Mistake(y.transpose(1, 2), _("you moved the heads back after time but did not merge them: flatten "
                        "(n_head, head_size) into one axis of n_head * head_size channels.")),
            ],
        )


# --------------------------------------------------------------------------- 04.3


@exercise("04.3", "Counting attention parameters", points=1, name="count_attention_params",
          forbid=("minigpt2.attention.CausalSelfAttention",))
def check_count_attention_params(count_attention_params):
    for n_embd, n_head, bias in [(768, 12, True), (48, 4, False), (1600, 25, True), (8, 2, False)]:
        expected = sum(p.numel() for p in CausalSelfAttention(
            SimpleNamespace(n_embd=n_embd, n_head=n_head, dropout=0.0, bias=bias)).parameters())
        C = n_embd
        mistakes = [
            Mistake(3 * C * C + (3 * C if bias else 0), _("you counted only c_attn: add the output projection c_proj "
                    "(C·C weights, plus C biases when bias=True).")),
            Mistake(n_head * expected, _("you multiplied by n_head: splitting into heads reshapes the same matrices, "
                    "it adds no parameters.")),
            Mistake(4 * C * C, _("you left out the biases: with bias=True c_attn has 3·C and c_proj C.")),
            Mistake(4 * C * C + 4 * C, _("with bias=False there are no biases: count only the weights.")),
        ]
        got = call(count_attention_params, n_embd, n_head, bias)
        expect_equal(got, expected, what=f"count_attention_params({n_embd}, {n_head}, bias={bias})",
                     mistakes=[m for m in mistakes if m.output != expected])


# --------------------------------------------------------------------------- 04.4


class AttentionParameters:
    """What the learner's forward pass gets: the module's parameters, not the module to call."""

    def __init__(self, attn: CausalSelfAttention):
        self.c_attn, self.c_proj, self.n_head, self.n_embd = attn.c_attn, attn.c_proj, attn.n_head, attn.n_embd

    def __call__(self, *args, **kwargs):
        raise TypeError(_("calling attn(x) would use the package's answer; compute it from attn.c_attn, attn.c_proj "
                "and attn.n_head yourself"))


def _forward(x, p, split=split_heads, merge=merge_heads, scale=None, causal=True, project=True, order=(0, 1, 2)):
    """The multi-head forward pass with one thing changed, to build each mistake's output."""
    B, T, C = x.shape
    parts = F.linear(x, p.c_attn.weight, p.c_attn.bias).split(C, dim=-1)  # q, k, v: (B, T, C) each
    q, k, v = (split(parts[i], p.n_head) for i in order)  # (B, n_head, T, head_size)
    scale = math.sqrt(C // p.n_head) if scale is None else scale
    scores = q @ k.transpose(-2, -1) / scale  # (B, n_head, T, T)
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = merge(torch.softmax(scores, dim=-1) @ v)  # (B, T, C)
    return F.linear(y, p.c_proj.weight, p.c_proj.bias) if project else y


# the finished module called on the parts (CausalSelfAttention.forward(attn, x)), or PyTorch's
@exercise("04.4", "Multi-head causal self-attention", points=3, name="multi_head_attention",
          forbid=("minigpt2.attention.CausalSelfAttention", "torch.nn.functional.multi_head_attention_forward"))
def check_multi_head_attention(multi_head_attention):
    for seed, (B, T, H, hs) in enumerate(SHAPES):
        torch.manual_seed(seed)
        attn = CausalSelfAttention(SimpleNamespace(n_embd=H * hs, n_head=H, dropout=0.0, bias=True)).double().eval()
        p = AttentionParameters(attn)
        x = seeded_randn(B, T, H * hs, seed=seed + 100)
        with torch.no_grad():
            expected = attn(x)
            mistakes = [
                Mistake(_forward(x, p, project=False), _("you forgot the output projection: apply attn.c_proj to the "
                        "merged heads.")),
                Mistake(_forward(x, p, scale=math.sqrt(H * hs)), _("you divided the scores by √n_embd; each head's "
                        "scores are divided by √head_size (head_size = n_embd // n_head), its own query size.")),
                Mistake(_forward(x, p, scale=1.0), _("missing √d: divide each head's scores by √head_size.")),
                Mistake(_forward(x, p, split=_split_wrong_order, merge=_merge_wrong_order), _("heads split in the "
                        "wrong order: head h must be the block of channels h·head_size … (h+1)·head_size − 1 "
                        "(view(B, T, n_head, head_size).transpose(1, 2)), as GPT-2's weights expect.")),
                Mistake(_forward(x, p, split=_split_without_transpose, merge=_merge_without_transpose), _("you "
                        "reshaped to (B, n_head, T, head_size) without the transpose: heads get other time steps' "
                        "channels and see the future. view(B, T, n_head, head_size), then transpose(1, 2).")),
                Mistake(_forward(x, p, order=(1, 0, 2)), _("queries and keys swapped: c_attn's output splits as [q | "
                        "k | v], in that order.")),
                Mistake(_forward(x, p, order=(2, 1, 0)), _("queries and values swapped: c_attn's output splits as [q "
                        "| k | v], in that order.")),
                Mistake(_forward(x, p, causal=False), _("no causal mask: positions attend to the future.")),
            ]
        got = call(multi_head_attention, x.clone(), p)
        if isinstance(got, tuple):
            raise CheckFailed(_("multi_head_attention should return y alone, a tensor (B, T, n_embd), not a tuple."))
        expect_tensor(got, expected, what=_("multi_head_attention(x of shape {x_shape}) with n_head={H}").format(
            x_shape=tuple(x.shape), H=H),
                      mistakes=mistakes)
