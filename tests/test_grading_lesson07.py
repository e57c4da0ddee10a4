"""Lesson 07's checks: the solutions pass, the exercises score zero, and each mutant fails with its hint."""

import math

import pytest
import torch
from torch import nn

from minigpt2.grading.core import grade_namespace
from minigpt2.grading.lesson07 import PARAM_CONFIGS, reference_param_count
from minigpt2.hf import from_hf_state_dict
from minigpt2.model import GPT, GPTConfig

from grading_checks import (
    assert_mutant_fails_with_its_hint,
    assert_mutant_loses_exactly_its_points,
    assert_solutions_full_marks_exercises_zero,
)

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def count(config, lm_head=False, wpe=True, ln_f=True, biases=None, mlp_width=4):
    C, b = config.n_embd, int(config.bias if biases is None else biases)
    ln = C + b * C
    attention = 3 * C * C + b * 3 * C + C * C + b * C
    mlp = C * mlp_width * C + b * mlp_width * C + mlp_width * C * C + b * C
    total = config.vocab_size * C + config.n_layer * (2 * ln + attention + mlp)
    return total + (config.block_size * C if wpe else 0) + (ln if ln_f else 0) + (config.vocab_size * C if lm_head
                                                                                  else 0)


def init(model, residual_scale=lambda L: 1 / math.sqrt(2 * L), scale_all=False, layer_norm_random=False,
         keep_bias=False):
    L = model.config.n_layer
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            if not keep_bias:
                nn.init.zeros_(p)
        elif p.dim() == 1:
            if layer_norm_random:
                nn.init.normal_(p, 0.0, 0.02)
            else:
                nn.init.ones_(p)
        elif name.endswith("c_proj.weight") or scale_all:
            nn.init.normal_(p, 0.0, 0.02 * residual_scale(L))
        else:
            nn.init.normal_(p, 0.0, 0.02)


def init_untied(model):
    init(model)
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())


def convert(hf_state, transpose=CONV1D):
    return {k: v.t() if k.endswith(transpose) else v for k, v in hf_state.items()}


def forward(model, idx, wpe=True, from_one=False, ln_f=True, softmax=False):
    T = idx.size(1)
    x = model.transformer.wte(idx)
    if wpe:
        x = x + model.transformer.wpe(torch.arange(1, T + 1) if from_one else torch.arange(T))
    for block in model.transformer.h:
        x = block(x)
    logits = model.lm_head(model.transformer.ln_f(x) if ln_f else x)
    return logits.softmax(-1) if softmax else logits


def solution_namespace():
    return {"count_gpt_params": count, "init_gpt2_": init, "convert_hf_state_dict": convert, "gpt_forward": forward}


MUTANTS = [
    ("07.1", lambda c: count(c, lm_head=True), "counted once"),
    ("07.1", lambda c: count(c, wpe=False), "wpe is missing"),
    ("07.1", lambda c: count(c, ln_f=False), "ln_f is missing"),
    ("07.1", lambda c: count(c, biases=False), "the biases are missing"),
    ("07.1", lambda c: count(c, biases=True), "with bias=False there are no biases"),
    ("07.1", lambda c: count(c, mlp_width=1), "4× wide"),
    ("07.1", lambda c: 124_439_808, "should be"),
    ("07.2", lambda m: init(m, residual_scale=lambda L: 1.0), "must be scaled down by 1/√(2·n_layer)"),
    ("07.2", lambda m: init(m, residual_scale=lambda L: 1 / math.sqrt(L)), "TWO projections"),
    ("07.2", lambda m: init(m, residual_scale=lambda L: 1 / (2 * L)), "divide by its square root"),
    ("07.2", lambda m: init(m, scale_all=True), "only the weights named c_proj"),
    ("07.2", lambda m: init(m, layer_norm_random=True), "LayerNorm gain starts at exactly 1"),
    ("07.2", lambda m: init(m, keep_bias=True), "was not initialised"),
    ("07.2", init_untied, "no longer the same Parameter"),
    ("07.2", lambda m: init(m, residual_scale=lambda L: 1 / math.sqrt(12)), "it should be"),  # hard-coded for 6 layers
    ("07.3", lambda s: convert(s, transpose=()), "is not transposed"),
    ("07.3", lambda s: convert(s, transpose=("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")),
     "It is square, so no shape error warns you"),
    ("07.3", lambda s: {k: v.t() if v.dim() == 2 else v for k, v in s.items()}, "which is not a Conv1D weight"),
    ("07.3", lambda s: {k: v for k, v in convert(s).items() if k != "lm_head.weight"}, "missing"),
    ("07.3", lambda s: {k.removeprefix("transformer."): v for k, v in convert(s).items()}, "missing"),
    ("07.3", lambda s: list(convert(s).values()), "should return a dict"),
    ("07.4", lambda m, idx: forward(m, idx, wpe=False), "position embeddings are missing"),
    ("07.4", lambda m, idx: forward(m, idx, from_one=True), "positions start at 0"),
    ("07.4", lambda m, idx: forward(m, idx, ln_f=False), "ln_f is missing"),
    ("07.4", lambda m, idx: forward(m, idx, softmax=True), "you returned probabilities"),
    ("07.4", lambda m, idx: forward(m, idx)[:, -1], "only the last position"),
    ("07.4", lambda m, idx: (forward(m, idx), None), "not a tuple"),
    ("07.4", lambda m, idx: m(idx)[0], "compute the logits from"),
]


def test_reference_count_equals_the_model():
    for config in PARAM_CONFIGS:
        with torch.device("meta"):
            assert GPT(config).num_params() == reference_param_count(config) == count(config), config


def test_reference_conversion_is_the_package_one():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=2, n_head=2, n_embd=8))
    from minigpt2.grading.lesson07 import _hf_style_state_dict

    hf_state = _hf_style_state_dict(model)
    ours, package = convert(hf_state), from_hf_state_dict(hf_state)
    assert ours.keys() == package.keys() and all(torch.equal(ours[k], package[k]) for k in ours)


def test_solutions_pass():
    assert [r.status for r in grade_namespace("07", solution_namespace(), watch=False)] == ["passed"] * 4


def test_init_solution_matches_the_package_init_statistically():
    torch.manual_seed(0)
    a = GPT(GPTConfig(block_size=64, vocab_size=500, n_layer=4, n_head=4, n_embd=96))
    init(a)
    b = GPT(a.config)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.std().item() == pytest.approx(q.std().item(), rel=0.1, abs=1e-6), name


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS)
def test_mutant_fails_with_its_hint(exercise_id, mutant, hint):
    assert_mutant_fails_with_its_hint(exercise_id, mutant, hint)


@pytest.mark.parametrize("exercise_id, mutant, hint", MUTANTS[::3])
def test_mutant_loses_exactly_its_points(exercise_id, mutant, hint):
    assert_mutant_loses_exactly_its_points(solution_namespace(), exercise_id, mutant)


def test_solutions_notebook_full_marks_exercises_zero(root):
    assert_solutions_full_marks_exercises_zero(root, "07_gpt2_model.ipynb", points=7, exercises=4)
