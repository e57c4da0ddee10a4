"""Checks of lesson 08 (training): the learning-rate schedule, AdamW's parameter groups,
one optimizer step with gradient accumulation and clipping, and MFU."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_tensor, name_mistake
from minigpt2.i18n.messages import _, ngettext
from minigpt2.train.mfu import training_flops_per_token
from minigpt2.train.optim import lr_at

# --------------------------------------------------------------------------- 08.1

SCHEDULES = [  # (max_lr, min_lr, warmup_steps, total_steps)
    (1e-3, 1e-4, 10, 100),
    (6e-4, 6e-5, 3, 17),
    (2e-3, 0.0, 5, 40),
    (1.0, 0.25, 0, 12),
]


def _rates(fn, max_lr, min_lr, warmup, total) -> torch.Tensor:
    return torch.tensor([float(fn(s, max_lr, min_lr, warmup, total)) for s in range(total + 15)], dtype=torch.float64)


def _warmup_from_zero(step, max_lr, min_lr, warmup, total):
    return max_lr * step / warmup if step < warmup else lr_at(step, max_lr, min_lr, warmup, total)


def _decay_to_zero(step, max_lr, min_lr, warmup, total):
    return lr_at(step, max_lr, 0.0, warmup, total)


def _cosine_over_all_steps(step, max_lr, min_lr, warmup, total):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * step / total)) * (max_lr - min_lr)


def _cosine_forever(step, max_lr, min_lr, warmup, total):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    return min_lr + 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) * (max_lr - min_lr)


def _no_warmup(step, max_lr, min_lr, warmup, total):
    return lr_at(step, max_lr, min_lr, 0, total) if step < total else min_lr


@exercise("08.1", "The learning-rate schedule", points=1, name="lr_at",
          forbid=("minigpt2.train.optim.lr_at", "minigpt2.train.optim.WarmupCosine"))
def check_lr_at(lr_at_fn):
    for max_lr, min_lr, warmup, total in SCHEDULES:
        args = (max_lr, min_lr, warmup, total)
        got = call(_rates, lr_at_fn, *args)
        mistakes = [
            Mistake(_rates(_warmup_from_zero, *args) if warmup else None,
                    _("the warm-up starts at 0: step 0 gets learning rate 0 and the model does not move. Use max_lr "
                            "* (step + 1) / warmup_steps, so step 0 already moves and step warmup_steps − 1 "
                            "reaches max_lr.")),
            Mistake(_rates(_decay_to_zero, *args) if min_lr else None,
                    _("the decay ends at 0 instead of min_lr: the cosine should go from max_lr down to min_lr, "
                            "min_lr + 0.5·(1 + cos(π·progress))·(max_lr − min_lr).")),
            Mistake(_rates(_cosine_over_all_steps, *args) if warmup else None,
                    _("the cosine's progress should start at 0 when the warm-up ends: progress = (step − "
                            "warmup_steps) / (total_steps − warmup_steps), not step / total_steps.")),
            Mistake(_rates(_cosine_forever, *args),
                    _("after total_steps the rate should stay at min_lr; if you keep following the cosine it climbs "
                            "back up.")),
            Mistake(_rates(_no_warmup, *args) if warmup else None,
                    _("there is no warm-up: for step < warmup_steps the rate should rise linearly to max_lr.")),
        ]
        expect_tensor(
            got,
            _rates(lr_at, *args),
            what=_("the rates of steps 0 to {last_step} with max_lr={max_lr}, min_lr={min_lr}, warmup_steps={warmup}, "
                    "total_steps={total} (the index is the step)").format(
                    last_step=total + 14, max_lr=max_lr, min_lr=min_lr, warmup=warmup, total=total),
            atol=1e-12,
            rtol=1e-7,
            mistakes=[m for m in mistakes if m.output is not None],
        )


# --------------------------------------------------------------------------- 08.2


class _Toy(nn.Module):
    """Every kind of parameter a GPT has, small: embeddings, Linear with and without bias,
    LayerNorm, and an output layer tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(11, 6)
        self.wpe = nn.Embedding(5, 6)
        self.ln = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 12)
        self.proj = nn.Linear(12, 6, bias=False)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.wte.weight  # tied


