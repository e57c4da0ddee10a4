"""Checks of lesson 07 (the GPT-2 model): count the parameters, GPT-2's initialisation,
convert a Hugging Face state dict, the forward pass."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor
from minigpt2.hf import is_conv1d_weight, to_hf_state_dict
from minigpt2.i18n.messages import _
from minigpt2.model import GPT, GPTConfig

# --------------------------------------------------------------------------- 07.1


def reference_param_count(config: GPTConfig, *, tied=True, wpe=True, ln_f=True, layer_norms=True, biases=None,
                          mlp_width=4, attention_per_head=False) -> int:
    """GPT's parameter count, with one way of getting it wrong switched on by each keyword."""
    C, V, L = config.n_embd, config.vocab_size, config.n_layer
    b = int(config.bias if biases is None else biases)
    attention = 3 * C * C + b * 3 * C + C * C + b * C
    if attention_per_head:
        attention *= config.n_head
    mlp = C * mlp_width * C + b * mlp_width * C + mlp_width * C * C + b * C
    norms = 2 * (C + b * C) if layer_norms else 0
    total = V * C + L * (norms + attention + mlp)
    total += config.block_size * C if wpe else 0
    total += (C + b * C) if ln_f and layer_norms else 0
    total += 0 if tied else V * C
    return total


PARAM_CONFIGS = [
    GPTConfig.from_preset("gpt2"),
    GPTConfig(block_size=77, vocab_size=1000, n_layer=3, n_head=3, n_embd=48),
    GPTConfig(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384, bias=False),
    GPTConfig.from_preset("gpt2-xl"),
]


@exercise("07.1", "Counting a GPT's parameters", points=1, name="count_gpt_params", forbid=("minigpt2.model.GPT",))
def check_count_gpt_params(count_gpt_params):
    for config in PARAM_CONFIGS:
        expected = reference_param_count(config)
        mistakes = [
            Mistake(reference_param_count(config, tied=False), _("you counted lm_head's matrix as well as wte's: "
                    "they are one tied matrix, counted once.")),
            Mistake(reference_param_count(config, wpe=False), _("the position embedding wpe is missing: block_size × "
                    "n_embd.")),
            Mistake(reference_param_count(config, ln_f=False), _("the final LayerNorm ln_f is missing.")),
            Mistake(reference_param_count(config, layer_norms=False), _("the LayerNorms are missing: ln_1 and ln_2 "
                    "in every block and ln_f at the end, each with a gain (and a shift when bias=True) of n_embd "
                    "numbers.")),
            Mistake(reference_param_count(config, biases=False), _("the biases are missing: with bias=True every "
                    "Linear has one bias per output and every LayerNorm a shift.")),
            Mistake(reference_param_count(config, biases=True), _("with bias=False there are no biases (and no "
                    "LayerNorm shifts): count only the weights.")),
            Mistake(reference_param_count(config, mlp_width=1), _("the MLP is 4× wide: c_fc is n_embd → 4·n_embd and "
                    "c_proj 4·n_embd → n_embd.")),
            Mistake(reference_param_count(config, attention_per_head=True), _("you multiplied attention by n_head: "
                    "the heads share c_attn and c_proj, they add no parameters.")),
        ]
        got = call(count_gpt_params, config)
        expect_equal(got, expected, what=f"count_gpt_params({config})",
                     mistakes=[m for m in mistakes if m.output != expected])


# --------------------------------------------------------------------------- 07.2


