"""The explicit attention path against PyTorch's fused kernel, inside CausalSelfAttention.

``attn(x, need_weights=True)`` materialises the (B, n_head, T, T) scores and weights
(the readable reference); ``attn(x)`` calls ``F.scaled_dot_product_attention(is_causal=True)``.
Both are timed back to back, repeat after repeat, so that a machine's load slows both alike;
the table gives the median of each and the median of the per-repeat ratios. On a CPU shared
with other work it also gives the ratio of the process's CPU time, which load stretches less;
on CUDA, each path's peak memory.

    python benchmarks/bench_attention.py                         # CPU, float32, GPT-2 small's layer shape
    python benchmarks/bench_attention.py --device cuda --dtype bfloat16
    python benchmarks/bench_attention.py --quick                 # two small sizes, for a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch

from minigpt2.attention import CausalSelfAttention

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(attn, x, explicit: bool, backward: bool) -> None:
    if backward:
        out = attn(x, need_weights=True)[0] if explicit else attn(x)
        out.sum().backward()
    else:
        with torch.no_grad():
            attn(x, need_weights=True) if explicit else attn(x)


def timed(fn, device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) for one call of fn."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_memory(fn, device) -> int | None:
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def bench(B, T, n_embd, n_head, device, dtype, backward, repeats):
    torch.manual_seed(0)
    attn = CausalSelfAttention(SimpleNamespace(n_embd=n_embd, n_head=n_head, dropout=0.0, bias=True))
    attn = attn.to(device=device, dtype=dtype).eval()
    x = torch.randn(B, T, n_embd, device=device, dtype=dtype, requires_grad=backward)

    with torch.no_grad():  # the two paths agree before either is timed
        diff = (attn(x, need_weights=True)[0] - attn(x)).abs().max().item()

    explicit = lambda: run_once(attn, x, True, backward)  # noqa: E731
    fused = lambda: run_once(attn, x, False, backward)  # noqa: E731
    for _ in range(2):  # warm-up: allocator, kernel selection
        explicit(), fused()
    times_e, times_f = [], []
    for _ in range(repeats):
        times_e.append(timed(explicit, device))
        times_f.append(timed(fused, device))
    (wall_e, cpu_e), (wall_f, cpu_f) = zip(*times_e), zip(*times_f)
    return {
        "explicit": statistics.median(wall_e),
        "fused": statistics.median(wall_f),
        "ratio": statistics.median(e / f for e, f in zip(wall_e, wall_f)),
        "cpu_ratio": statistics.median(e / f for e, f in zip(cpu_e, cpu_f)),
        "mem_explicit": peak_memory(explicit, device),
        "mem_fused": peak_memory(fused, device),
        "max_diff": diff,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-head", type=int, default=12)
    parser.add_argument("--batch", type=int, default=None, help="default: 4 on CPU, 16 on CUDA")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="two small sizes, three repeats")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but this torch sees no CUDA GPU; use --device cpu")
    dtype = DTYPES[args.dtype]
    B = args.batch or (16 if device.type == "cuda" else 4)
    if args.quick:
        lengths, repeats = [64, 128], 3
    else:
        lengths = args.lengths or ([256, 512, 1024, 2048, 4096] if device.type == "cuda" else [128, 256, 512, 1024])
        repeats = args.repeats

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"CausalSelfAttention n_embd={args.n_embd} n_head={args.n_head}, B={B}, {args.dtype}, {name}, "
          f"torch {torch.__version__}; median of {repeats} repeats")
    header = f"{'pass':8s} {'T':>5s} {'explicit':>11s} {'fused':>11s} {'explicit/fused':>15s}"
    header += f" {'mem explicit':>13s} {'mem fused':>10s}" if device.type == "cuda" else f" {'CPU-time ratio':>15s}"
    print(header + f" {'max |diff|':>11s}")
    for backward in (False, True):
        for T in lengths:
            r = bench(B, T, args.n_embd, args.n_head, device, dtype, backward, repeats)
            row = (f"{'fwd+bwd' if backward else 'forward':8s} {T:5d} {r['explicit'] * 1e3:9.2f}ms "
                   f"{r['fused'] * 1e3:9.2f}ms {r['ratio']:14.2f}x")
            if device.type == "cuda":
                row += f" {r['mem_explicit'] / 2**20:10.0f}MiB {r['mem_fused'] / 2**20:7.0f}MiB"
            else:
                row += f" {r['cpu_ratio']:14.2f}x"
            print(row + f" {r['max_diff']:11.2e}")


if __name__ == "__main__":
    main()
