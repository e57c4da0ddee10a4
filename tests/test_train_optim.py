"""minigpt2.train.optim: AdamW's parameter groups, the warm-up + cosine schedule, clipping."""

import math

import pytest
import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.train.optim import WarmupCosine, clip_grad_norm, lr_at, make_optimizer, param_groups


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=8, vocab_size=17, n_layer=2, n_head=2, n_embd=16))


def test_decay_group_is_exactly_the_matrices():
    model = tiny_gpt()
    decay, no_decay = param_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "transformer.wte.weight" in decayed and "transformer.wpe.weight" in decayed
    assert all(n.endswith("weight") for n in decayed)
    assert all(n.endswith("bias") or ".ln_" in n for n in undecayed)
    assert not any(".ln_" in n or n.startswith("transformer.ln_f") for n in decayed)
    # every parameter once, the tied embedding / LM head included only once
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_params()


def test_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(tiny_gpt(), -0.1)


@pytest.mark.parametrize("device_type, kernel", [("cpu", "fused"), ("mps", "foreach")])
def test_optimizer_step_equals_torch_adamw_reference(device_type, kernel):
    """The fused (CPU, CUDA) or foreach (elsewhere) AdamW over our groups takes the same step
    as torch's for-loop AdamW. The steps run on the CPU; device_type only picks the kernel."""
    ours, ref_model = tiny_gpt(), tiny_gpt()
    opt = make_optimizer(ours, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), device_type=device_type)
    assert all(g[kernel] for g in opt.param_groups)
    decay = [p for p in ref_model.parameters() if p.dim() >= 2]
    rest = [p for p in ref_model.parameters() if p.dim() < 2]
    ref = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), foreach=False)
    idx = torch.randint(17, (3, 8), generator=torch.Generator().manual_seed(1))
    for model, optimizer in ((ours, opt), (ref_model, ref)):
        for _ in range(3):
            _, loss = model(idx, idx)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    for (name, a), b in zip(ours.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_schedule_key_points():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert lr_at(0, **kw) == pytest.approx(0.1)  # (0 + 1) / 10: the first step already moves
    assert lr_at(4, **kw) == pytest.approx(0.5)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half-way down the cosine: the mean of max and min
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(10_000, **kw) == pytest.approx(0.1)
    decay = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_schedule_matches_torch_schedulers():
    """Warm-up equals torch's LinearLR, decay equals torch's CosineAnnealingLR."""
    max_lr, min_lr, warmup, total = 3e-3, 3e-4, 7, 50
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=max_lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[warmup])
    for step in range(total + 1):
        assert lr_at(step, max_lr, min_lr, warmup, total) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), step
        opt.step()
        sched.step()


def test_no_warmup_starts_at_max_lr():
    assert lr_at(0, 1.0, 0.0, 0, 10) == 1.0
    assert lr_at(5, 1.0, 0.0, 0, 10) == pytest.approx(0.5)


def test_warmup_cosine_applies_to_every_group():
    schedule = WarmupCosine(1e-3, 1e-4, 5, 20)
    opt = make_optimizer(tiny_gpt(), lr=1e-3)
    assert schedule.apply(opt, 2) == pytest.approx(6e-4)
    assert all(g["lr"] == pytest.approx(6e-4) for g in opt.param_groups)


@pytest.mark.parametrize(
    "args, message",
    [((1e-3, 1e-2, 5, 20), "min_lr"), ((1e-3, 1e-4, 30, 20), "warm-up"), ((1e-3, -1.0, 5, 20), "min_lr")],
)
def test_warmup_cosine_rejects_bad_settings(args, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(*args)


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    model = torch.nn.Linear(3, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    norm = clip_grad_norm(model, 1.0)
    assert norm.item() == pytest.approx(2.0 * math.sqrt(8))
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert after.item() == pytest.approx(1.0, rel=1e-5)


def test_clip_zero_means_off():
    model = torch.nn.Linear(3, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    assert clip_grad_norm(model, 0.0) is None
    assert all(torch.all(p.grad == 2.0) for p in model.parameters())
