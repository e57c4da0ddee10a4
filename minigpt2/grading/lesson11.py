"""Checks of lesson 11 (fine-tuning): last-token pooling with padding, the masked-target collate,
LoRA's initialisation, forward pass and merge, and accuracy over batches.

Inputs and outputs are plain tensors, lists and numbers, so that every check can run on
values handed back from another process.
"""

from __future__ import annotations

import math

import torch

from minigpt2.finetune.classify import pool_last
from minigpt2.finetune.instruct import IGNORE, collate_instructions
from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor, name_mistake, seeded_randn
from minigpt2.i18n.messages import _

# The package's finished versions of what these exercises build, and the libraries that have them.
LORA = ("minigpt2.lora.LoRALinear", "minigpt2.lora.apply_lora", "minigpt2.lora.merge_lora", "peft.*")
POOLING = ("minigpt2.finetune.classify.pool_last", "minigpt2.finetune.classify.GPTClassifier")
COLLATE = ("minigpt2.finetune.instruct.collate_instructions", "minigpt2.finetune.instruct.instruction_batches",
           "minigpt2.finetune.classify.collate_classification")
ACCURACY = ("minigpt2.finetune.classify.evaluate_classifier", "sklearn.*", "torchmetrics.*")


# --------------------------------------------------------------------------- 11.1


@exercise("11.1", "Logits at the last real token", points=1, name="last_token_logits", forbid=POOLING)
def check_last_token_logits(last_token_logits):
    cases = [((3, 6, 2), [6, 2, 4]), ((1, 5, 3), [5]), ((4, 9, 2), [1, 9, 3, 7])]
    for seed, (shape, lengths) in enumerate(cases):
        logits, lengths_t = seeded_randn(*shape, seed=seed), torch.tensor(lengths)
        got = call(last_token_logits, logits.clone(), lengths_t.clone())
        rows = torch.arange(shape[0])
        expect_tensor(got, pool_last(logits, lengths_t), what=_("last_token_logits(logits of shape {shape}, "
                "lengths={lengths})").format(shape=shape, lengths=lengths), mistakes=[
            Mistake(logits[:, -1], _("you read every row at the last POSITION, T − 1: in a right-padded batch that "
                    "is padding for every text shorter than T. Read row b at its last real token, lengths[b] − 1.")),
            Mistake(logits[rows, lengths_t.clamp(max=shape[1] - 1)], _("off by one: a text of n tokens has its last "
                    "token at index n − 1, not n.")),
            Mistake(logits[:, 0], _("you read the FIRST token: in a causal model it has seen nothing else; the last "
                    "real token is the one that has read the whole text.")),
            Mistake(logits.mean(1), _("you averaged over all positions, padding included: read the last real token.")),
        ])


# --------------------------------------------------------------------------- 11.2


def _collate_variant(examples, pad_id, end_id, *, mask_prompt=True, mask_pad=True, shift=True, mask_offset=0,
                     end=True):
    rows = []
    for prompt, response in examples:
        seq = [*prompt, *response, *([end_id] if end else [])]
        x, y = (seq[:-1], seq[1:]) if shift else (seq, list(seq))
        if mask_prompt:
            n = max(len(prompt) - 1 + mask_offset, 0)
            y = [IGNORE] * n + y[n:]
        rows.append((x, y))
    T = max(len(x) for x, _ in rows)
    inputs = torch.full((len(rows), T), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), T), IGNORE if mask_pad else pad_id, dtype=torch.long)
    for r, (x, y) in enumerate(rows):
        inputs[r, : len(x)], targets[r, : len(y)] = torch.tensor(x), torch.tensor(y)
    return inputs, targets