def _models():
    from minigpt2.model import GPT, GPTConfig

    torch.manual_seed(0)
    return [_Toy(), GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=8))]


def _grouped(decay_groups, which: int, weight_decay: float) -> dict:
    """A probe (it runs where the learner's code runs): the learner's groups for model ``which`` of
    :func:`_models`, described by parameter names, and whether AdamW accepts them as they are."""
    model = _models()[which]
    groups = decay_groups(model, weight_decay)
    if not isinstance(groups, (list, tuple)):
        return {"type": type(groups).__name__, "groups": None}
    names = {id(p): n for n, p in model.named_parameters()}
    described, every = [], []
    for group in groups:
        if not isinstance(group, dict) or "params" not in group or "weight_decay" not in group:
            described.append(None)
            continue
        params = list(group["params"])
        every += params
        described.append({"params": [names.get(id(p), "?") for p in params],
                          "weight_decay": float(group["weight_decay"])})
    duplicates = len(every) != len({id(p) for p in every})
    adamw_error = None
    if not duplicates:  # (the check names duplicates itself)
        try:
            torch.optim.AdamW(groups, lr=1e-3)  # the groups must be usable as they are
        except (ValueError, TypeError) as err:
            adamw_error = str(err)
    return {"type": type(groups).__name__, "groups": described, "adamw_error": adamw_error, "duplicates": duplicates}


