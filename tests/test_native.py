"""minigpt2.native: the C GELU kernel against PyTorch's, and the fall-back when it cannot be built."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from minigpt2 import native
from minigpt2.layers import gelu
from minigpt2.native.gelu import native_gelu

HAS_COMPILER = bool(os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc"))
TURNED_OFF = os.environ.get("MINIGPT2_NATIVE") == "0"
needs_kernel = pytest.mark.skipif(native.library() is None, reason=f"native kernel: {native.status()}")


@pytest.mark.skipif(not HAS_COMPILER or TURNED_OFF, reason="no C compiler on this machine, or MINIGPT2_NATIVE=0")
def test_the_kernel_is_built_where_there_is_a_compiler():
    """A silent fall-back would hide a broken build: with a compiler, the library must load."""
    assert native.library() is not None, native.status()
    assert native.status().startswith("built")


def values():
    """Both tails, zero, the kink around -0.75, and a random bulk, float32."""
    x = torch.cat([torch.linspace(-12, 12, 4001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4, -1e4])])
    return torch.cat([x, torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 3])


@needs_kernel
def test_forward_equals_torch_gelu_tanh():
    x = values()
    y = native_gelu(x)
    assert y is not None
    reference = F.gelu(x.double(), approximate="tanh")  # float64: the exact value to compare both with
    ours_error = (y.double() - reference).abs()
    torch_error = (F.gelu(x, approximate="tanh").double() - reference).abs()
    assert (ours_error <= torch_error + 2e-7 * (1 + reference.abs())).all()


@needs_kernel
def test_gradient_equals_torch_gelu_tanh():
    x = values().requires_grad_()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (ours,) = torch.autograd.grad(native_gelu(x), x, g)
    xd = x.detach().double().requires_grad_()
    (exact,) = torch.autograd.grad(F.gelu(xd, approximate="tanh"), xd, g.double())
    (theirs,) = torch.autograd.grad(F.gelu(x, approximate="tanh"), x, g)
    ours_error, torch_error = (ours.double() - exact).abs(), (theirs.double() - exact).abs()
    print(f"largest error: ours {ours_error.max():.2e}, PyTorch's float32 kernel {torch_error.max():.2e}")
    # Where the slope is tiny (x < -4) both round 1 + tanh(u) ≈ 0: allow a few float32 ulps of each term, ~|g|·|x|
    eps = torch.finfo(torch.float32).eps
    assert (ours_error <= 2 * torch_error + 4 * eps * g.abs().double() * (1 + x.detach().abs().double())).all()


@needs_kernel
def test_non_contiguous_input_and_grad_and_special_values():
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(2)).t().requires_grad_()  # (8, 6), strided
    y = gelu(x)
    torch.testing.assert_close(y, F.gelu(x, approximate="tanh"), atol=1e-6, rtol=1e-6)
    g = torch.randn(6, 8).t()
    (ours,) = torch.autograd.grad(y, x, g)
    (theirs,) = torch.autograd.grad(F.gelu(x, approximate="tanh"), x, g)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    special = native_gelu(torch.tensor([float("nan"), float("inf"), 0.0]))
    assert special[0].isnan() and special[1] == float("inf") and special[2] == 0.0
    assert native_gelu(torch.empty(0)).shape == (0,)


def test_where_the_kernel_does_not_apply_gelu_is_torchs():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert native_gelu(x) is None
    assert torch.equal(gelu(x), F.gelu(x, approximate="tanh"))
    assert torch.autograd.gradcheck(gelu, (x,))  # float64: PyTorch's kernel, checked against finite differences


@needs_kernel
def test_a_model_trains_the_same_with_either_kernel(monkeypatch):
    """Three AdamW steps of a small GPT: with the native GELU and with F.gelu, the same losses."""
    import minigpt2.layers
    from minigpt2.model import GPT, GPTConfig

    def losses():
        torch.manual_seed(0)
        model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        idx = torch.randint(50, (4, 16), generator=torch.Generator().manual_seed(3))
        out = []
        for _ in range(3):
            loss = model(idx, idx)[1]
            loss.backward()
            opt.step()
            opt.zero_grad()
            out.append(loss.item())
        return out

    native_losses = losses()
    monkeypatch.setattr(minigpt2.layers, "native_gelu", lambda x: None)
    assert native_losses == pytest.approx(losses(), abs=1e-5)


def run_fresh(env_overrides: dict, tmp_path) -> str:
    """status() and a GELU in a new interpreter, with a cache of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIGPT2_NATIVE", "CC")}
    env.update({"MINIGPT2_NATIVE_CACHE": str(tmp_path / "cache"), **env_overrides})
    code = (
        "import torch, torch.nn.functional as F\n"
        "from minigpt2 import native\nfrom minigpt2.layers import gelu\n"
        "x = torch.randn(100)\nassert torch.allclose(gelu(x), F.gelu(x, approximate='tanh'), atol=1e-6)\n"
        "print(native.status())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_turned_off_by_the_environment(tmp_path):
    assert run_fresh({"MINIGPT2_NATIVE": "0"}, tmp_path).startswith("off (MINIGPT2_NATIVE=0)")
    assert not (tmp_path / "cache").exists()


def test_a_failed_build_falls_back_to_torch(tmp_path):
    assert "the build failed" in run_fresh({"CC": "false"}, tmp_path)


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler on this machine")
def test_a_fresh_cache_is_built_once_and_reused(tmp_path):
    first = run_fresh({}, tmp_path)
    assert first.startswith("built"), first
    built = list((tmp_path / "cache").glob("*.so"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    assert run_fresh({}, tmp_path) == first
    assert built[0].stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [built[0].name]  # no leftovers


def test_an_unwritable_cache_falls_back_to_the_temporary_directory(tmp_path):
    env = {"XDG_CACHE_HOME": "/proc/no-such-folder", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    code = "from minigpt2 import native; print(native.status())"
    clean = {k: v for k, v in os.environ.items() if k not in ("MINIGPT2_NATIVE", "CC", "MINIGPT2_NATIVE_CACHE")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    if HAS_COMPILER:
        assert result.stdout.startswith(f"built ({tmp_path / 'tmp'}"), result.stdout


@needs_kernel
def test_bf16_forward_and_gradient_round_as_torchs_bf16_gelu():
    """Under bf16 autocast GELU gets bf16 tensors: the kernel computes in float32 and rounds once, so it
    is as close to the exact value as PyTorch's bf16 kernel, within one bf16 rounding step (2^-8 relative)."""
    x = values().bfloat16().requires_grad_()
    y = native_gelu(x)
    assert y.dtype == torch.bfloat16
    exact = F.gelu(x.detach().double(), approximate="tanh")
    theirs = F.gelu(x.detach(), approximate="tanh")
    # one rounding to bf16 (half a step, 2^-8 relative), plus float32's cancellation in 1 + tanh(u) far left
    half_step = 2.0**-8 * exact.abs() + 1e-6 * (1 + x.detach().double().abs())
    assert ((y.detach().double() - exact).abs() <= half_step).all()
    assert ((y.detach().double() - theirs.double()).abs() <= 2 * half_step).all()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).bfloat16()
    (ours,) = torch.autograd.grad(y, x, g)
    xd = x.detach().double().requires_grad_()
    (exact_grad,) = torch.autograd.grad(F.gelu(xd, approximate="tanh"), xd, g.double())
    xt = x.detach().clone().requires_grad_()
    (theirs_grad,) = torch.autograd.grad(F.gelu(xt, approximate="tanh"), xt, g)
    assert ours.dtype == torch.bfloat16
    ours_error, torch_error = (ours.double() - exact_grad).abs(), (theirs_grad.double() - exact_grad).abs()
    bound = torch.maximum(torch_error, 2.0**-7 * exact_grad.abs()) + 1e-6 * g.double().abs() * (1 + xd.detach().abs())
    assert (ours_error <= bound).all()
    special = native_gelu(torch.tensor([float("nan"), float("inf"), 0.0]).bfloat16())
    assert special[0].isnan() and special[1] == float("inf") and special[2] == 0.0


@needs_kernel
def test_gelu_under_autocast_is_the_native_bf16_kernel():
    from minigpt2.layers import MLP
    from minigpt2.model import GPTConfig

    torch.manual_seed(0)
    mlp = MLP(GPTConfig(n_embd=32, n_head=2, n_layer=1, block_size=8, vocab_size=10))
    x = torch.randn(2, 8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = mlp.c_fc(x)
        assert h.dtype == torch.bfloat16
        torch.testing.assert_close(gelu(h), F.gelu(h, approximate="tanh"), atol=2e-2, rtol=1e-2)
        out = mlp(x)
    torch.testing.assert_close(out.float(), mlp(x), atol=3e-2, rtol=3e-2)  # bf16 against float32 throughout