@exercise("11.2", "The masked-target collate", points=2, name="collate_masked", forbid=COLLATE)
def check_collate_masked(collate_masked):
    g = torch.Generator().manual_seed(0)
    cases = [
        [([5, 6, 7], [8, 9])],
        [([11, 12, 13, 14], [15]), ([21, 22], [23, 24, 25, 26])],
        [([31], [32, 33]), ([41, 42, 43], [44, 45, 46]), ([51, 52, 53, 54, 55], [56])],
        [(torch.randint(0, 90, (n,), generator=g).tolist(), torch.randint(0, 90, (m,), generator=g).tolist())
         for n, m in [(7, 3), (2, 9), (4, 4)]],
    ]
    pad_id, end_id = 0, 99
    for examples in cases:
        got = call(collate_masked, [(list(p), list(r)) for p, r in examples], pad_id, end_id)
        what = f"collate_masked({examples}, pad_id={pad_id}, end_id={end_id})"
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(_("{what} should return a tuple (inputs, targets), got {got_type}.").format(
                what=what, got_type=type(got).__name__))
        inputs, targets = got
        ref = collate_instructions(examples, pad_id=pad_id, end_id=end_id, max_length=10_000)
        expect_tensor(inputs, ref.inputs, what=_("the inputs of {what}").format(what=what), mistakes=[
            Mistake(_collate_variant(examples, pad_id, end_id, shift=False)[0], _("the inputs should not hold the "
                    "last token (the end token): inputs are sequence[:-1], targets sequence[1:].")),
            Mistake(_collate_variant(examples, pad_id, end_id, end=False)[0], _("the end token is missing: append "
                    "end_id after each response (the model must learn to stop).")),
        ])
        expect_tensor(targets, ref.targets, what=_("the targets of {what}").format(what=what), mistakes=[
            Mistake(_collate_variant(examples, pad_id, end_id, mask_prompt=False)[1], _("the prompt is left in the "
                    "loss: set the targets that are prompt tokens to {IGNORE}, so only the response is "
                    "learned.").format(IGNORE=IGNORE)),
            Mistake(_collate_variant(examples, pad_id, end_id, mask_pad=False)[1], _("the padding is left in the "
                    "loss: pad the targets with {IGNORE}, not with pad_id.").format(IGNORE=IGNORE)),
            Mistake(_collate_variant(examples, pad_id, end_id, mask_offset=1)[1], _("you also masked the first "
                    "response token: the target at the prompt's last position IS the first response token; mask "
                    "only the len(prompt) − 1 targets before it.")),
            Mistake(_collate_variant(examples, pad_id, end_id, mask_offset=-1)[1], _("one prompt token is still a "
                    "target: mask len(prompt) − 1 targets (targets[t] is token t + 1).")),
            Mistake(_collate_variant(examples, pad_id, end_id, shift=False)[1], _("the targets are not shifted: "
                    "targets[t] is the token AFTER inputs[t], so targets = sequence[1:].")),
            Mistake(_collate_variant(examples, pad_id, end_id, end=False)[1], _("the end token is missing: append "
                    "end_id after each response, and keep it as a target.")),
        ])
    with_empty = [([1, 2], [])]
    try:
        call(collate_masked, with_empty, pad_id, end_id)
    except CheckFailed as err:
        if err.raised == "ValueError":
            return
        raise
    raise CheckFailed(_("collate_masked accepted an example with an empty response: raise a ValueError saying there "
            "is nothing to learn from it."))


# --------------------------------------------------------------------------- 11.3


