"""The small measurements behind the package's choices of kernel, each against PyTorch's own.

    .venv/bin/python benchmarks/bench_kernels.py
    .venv/bin/python benchmarks/bench_kernels.py --only gelu-bf16    # one section (see SECTIONS)

* GELU: ``minigpt2.layers.gelu`` (the native kernel of :mod:`minigpt2.native` on a CPU) against
  PyTorch's ``F.gelu(approximate="tanh")``, the formula written out, the same function as
  ``x·sigmoid(2u)``, and the exact (erf) GELU; forward and backward on the small training shape's
  MLP activations, on 2 threads and on 1; then a whole forward + backward of the small training
  model with each of the first two.
* GELU in bf16 (what it gets under bf16 autocast): the native kernel's bf16 path against PyTorch's
  bf16 GELU and against a round trip through float32, alternating, on the medium shape's activations.
* Training products: ``nn.Linear``'s (out, in) weight against Hugging Face's Conv1D (in, out),
  forward and backward, at the two training benchmark shapes.
* One row (generation at batch 1): ``F.linear`` (what the model runs) against a product from a
  contiguous (in, out) copy of each weight, through all of GPT-2 small's weight matrices in order,
  in GB/s of weights read.
* Attention: PyTorch's flash-attention-for-CPU backend against its math backend.
* Attention in bf16 (under bf16 autocast): PyTorch's fused kernel against the package's explicit path
  (scores, softmax, weights @ v), alternating, from T = 128 to 1024: where the explicit path is faster.
* AdamW: one step of ``torch.optim.AdamW`` fused (what ``minigpt2.train.make_optimizer`` picks on a
  CPU) against ``foreach``, over the parameter groups of the two training benchmark models.

Every figure is the median of ``--repeats`` timed calls after a warm-up. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import minigpt2.layers
from minigpt2.layers import gelu
from minigpt2.model import GPT, GPTConfig
from minigpt2.native import status as native_status

CLOCK = time.perf_counter  # --clock cpu: time.thread_time (the attention-bf16 section)


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def gelu_written_out(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gelu_as_sigmoid(x):
    return x * torch.sigmoid(2 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3)))  # ½(1 + tanh u) = sigmoid(2u)


def bench_gelu(repeats: int) -> None:
    x0 = torch.randn(12, 64, 512)  # (B, T, 4 · n_embd) of the small training shape
    forms = {
        "minigpt2.layers.gelu (native kernel)": gelu,
        'F.gelu(approximate="tanh")': lambda x: F.gelu(x, approximate="tanh"),
        "the formula written out": gelu_written_out,
        "x·sigmoid(2u), the same function": gelu_as_sigmoid,
        "F.gelu (exact erf; not GPT-2's)": F.gelu,
    }
    reference = F.gelu(x0.double(), approximate="tanh")
    print("\n### GELU, forward + backward on (12, 64, 512) float32\n")
    print(f"native kernel: {native_status()}\n")
    print("| form | 2 threads | 1 thread | largest difference from the tanh GELU (float64) |")
    print("|---|---|---|---|")
    threads = torch.get_num_threads()
    for name, form in forms.items():
        x = x0.clone().requires_grad_()
        row = []
        for n in (2, 1):
            torch.set_num_threads(n)
            row.append(median_ms(lambda: form(x).backward(x0), repeats))
        torch.set_num_threads(threads)
        with torch.no_grad():
            diff = (form(x0).double() - reference).abs().max().item()
        print(f"| {name} | {row[0]:.2f} ms | {row[1]:.2f} ms | {diff:.1e} |")


def bench_gelu_bf16(repeats: int) -> None:
    """GELU under bf16 autocast gets bf16 tensors: the native bf16 kernel against PyTorch's bf16 GELU and
    against casting to float32 for the float32 kernel, alternating, on the medium shape's activations."""
    x0 = torch.randn(8, 256, 1536).bfloat16()  # (B, T, 4 · n_embd) of the medium training shape
    forms = {
        "minigpt2.layers.gelu (native bf16 kernel)": gelu,
        'F.gelu(approximate="tanh") in bf16': lambda x: F.gelu(x, approximate="tanh"),
        "cast to float32, native float32 kernel, cast back": lambda x: gelu(x.float()).bfloat16(),
    }
    exact = F.gelu(x0.double(), approximate="tanh")
    times = {name: [] for name in forms}
    x = x0.clone().requires_grad_()
    for form in forms.values():
        form(x).backward(x0)  # warm-up
    for r in range(repeats):
        for name in (list(forms) if r % 2 == 0 else list(reversed(forms))):
            x.grad = None
            start = time.perf_counter()
            forms[name](x).backward(x0)
            times[name].append(time.perf_counter() - start)
    torch_name = 'F.gelu(approximate="tanh") in bf16'
    threads = torch.get_num_threads()
    print(f"\n### GELU, forward + backward on (8, 256, 1536) bfloat16, {threads} threads, alternating\n")
    print("| form | median | PyTorch's / this (median of per-round ratios) | largest difference from the exact value |")
    print("|---|---|---|---|")
    for name, form in forms.items():
        ratio = statistics.median(a / b for a, b in zip(times[torch_name], times[name]))
        with torch.no_grad():
            diff = (form(x0).double() - exact).abs().max().item()
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.2f} ms | {ratio:.2f}× | {diff:.1e} |")