def _fill(model: GPT, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def _std_matches(std: float, target: float) -> bool:
    return abs(std - target) <= 0.1 * target


def _initialised(init_gpt2_, n_layer: int, n_embd: int) -> tuple[bool, dict[str, torch.Tensor]]:
    """A probe (it runs where the learner's code runs): a GPT filled with 0.5, then the learner's
    init; whether lm_head is still tied to wte, and every parameter after it."""
    torch.manual_seed(n_layer)
    model = GPT(GPTConfig(block_size=64, vocab_size=500, n_layer=n_layer, n_head=4, n_embd=n_embd))
    _fill(model, 0.5)  # nothing of the old values may survive
    init_gpt2_(model)
    tied = model.lm_head.weight is model.transformer.wte.weight
    return tied, {name: p.detach().clone() for name, p in model.named_parameters()}


@exercise("07.2", "GPT-2's initialisation", points=2, name="init_gpt2_", forbid=("minigpt2.model.GPT._init_weights",))
def check_init_gpt2_(init_gpt2_):
    for n_layer, n_embd in [(6, 96), (2, 64)]:
        tied, parameters = call(_initialised, init_gpt2_, n_layer, n_embd)
        if not tied:
            raise CheckFailed(_("lm_head.weight is no longer the same Parameter as transformer.wte.weight: change "
                    "the weights in place (nn.init.normal_ or p.normal_()), do not assign new Parameters."))
        residual = 0.02 / math.sqrt(2 * n_layer)
        for name, p in parameters.items():
            where = f"{name} (n_layer={n_layer})"
            if torch.all(p == 0.5):
                raise CheckFailed(_("{where} was not initialised: it still holds the value it had before your "
                        "function ran.").format(where=where))
            if name.endswith("bias"):
                if not torch.all(p == 0):
                    raise CheckFailed(_("{where}: biases (and LayerNorm shifts) start at exactly zero.").format(
                        where=where))
                continue
            if p.dim() == 1:  # a LayerNorm gain
                if not torch.all(p == 1):
                    raise CheckFailed(_("{where}: a LayerNorm gain starts at exactly 1 (it was drawn at random, or "
                            "zeroed?); initialise only the Linear and Embedding weights at random.").format(
                            where=where))
                continue
            std, mean = p.std().item(), p.mean().item()
            target = residual if name.endswith("c_proj.weight") else 0.02
            if abs(mean) > 4 * target / math.sqrt(p.numel()) + 1e-4:
                raise CheckFailed(_("{where} has mean {mean:.4f}; the weights are drawn with mean 0.").format(
                    where=where, mean=mean))
            if _std_matches(std, target):
                continue
            if name.endswith("c_proj.weight"):
                if _std_matches(std, 0.02):
                    raise CheckFailed(_("{where} has std 0.02: the residual projections (attn.c_proj and mlp.c_proj) "
                            "must be scaled down by 1/√(2·n_layer), to std 0.02/√{two_n_layer} = "
                            "{residual:.4f}.").format(
                            where=where, two_n_layer=2 * n_layer, residual=residual))
                if _std_matches(std, 0.02 / math.sqrt(n_layer)):
                    raise CheckFailed(_("{where} was scaled by 1/√n_layer; each block adds TWO projections to the "
                            "residual stream (attention and MLP), so scale by 1/√(2·n_layer).").format(where=where))
                if _std_matches(std, 0.02 / (2 * n_layer)):
                    raise CheckFailed(_("{where} was divided by 2·n_layer; divide by its square root, "
                                        "√(2·n_layer).").format(where=where))
            elif _std_matches(std, residual):
                raise CheckFailed(_("{where} was scaled like a residual projection: only the weights named c_proj "
                        "(attn.c_proj and mlp.c_proj) get the 1/√(2·n_layer); every other weight has std 0.02.").format(
                        where=where))
            raise CheckFailed(_("{where} has std {std:.4f}; it should be {target:.4f}.").format(
                where=where, std=std, target=target))


# --------------------------------------------------------------------------- 07.3


def _hf_style_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """What ``transformers.GPT2LMHeadModel.state_dict()`` holds for the same weights."""
    state = to_hf_state_dict(model)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


@exercise("07.3", "Loading a Hugging Face state dict", points=2, name="convert_hf_state_dict",
          forbid=("minigpt2.hf.from_hf_state_dict", "minigpt2.hf.load_state_dict_into"))
def check_convert_hf_state_dict(convert_hf_state_dict):
    for seed, config in enumerate([
        GPTConfig(block_size=24, vocab_size=101, n_layer=2, n_head=2, n_embd=32),
        GPTConfig(block_size=40, vocab_size=97, n_layer=3, n_head=3, n_embd=48),
    ]):
        torch.manual_seed(seed)
        model = GPT(config).eval()
        expected = model.state_dict()
        hf_state = {k: v.clone() for k, v in _hf_style_state_dict(model).items()}
        got = call(convert_hf_state_dict, hf_state)
        if not isinstance(got, dict):
            raise CheckFailed(_("convert_hf_state_dict should return a dict of tensors, got a {got_type}.").format(
                got_type=type(got).__name__))
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        if missing:
            raise CheckFailed(_("these names are missing from your state dict: {missing}. Keep every tensor, under "
                    "the same name (GPT uses transformers' names).").format(missing=missing[:4]))
        if extra:
            raise CheckFailed(_("your state dict has names GPT does not know: {extra}.").format(extra=extra[:4]))
        for name, want in expected.items():
            tensor = got[name]
            transposed = isinstance(tensor, torch.Tensor) and tensor.dim() == 2 and tensor.shape == want.t().shape
            if transposed and torch.equal(tensor.t(), want):
                if is_conv1d_weight(name):
                    square = _(" It is square, so no shape error warns you.") if want.shape[0] == want.shape[1] else ""
                    raise CheckFailed(_("{name} is not transposed: it is one of the four Conv1D weights, stored as "
                            "(in, out); nn.Linear wants (out, in).{square}").format(name=name, square=square))
                raise CheckFailed(_("you transposed {name}, which is not a Conv1D weight: only c_attn, attn.c_proj, "
                        "c_fc and mlp.c_proj are stored transposed.").format(name=name))
            expect_tensor(tensor, want, what=name, atol=0, rtol=0)
        idx = torch.randint(0, config.vocab_size, (2, 10))
        fresh = GPT(config).eval()
        fresh.load_state_dict(got)
        with torch.no_grad():
            expect_tensor(fresh(idx)[0], model(idx)[0], what=_("the logits of a GPT loaded with your state dict"))


# --------------------------------------------------------------------------- 07.4


class GPTParts:
    """What the learner's forward pass gets: the model's modules, not the model to call."""

    def __init__(self, model: GPT):
        self.transformer, self.lm_head, self.config = model.transformer, model.lm_head, model.config

    def __call__(self, *args, **kwargs):
        raise TypeError(_("calling model(idx) would use the package's answer; compute the logits from "
                "model.transformer and model.lm_head yourself"))


def _forward(model: GPT, idx: torch.Tensor, positions_from=0, use_wpe=True, ln_f="end", softmax=False) -> torch.Tensor:
    """The forward pass with one thing changed, to build each mistake's output."""
    t = model.transformer
    T = idx.size(1)
    x = t.wte(idx)
    if use_wpe:
        x = x + t.wpe(torch.arange(positions_from, positions_from + T))
    for block in t.h:
        x = block(x)
        if ln_f == "every block":
            x = t.ln_f(x)
    if ln_f == "end":
        x = t.ln_f(x)
    logits = model.lm_head(x)
    return F.softmax(logits, dim=-1) if softmax else logits


@exercise("07.4", "The forward pass", points=2, name="gpt_forward",
          forbid=("minigpt2.model.GPT.forward", "minigpt2.model.GPT._embed"))
def check_gpt_forward(gpt_forward):
    for seed, (config, B, T) in enumerate([
        (GPTConfig(block_size=16, vocab_size=53, n_layer=2, n_head=2, n_embd=24), 2, 9),
        (GPTConfig(block_size=12, vocab_size=41, n_layer=3, n_head=3, n_embd=36), 3, 11),
    ]):
        torch.manual_seed(seed)
        model = GPT(config).eval()
        with torch.no_grad():  # LayerNorms away from the identity, so that a missing one shows
            for name, p in model.named_parameters():
                if "ln" in name:
                    p.add_(0.3 * torch.randn_like(p))
        idx = torch.randint(0, config.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = _forward(model, idx)
            mistakes = [
                Mistake(_forward(model, idx, use_wpe=False), _("the position embeddings are missing: add "
                        "transformer.wpe(torch.arange(T)) to the token embeddings.")),
                Mistake(_forward(model, idx, positions_from=1), _("positions start at 0: torch.arange(T), not "
                        "arange(1, T + 1).")),
                Mistake(_forward(model, idx, ln_f="none"), _("the final LayerNorm ln_f is missing: apply it after "
                        "the last block, before lm_head.")),
                Mistake(_forward(model, idx, ln_f="every block"), _("ln_f is applied after every block; it comes "
                        "once, after the last block (the blocks have their own ln_1 and ln_2).")),
                Mistake(_forward(model, idx, softmax=True), _("you returned probabilities: return the logits, the "
                        "raw scores from lm_head (softmax comes later, in the loss or when sampling).")),
                Mistake(_forward(model, idx)[:, -1, :], _("you returned only the last position's logits: return them "
                        "for every position, (B, T, vocab_size).")),
            ]
            got = call(gpt_forward, GPTParts(model), idx.clone())
        if isinstance(got, tuple):
            raise CheckFailed(_("gpt_forward should return the logits alone, a tensor (B, T, vocab_size), not a "
                    "tuple."))
        expect_tensor(got, expected, what=_("gpt_forward on idx of shape {shape}").format(shape=(B, T)),
                      mistakes=mistakes)