@exercise("11.3", "LoRA's starting point", points=1, name="init_lora", forbid=LORA)
def check_init_lora(init_lora):
    for in_features, out_features, r in [(12, 7, 3), (5, 9, 1), (16, 16, 4)]:
        what = f"init_lora(in_features={in_features}, out_features={out_features}, r={r})"
        got = call(init_lora, in_features, out_features, r)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(_("{what} should return a tuple (A, B), got {got_type}.").format(
                what=what, got_type=type(got).__name__))
        A, B = got
        for name, t, shape in (("A", A, (r, in_features)), ("B", B, (out_features, r))):
            if not isinstance(t, torch.Tensor):
                raise CheckFailed(_("{name} of {what} should be a torch.Tensor, got {t_type}.").format(
                    name=name, what=what, t_type=type(t).__name__))
            if tuple(t.shape) == tuple(reversed(shape)) and shape[0] != shape[1]:
                raise CheckFailed(_("{name} of {what} has shape {t_shape}, the transpose of {shape}: A is (r, "
                        "in_features) and B is (out_features, r), so that B @ A has W's shape (out, in).").format(
                        name=name, what=what, t_shape=tuple(t.shape), shape=shape))
            if tuple(t.shape) != shape:
                raise CheckFailed(_("{name} of {what} has shape {t_shape}, but it should be {shape}.").format(
                    name=name, what=what, t_shape=tuple(t.shape), shape=shape))
        if B.abs().sum() != 0:
            raise CheckFailed(_("B is not zero at the start ({what}): with B = 0 the update B @ A is zero, so the "
                    "wrapped layer computes exactly what the pre-trained one did. Use torch.zeros.").format(what=what))
        if A.abs().sum() == 0:
            raise CheckFailed(_("A is zero too ({what}): then the gradient of B (which is x A^T times the output's "
                    "gradient) is zero and neither ever moves. Draw A at random; only B starts at zero.").format(
                    what=what))
        bound = 1 / math.sqrt(in_features)
        if A.abs().max() > 3 * bound or A.std() > 2 * bound:
            raise CheckFailed(_("A's values are too large ({what}: std {A_std:.3g}): draw them like an nn.Linear "
                    "weight, within ±1/√in_features = ±{bound:.3g} (kaiming_uniform_(A, a=math.sqrt(5))).").format(
                    what=what, A_std=A.std(), bound=bound))


# --------------------------------------------------------------------------- 11.4


def _lora(x, W, b, A, B, alpha, scaling=None):
    scaling = alpha / A.size(0) if scaling is None else scaling
    return x @ W.T + b + scaling * (x @ A.T @ B.T)


@exercise("11.4", "The LoRA forward pass", points=1, name="lora_forward", forbid=LORA)
def check_lora_forward(lora_forward):
    for seed, (batch, in_f, out_f, r, alpha) in enumerate([((2, 5), 6, 4, 2, 8.0), ((3,), 9, 7, 3, 3.0),
                                                           ((2, 3, 4), 4, 4, 1, 16.0)]):
        x, W, b = seeded_randn(*batch, in_f, seed=seed), seeded_randn(out_f, in_f, seed=seed + 10), seeded_randn(out_f,
            seed=seed + 20)
        A, B = seeded_randn(r, in_f, seed=seed + 30), seeded_randn(out_f, r, seed=seed + 40)
        got = call(lora_forward, *(t.clone() for t in (x, W, b, A, B)), alpha)
        expect_tensor(got, _lora(x, W, b, A, B, alpha), what=_("lora_forward(x of shape {x_shape}, r={r}, "
                "alpha={alpha:g})").format(x_shape=tuple(x.shape), r=r, alpha=alpha), mistakes=[
            Mistake(_lora(x, W, b, A, B, alpha, scaling=1.0), _("the scaling is forgotten: multiply the low-rank "
                    "update by alpha / r.")),
            Mistake(_lora(x, W, b, A, B, alpha, scaling=alpha), _("you scaled by alpha: the scaling is alpha / r (r "
                    "is A.size(0)).")),
            Mistake(_lora(x, W, b, A, B, alpha, scaling=r / alpha), _("you scaled by r / alpha: it is alpha / r.")),
            Mistake(alpha / r * (x @ A.T @ B.T), _("you returned the update alone: add the frozen layer's own "
                    "output, x @ W.T + b.")),
            Mistake(x @ W.T + b, _("you returned the frozen layer's output alone: add (alpha / r) · x Aᵀ Bᵀ.")),
        ])


# --------------------------------------------------------------------------- 11.5