def bench_gelu_in_training_step(repeats: int) -> None:
    """Forward + backward of the small training model (4 layers × 128, batch 12 × 64 characters),
    with its GELU by the native kernel and by F.gelu, alternating, 5 passes a sample."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0)).train()
    idx = torch.randint(65, (12, 64))
    native = minigpt2.layers.native_gelu
    kernels = {"native kernel": native, 'F.gelu(approximate="tanh")': lambda x: None}  # None: layers.gelu falls back

    def passes():
        for _ in range(5):
            model(idx, idx)[1].backward()
            model.zero_grad(set_to_none=True)

    times = {name: [] for name in kernels}
    try:
        for _ in range(repeats):
            for name, kernel in kernels.items():
                minigpt2.layers.native_gelu = kernel
                start = time.perf_counter()
                passes()
                times[name].append((time.perf_counter() - start) / 5 * 1e3)
    finally:
        minigpt2.layers.native_gelu = native
    native_ms, torch_ms = (statistics.median(t) for t in times.values())
    ratios = [b / a for a, b in zip(*times.values())]
    print("\n### The small training model, forward + backward, by its GELU\n")
    print("| GELU | ms per pass (median) |\n|---|---|")
    print(f"| native kernel | {native_ms:.2f} |\n| F.gelu(approximate=\"tanh\") | {torch_ms:.2f} |")
    print(f"\nF.gelu / native: {statistics.median(ratios):.3f}× (median of {repeats} alternating samples)")


def bench_training_layouts(repeats: int) -> None:
    print("\n### A layer's product, forward + backward: nn.Linear (out, in) against Conv1D (in, out)\n")
    print("| rows × in → out | nn.Linear | Conv1D | Linear / Conv1D |")
    print("|---|---|---|---|")
    shapes = [(768, 128, 384), (768, 128, 512), (768, 512, 128), (768, 128, 128),
              (2048, 384, 1152), (2048, 384, 1536), (2048, 1536, 384)]
    for rows, n_in, n_out in shapes:
        x = torch.randn(rows, n_in, requires_grad=True)
        w_linear = torch.randn(n_out, n_in, requires_grad=True)
        w_conv1d = torch.randn(n_in, n_out, requires_grad=True)
        b = torch.randn(n_out, requires_grad=True)
        g = torch.randn(rows, n_out)
        linear = median_ms(lambda: F.linear(x, w_linear, b).backward(g), repeats)
        conv1d = median_ms(lambda: torch.addmm(b, x, w_conv1d).backward(g), repeats)
        print(f"| {rows} × {n_in} → {n_out} | {linear:.2f} ms | {conv1d:.2f} ms | {linear / conv1d:.2f}× |")


@torch.inference_mode()
def bench_one_row(repeats: int) -> None:
    """Every weight matrix of GPT-2 small (12 blocks of four, then the LM head) times one row, in
    order, as one token of generation reads them: 124M float32 numbers, far more than the caches
    hold. The two layouts alternate, ``repeats`` samples each; the LM head alone after."""
    torch.manual_seed(0)
    shapes = [(2304, 768), (768, 768), (3072, 768), (768, 3072)] * 12 + [(50257, 768)]
    weights = [torch.randn(n_out, n_in) for n_out, n_in in shapes]
    biases = [torch.randn(n_out) if n_out != 50257 else None for n_out, _ in shapes]
    copies = [w.t().contiguous() for w in weights]  # (in, out): what minigpt2 once copied the weights into
    rows = [torch.randn(1, n_in) for _, n_in in shapes]
    gigabytes = sum(w.numel() for w in weights) * 4 / 1e9

    def sweep(product):
        return lambda: [product(x, w, b, c) for x, w, b, c in zip(rows, weights, biases, copies)]

    ways = {
        "F.linear, (out, in)": sweep(lambda x, w, b, c: F.linear(x, w, b)),
        "addmm from an (in, out) copy": sweep(lambda x, w, b, c: x @ c if b is None else torch.addmm(b, x, c)),
    }
    for way in ways.values():
        way()  # warm-up
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    head_row, head_weight, head_copy = rows[-1], weights[-1], copies[-1]
    head_ms = {
        "F.linear, (out, in)": median_ms(lambda: F.linear(head_row, head_weight), repeats),
        "addmm from an (in, out) copy": median_ms(lambda: head_row @ head_copy, repeats),
    }
    print("\n### One token's matrix products at batch 1 (GPT-2 small, 49 matrices, 498 MB)\n")
    print("| way | all 49, median | GB/s | LM head alone (cache-warm) |\n|---|---|---|---|")
    for name, samples in times.items():
        ms = statistics.median(samples) * 1e3
        print(f"| {name} | {ms:.1f} ms | {gigabytes / ms * 1e3:.1f} | {head_ms[name]:.2f} ms |")


def bench_attention_backends(repeats: int) -> None:
    print("\n### Causal attention, forward + backward: flash (for CPU) against math backend\n")
    print("| (B, heads, T, head_dim) | flash | math | math / flash |")
    print("|---|---|---|---|")
    for shape in ((12, 4, 64, 32), (8, 6, 256, 64)):
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))

        def run(backend):
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

        flash = median_ms(lambda: run(SDPBackend.FLASH_ATTENTION), repeats)
        math_ = median_ms(lambda: run(SDPBackend.MATH), repeats)
        print(f"| {shape} | {flash:.2f} ms | {math_:.2f} ms | {math_ / flash:.2f}× |")


def bench_attention_bf16(repeats: int) -> None:
    """What ``minigpt2.attention.explicit_is_faster`` rests on: causal attention forward + backward in bf16
    (as under bf16 autocast), PyTorch's fused kernel against the package's explicit path, alternating."""
    from minigpt2.attention import attention_weights, causal_mask

    print("\n### Causal attention in bf16, forward + backward: PyTorch's fused kernel against the explicit path\n")
    print("| (B, heads, T, head_dim) | fused (flash) | explicit | fused / explicit | largest error, fused | explicit |")
    print("|---|---|---|---|---|---|")
    for shape in ((16, 4, 128, 64), (8, 6, 256, 64), (4, 12, 512, 64), (2, 12, 1024, 64)):
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(shape, generator=g).bfloat16().requires_grad_() for _ in range(3))
        grad = torch.randn(shape, generator=g).bfloat16()
        paths = {
            "fused": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            "explicit": lambda: attention_weights(q, k, causal_mask(shape[2])) @ v,  # (B, heads, T, head_dim)
        }
        exact = F.scaled_dot_product_attention(*(t.detach().double() for t in (q, k, v)), is_causal=True)
        errors = {name: (path().double() - exact).abs().max().item() for name, path in paths.items()}
        times = {name: [] for name in paths}
        for name, path in paths.items():  # warm-up
            path().backward(grad)
        for r in range(repeats):
            for name in (list(paths) if r % 2 == 0 else list(reversed(paths))):
                start = CLOCK()
                paths[name]().backward(grad)
                times[name].append(CLOCK() - start)
        ratio = statistics.median(f / e for f, e in zip(times["fused"], times["explicit"]))
        ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(f"| {shape} | {ms['fused']:.2f} ms | {ms['explicit']:.2f} ms | {ratio:.2f}× | {errors['fused']:.1e} | "
              f"{errors['explicit']:.1e} |")


def bench_adamw(repeats: int) -> None:
    from minigpt2.train.optim import param_groups

    print("\n### One AdamW step: fused against foreach\n")
    print("| model | parameters | fused | foreach | foreach / fused |\n|---|---|---|---|---|")
    for name, (n_layer, n_head, n_embd, block_size) in {"4 × 128": (4, 4, 128, 64),
                                                        "6 × 384": (6, 6, 384, 256)}.items():
        model = GPT(GPTConfig(block_size=block_size, vocab_size=65, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        ms = {kind: median_ms(torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, **{kind: True}).step, repeats)
              for kind in ("fused", "foreach")}
        print(f"| {name} | {model.num_params() / 1e6:.2f}M | {ms['fused']:.2f} ms | {ms['foreach']:.2f} ms | "
              f"{ms['foreach'] / ms['fused']:.1f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu (attention-bf16 only, with --threads 1): "
                             "the one thread's CPU time, for a loaded host")
    args = parser.parse_args()
    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            raise SystemExit("--clock cpu needs --threads 1 (it counts the CPU time of the one thread doing the work)")
        CLOCK = time.thread_time
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, clock: {args.clock}")
    for name, (bench, share) in SECTIONS.items():
        if not args.only or name in args.only:
            bench(max(1, int(args.repeats * share)))


SECTIONS = {  # name: (function, the fraction of --repeats it runs)
    "gelu": (bench_gelu, 1.0),
    "gelu-bf16": (bench_gelu_bf16, 0.5),
    "gelu-in-step": (bench_gelu_in_training_step, 0.5),
    "layouts": (bench_training_layouts, 0.5),
    "one-row": (bench_one_row, 0.5),
    "attention": (bench_attention_backends, 0.5),
    "attention-bf16": (bench_attention_bf16, 0.2),
    "adamw": (bench_adamw, 1.0),
}


if __name__ == "__main__":
    main()