def _split(groups, weight_decay) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(decayed names, not-decayed names), each sorted, from the description of a learner's groups
    (:func:`_grouped`); CheckFailed if malformed."""
    if groups["groups"] is None or len(groups["groups"]) != 2:
        got = (ngettext("{n} group", "{n} groups", len(groups["groups"])).format(n=len(groups["groups"]))
               if groups["groups"] is not None else _("a {type}").format(type=groups["type"]))
        raise CheckFailed(_("decay_groups should return a list of two dicts (decayed, not decayed), but it returned "
                "{got}.").format(got=got))
    by_decay = {}
    for group in groups["groups"]:
        if group is None:
            raise CheckFailed(_("each group should be a dict with the keys 'params' (a list of parameters) and "
                    "'weight_decay'."))
        listed = group["params"]
        if "?" in listed:
            raise CheckFailed(_("a group holds something that is not one of the model's parameters: use "
                    "model.parameters()."))
        by_decay.setdefault(float(group["weight_decay"]), []).extend(listed)
    if set(by_decay) != {float(weight_decay), 0.0}:
        raise CheckFailed(
            _("the groups' weight_decay values are {by_decay}; one group should have weight_decay={weight_decay} and "
                    "the other 0.0.").format(by_decay=sorted(by_decay), weight_decay=weight_decay)
        )
    return tuple(sorted(by_decay[float(weight_decay)])), tuple(sorted(by_decay[0.0]))


def _reference_groups(model):
    decay = tuple(sorted(n for n, p in model.named_parameters() if p.dim() >= 2))
    rest = tuple(sorted(n for n, p in model.named_parameters() if p.dim() < 2))
    return decay, rest


@exercise("08.2", "AdamW's parameter groups", points=2, name="decay_groups",
          forbid=("minigpt2.train.optim.param_groups", "minigpt2.train.optim.make_optimizer"))
def check_decay_groups(decay_groups):
    for which, model in enumerate(_models()):
        kind = type(model).__name__
        groups = call(_grouped, decay_groups, which, 0.1)
        if groups.get("duplicates"):
            raise CheckFailed(
                _("a parameter appears more than once: the tied embedding / output weight is ONE parameter. "
                        "model.parameters() lists it once (named_parameters(remove_duplicate=False) would not).")
            )
        got = _split(groups, 0.1)
        everything = tuple(sorted(n for n, _ in model.named_parameters()))
        by_name = tuple(sorted(n for n in everything if n.endswith("weight")))
        linear_only = tuple(sorted(f"{n}.weight" for n, m in model.named_modules()
                                   if isinstance(m, nn.Linear) and f"{n}.weight" in everything))
        name_mistake(got, [
            Mistake((everything, ()), _("every parameter is decayed: biases and LayerNorm gains/shifts (the 1-D "
                    "tensors) should get weight_decay 0. Decide by p.dim() >= 2.")),
            Mistake((by_name, tuple(sorted(set(everything) - set(by_name)))),
                    _("you chose by name: LayerNorm's 'weight' is a 1-D gain, not a matrix, and should not decay. "
                            "Decide by the shape, p.dim() >= 2, not by the name.")),
            Mistake((linear_only, tuple(sorted(set(everything) - set(linear_only)))),
                    _("the embeddings are matrices too and GPT-2 decays them (wte, wpe): every parameter with "
                            "p.dim() >= 2 goes in the decayed group, not only the Linear weights.")),
            Mistake(tuple(reversed(_reference_groups(model))),
                    _("the groups are swapped: the matrices (p.dim() >= 2) should get the weight decay, the vectors "
                            "0.")),
        ])
        expected = _reference_groups(model)
        if got != expected:
            should_decay = sorted(set(expected[0]) - set(got[0]))
            should_not = sorted(set(got[0]) - set(expected[0]))
            missing = sorted(set(everything) - set(got[0]) - set(got[1]))
            parts = []
            if should_decay:
                parts.append(_("these should be decayed but are not: {should_decay}").format(should_decay=should_decay))
            if should_not:
                parts.append(_("these should not be decayed but are: {should_not}").format(should_not=should_not))
            if missing:
                parts.append(_("these are in no group: {missing}").format(missing=missing))
            raise CheckFailed(_("on a {kind}, {problems}.").format(kind=kind, problems="; ".join(parts)))
        if groups["adamw_error"] is not None:
            raise CheckFailed(_("torch.optim.AdamW cannot use these groups: {error}").format(
                error=groups['adamw_error']))


# --------------------------------------------------------------------------- 08.3


def _train_step(model, optimizer, micro_batches, grad_clip, *, divide=True, clip_before_step=True, zero_grad=True):
    """The reference step; each keyword set to False makes it one of the common mistakes."""
    total = 0.0
    for x, y in micro_batches:
        loss = model(x, y)[1]
        (loss / len(micro_batches) if divide else loss).backward()
        total += loss.item()
    if clip_before_step:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if not clip_before_step:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    return total / len(micro_batches)


def _step_twice(step_fn, grad_clip, n_micro):
    """Two calls of ``step_fn`` on a fresh tiny GPT with plain SGD (whose update shows every
    scaling mistake, unlike Adam's); returns (the weights after, the two returned losses).
    With the learner's ``step_fn`` it is a probe: ``call(_step_twice, train_step, …)``."""
    from minigpt2.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(n_micro)
    losses = []
    for _step in range(2):
        batches = [(torch.randint(13, (3, 8), generator=g), torch.randint(13, (3, 8), generator=g))
                   for _ in range(n_micro)]
        args = (model, optimizer, batches, grad_clip)
        losses.append(step_fn(*args))
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return weights, losses


def _step_mistakes(grad_clip, n_micro) -> list[Mistake]:
    mistakes = [Mistake(_step_twice(partial(_train_step, zero_grad=False), grad_clip, n_micro)[0],
                        _("the second step carries the first step's gradients: clear them after the update "
                                "(optimizer.zero_grad()), since backward() adds to .grad."))]
    if n_micro > 1:
        mistakes.append(Mistake(_step_twice(partial(_train_step, divide=False), grad_clip, n_micro)[0],
                                _("the gradient is the SUM over the micro-batches, not their mean: divide each "
                                        "micro-batch's loss by the number of micro-batches before backward().")))
    if grad_clip < 1:
        mistakes.append(Mistake(_step_twice(partial(_train_step, clip_before_step=False), grad_clip, n_micro)[0],
                                _("clipping after optimizer.step() is too late: the update has been made. Clip "
                                        "between the last backward() and optimizer.step().")))
    return mistakes


@exercise("08.3", "One step with gradient accumulation", points=2, name="train_step")
def check_train_step(train_step):
    for grad_clip, n_micro in ((1e9, 3), (0.05, 2), (1e9, 1)):
        weights, losses = call(_step_twice, train_step, grad_clip, n_micro)
        expected, expected_losses = _step_twice(_train_step, grad_clip, n_micro)
        where = ngettext("with {n_micro} micro-batch and grad_clip={grad_clip:g}",
                         "with {n_micro} micro-batches and grad_clip={grad_clip:g}", n_micro).format(
            n_micro=n_micro, grad_clip=grad_clip)
        what = _("the weights after two steps {where}").format(where=where)
        try:
            expect_tensor(weights, expected, what=what, atol=1e-6, rtol=1e-5)
        except CheckFailed:  # wrong: only now run the mistaken versions to say which mistake it is
            expect_tensor(weights, expected, what=what, atol=1e-6, rtol=1e-5,
                          mistakes=_step_mistakes(grad_clip, n_micro))
        if not all(isinstance(v, (float, int)) or (isinstance(v, torch.Tensor) and v.numel() == 1) for v in losses):
            raise CheckFailed(_("train_step should return the loss as a number, but it returned {losses_type}.").format(
                losses_type=type(losses[0]).__name__))
        expected_losses = torch.tensor(expected_losses, dtype=torch.float64)
        expect_tensor(
            torch.tensor([float(v) for v in losses], dtype=torch.float64), expected_losses,
            what=_("the losses returned {where}").format(where=where), atol=1e-5, rtol=1e-5,
            mistakes=[Mistake(expected_losses * n_micro, _("you returned the sum of the micro-batch losses; return "
                    "their mean (the loss of the whole batch)."))] if n_micro > 1 else [],
        )


# --------------------------------------------------------------------------- 08.4

MFU_CASES = [  # tokens/s, n_params (without position embeddings), n_layer, n_embd, block_size, peak FLOP/s
    (9_000.0, 800_000, 4, 128, 64, 60e9),
    (3_200.0, 10_700_000, 6, 384, 256, 60e9),
    (1.8e5, 124_000_000, 12, 768, 1024, 989e12),
]


@exercise("08.4", "Model FLOPs utilisation", points=1, name="mfu",
          forbid=("minigpt2.train.mfu.training_flops_per_token", "minigpt2.train.mfu.model_flops_per_token",
                  "minigpt2.train.mfu.mfu"))
def check_mfu(mfu):
    for tokens_per_s, n_params, n_layer, n_embd, block_size, peak in MFU_CASES:
        got = call(mfu, tokens_per_s, n_params, n_layer, n_embd, block_size, peak)
        flops = training_flops_per_token(n_params, n_layer, n_embd, block_size)
        expected = tokens_per_s * flops / peak
        attention = 12 * n_layer * n_embd * block_size
        mistakes = [
            Mistake(tokens_per_s * (2 * n_params + attention / 3) / peak,
                    _("you counted the forward pass only (2 FLOPs per parameter per token). Training also runs "
                            "backward, which costs twice the forward: 6·N in all.")),
            Mistake(tokens_per_s * 2 * n_params / peak,
                    _("you counted the forward pass only (2·N). Training costs 6·N, plus attention's "
                            "12·n_layer·n_embd·T.")),
            Mistake(tokens_per_s * 6 * n_params / peak,
                    _("you left out attention's own work, 12·n_layer·n_embd·block_size FLOPs per token: q·kᵀ and "
                            "weights·v have no parameters, so 6·N does not count them.")),
            Mistake(100 * expected, _("that is a percentage; return the fraction (between 0 and 1).")),
            Mistake(tokens_per_s * flops, _("you forgot to divide by the peak: MFU is a fraction of what the device "
                    "can do.")),
        ]
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            raise CheckFailed(_("mfu should return a number, but it returned a {got_type}.").format(
                got_type=type(got).__name__))
        name_mistake(float(got), [m for m in mistakes if not math.isclose(m.output, expected, rel_tol=1e-6)],
                     atol=0, rtol=1e-6)
        if not math.isclose(float(got), expected, rel_tol=1e-6):
            raise CheckFailed(
                _("mfu({tokens_per_s:g} tokens/s, N={n_params:,}, n_layer={n_layer}, n_embd={n_embd}, "
                        "block_size={block_size}, peak={peak:g}) is {got:.6g}, but it should be {expected:.6g}: "
                        "FLOPs per token × tokens/s ÷ peak.").format(
                        tokens_per_s=tokens_per_s, n_params=n_params, n_layer=n_layer, n_embd=n_embd,
                        block_size=block_size, peak=peak, got=float(got), expected=expected)
            )