@exercise("11.5", "Merging LoRA into the weight", points=1, name="merge_lora_weight", forbid=LORA)
def check_merge_lora_weight(merge_lora_weight):
    for seed, (in_f, out_f, r, alpha) in enumerate([(6, 4, 2, 8.0), (9, 7, 3, 1.5), (5, 5, 1, 4.0)]):
        W, A, B = seeded_randn(out_f, in_f, seed=seed), seeded_randn(r, in_f, seed=seed + 1), seeded_randn(out_f, r,
            seed=seed + 2)
        before = W.clone()
        got = call(merge_lora_weight, W, A.clone(), B.clone(), alpha)
        expected = before + alpha / r * B @ A
        what = _("merge_lora_weight(W of shape {shape}, r={r}, alpha={alpha:g})").format(
            shape=(out_f, in_f), r=r, alpha=alpha)
        expect_tensor(got, expected, what=what, mistakes=[
            Mistake(before + B @ A, _("the scaling is forgotten: the merged weight is W + (alpha / r) · B @ A.")),
            Mistake(before + alpha * B @ A, _("you scaled by alpha: it is alpha / r.")),
            Mistake(before - alpha / r * B @ A, _("you subtracted the update: add it.")),
            Mistake(alpha / r * B @ A, _("you returned the update alone: add it to W.")),
        ])
        if not torch.equal(W, before) and not torch.equal(W, got):
            raise CheckFailed(_("{what} changed W in place into something else: return a new tensor, "
                                "W + update.").format(what=what))


# --------------------------------------------------------------------------- 11.6


@exercise("11.6", "Accuracy over batches", points=1, name="accuracy_over_batches", forbid=ACCURACY)
def check_accuracy_over_batches(accuracy_over_batches):
    for seed, sizes in enumerate([[8, 8, 3], [5], [4, 1, 6, 2]]):
        logit_batches = [seeded_randn(n, 3, seed=seed * 10 + i) for i, n in enumerate(sizes)]
        g = torch.Generator().manual_seed(seed)
        label_batches = [torch.where(torch.rand(n, generator=g) < 0.6, l.argmax(-1), torch.randint(0, 3, (n,),
                         generator=g)) for l, n in zip(logit_batches, sizes)]
        correct = [(l.argmax(-1) == y).sum().item() for l, y in zip(logit_batches, label_batches)]
        expected = sum(correct) / sum(sizes)
        got = call(accuracy_over_batches, [l.clone() for l in logit_batches], [y.clone() for y in label_batches])
        what = _("accuracy_over_batches(batches of sizes {sizes})").format(sizes=sizes)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            raise CheckFailed(_("{what} should return one number (a float between 0 and 1), got {got_type}.").format(
                what=what, got_type=type(got).__name__))
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        per_batch = sum(c / n for c, n in zip(correct, sizes)) / len(sizes)
        wrong_axis = sum((l.argmax(0)[: len(y)] == y[: l.size(1)]).sum().item() for l,
                         y in zip(logit_batches, label_batches))
        name_mistake(got, [m for m in [
            Mistake(per_batch, _("you averaged the batches' accuracies: a short last batch then counts as much as a "
                    "full one. Add up the correct predictions and the examples over all batches, then divide.")),
            Mistake(float(sum(correct)), _("that is the number of correct predictions: divide by the number of "
                    "examples.")),
            Mistake(100 * expected, _("that is a percentage: return a fraction between 0 and 1.")),
            Mistake(correct[-1] / sizes[-1], _("that is the last batch's accuracy alone: count over every batch.")),
            Mistake(wrong_axis / sum(sizes), _("argmax over the wrong axis: the prediction of each example is the "
                    "argmax over its classes, dim=-1.")),
        ] if not math.isclose(m.output, expected)], atol=0.0, rtol=1e-9)
        raise CheckFailed(_("{what} is {got:.6g}, but it should be {expected:.6g}.").format(
            what=what, got=got, expected=expected))
    expect_equal(call(accuracy_over_batches, [torch.tensor([[0.0, 1.0]])], [torch.tensor([1])]), 1.0,
                 what=_("accuracy_over_batches on one right prediction"))
