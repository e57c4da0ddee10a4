"""Generation speed, side by side with Hugging Face, in the same run.

    .venv/bin/python benchmarks/bench_generate.py

GPT-2 small's shape (124M parameters) with random weights, float32, batch 1, greedy,
a 20-token prompt and 200 new tokens, on ``--threads`` CPU threads (2 by default). Timed:

* ``GPT2LMHeadModel.generate`` from Hugging Face ``transformers``, with its KV cache, on the
  same weights (targets, issue 19: ours with the cache at least 1.3× its tokens per second, and at
  least 90% of the matrix-product floor below);
* ``GPT.generate(use_cache=True)``: one token through the model per step;
* ``GPT.generate(use_cache=False)``: the whole context through the model every step
  (target: the cached path at least 5× faster).

``--batch 8``: instead, a batch of 8 prompts of different lengths (``--prompt`` the longest),
left-padded, with its attention mask, greedy: ``GPT.generate(..., attention_mask=mask)`` with the
cache against ``GPT2LMHeadModel.generate(..., attention_mask=mask)``; the tokens must be
identical, and tokens/s counts every row's new tokens.

The three must produce identical tokens (checked every round). The rounds interleave the
three (alternating which goes first), and the ratios are taken within a round, then their median
and quartiles reported, so that the load of a shared machine, which moves from minute to minute,
weighs on both sides of a ratio. On a loaded host, ``--threads 1 --clock cpu`` counts the one
thread's CPU time instead of the wall clock, leaving out the time other programs take.

Memory-bandwidth bound: generating one token reads every weight once (and the KV cache);
at batch 1 that traffic, not arithmetic, sets the pace. The read bandwidth is measured
here with a sum over a tensor much larger than the caches; the bound is bandwidth / bytes
per token, and the cached path's fraction of it is reported. A second floor: the time of a
token's matrix products alone (each weight matrix times one row, in the model's order, by the
kernels ``generate`` uses, and nothing else), measured in every round next to the cached path. \
No implementation that reads float32 weights
through these kernels makes a token faster than that; the run says how the 1.3× target
compares with both.

``--bf16-weights`` also times ``GPT.generate`` on a bfloat16 copy of the same weights: a token then
reads half the bytes. Its greedy tokens can differ from float32's where two logits nearly tie, so
they are compared, not required equal.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from minigpt2.hf import config_to_hf, to_hf_state_dict
from minigpt2.model import GPT, GPTConfig

CLOCK = time.perf_counter  # --clock cpu: time.thread_time, see main()


def tokens_per_second(fn, new_tokens: int) -> tuple[float, torch.Tensor]:
    start = CLOCK()
    out = fn()
    return new_tokens / (CLOCK() - start), out


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second read by a sum over a ``gib`` GiB float32 tensor (best of ``repeats``)."""
    x = torch.ones(int(gib * 2**30) // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


def matrix_products_seconds(model: GPT, repeats: int = 10) -> float:
    """Seconds for one token's matrix products alone: every Linear of ``model`` (the LM head
    included) times one row, in order, by the kernels of ``generate`` (best of ``repeats``,
    by the benchmark's clock)."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    rows = [torch.zeros(1, 1, m.in_features, dtype=m.weight.dtype) for m in layers]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = CLOCK()
            for layer, row in zip(layers, rows):
                layer(row)
            best = min(best, CLOCK() - start)
    return best


def bytes_per_token(model: GPT, prompt: int, new_tokens: int) -> float:
    """Weights read to make one token (every parameter but the position table, of which one row
    is read), plus the KV cache read at the average length, all float32."""
    c = model.config
    weights = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel() + c.n_embd
    mean_length = prompt + new_tokens / 2
    kv_cache = 2 * c.n_layer * mean_length * c.n_embd
    return 4 * (weights + kv_cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=20, help="prompt length in tokens")
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--preset", default="gpt2", help="model shape (a GPTConfig preset)")
    parser.add_argument("--skip-uncached", action="store_true", help="leave out the slow uncached path")
    parser.add_argument("--batch", type=int, default=1,
                        help="above 1: a left-padded batch of prompts of different lengths")
    parser.add_argument("--bf16-weights", action="store_true",
                        help="also time GPT.generate on a bfloat16 copy of the weights (half the bytes a token reads)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the CPU time of the one thread (with --threads 1): "
                             "on a loaded host it leaves out the time other programs take")
    args = parser.parse_args()
    global CLOCK
    if args.clock == "cpu":
        if args.threads != 1:
            raise SystemExit("--clock cpu needs --threads 1 (it counts the CPU time of the one thread doing the work)")
        CLOCK = time.thread_time

    from transformers import GPT2Config, GPT2LMHeadModel, __version__ as transformers_version

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPTConfig.from_preset(args.preset)
    ours = GPT(config).eval()
    hf_config = {k: v for k, v in config_to_hf(config).items() if k not in ("bos_token_id", "eos_token_id")}
    hf = GPT2LMHeadModel(GPT2Config(**hf_config)).eval()  # no end-of-text token: all tokens are generated
    hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    if args.batch > 1:
        return batched(args, ours, hf, transformers_version)
    idx = torch.randint(0, config.vocab_size, (1, args.prompt), generator=torch.Generator().manual_seed(0))
    n = args.new_tokens

    runs = {
        "transformers generate (cache)": lambda: hf.generate(
            idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, min_new_tokens=n, do_sample=False,
            pad_token_id=0, use_cache=True,
        ),
        "GPT.generate, cache": lambda: ours.generate(idx, n, temperature=0, use_cache=True),
    }
    if not args.skip_uncached:
        runs["GPT.generate, no cache"] = lambda: ours.generate(idx, n, temperature=0, use_cache=False)
    BF16 = "GPT.generate, cache, bf16 weights"
    if args.bf16_weights:
        # rounds each weight; its greedy tokens may differ where logits nearly tie
        ours16 = copy.deepcopy(ours).to(torch.bfloat16)
        runs[BF16] = lambda: ours16.generate(idx, n, temperature=0, use_cache=True)

    with torch.inference_mode():
        ours.generate(idx, 4, temperature=0)  # warm-up
        hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=4, do_sample=False, pad_token_id=0)
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        floors: list[float] = []  # the matrix-product floor, measured in every round, between the paths
        floors16: list[float] = []  # the same with the bf16 weights (--bf16-weights)
        agree16: list[float] = []  # the share of the bf16 path's new tokens equal to float32's
        for r in range(args.rounds):
            outputs = {}
            order = list(runs) if r % 2 == 0 else list(reversed(runs))  # alternate who goes first
            for name in order:
                speed, outputs[name] = tokens_per_second(runs[name], n)
                speeds[name].append(speed)
                if name == "GPT.generate, cache":
                    floors.append(matrix_products_seconds(ours, repeats=5))
                elif name == BF16:
                    floors16.append(matrix_products_seconds(ours16, repeats=5))
            reference = outputs["GPT.generate, cache"]
            if args.bf16_weights:
                agree16.append((outputs.pop(BF16)[:, args.prompt:] == reference[:, args.prompt:]).float().mean().item())
            assert all(torch.equal(out, reference) for out in outputs.values()), (
                "the float32 paths disagree on the tokens")
            print(f"round {r + 1}: " + ", ".join(f"{name} {s[-1]:.2f} tok/s" for name, s in speeds.items())
                  + f", floor {floors[-1] * 1e3:.1f} ms", flush=True)
        bandwidth = read_bandwidth()
        floor = statistics.median(floors)

    cached = speeds["GPT.generate, cache"]
    vs_hf = [c / h for c, h in zip(cached, speeds["transformers generate (cache)"])]
    of_floor = [c * f for c, f in zip(cached, floors)]  # per round: tokens/s against 1 / floor
    bound = bandwidth / bytes_per_token(ours, args.prompt, n)
    print()
    print(f"torch {torch.__version__}, transformers {transformers_version}, Python {platform.python_version()}, "
          f"{args.threads} threads, clock: {args.clock}, {config.n_layer} layers × {config.n_embd}, "
          f"{ours.num_params():,} parameters")
    print(f"prompt {args.prompt} tokens, {n} new tokens, greedy, batch 1, float32; "
          f"float32 tokens identical on all paths")
    print()
    print("| path | tokens/s (median of rounds) | best | compared |")
    print("|---|---|---|---|")
    for name, s in speeds.items():
        compared = ""
        if name == "GPT.generate, cache":
            q = quartiles(vs_hf)
            compared = (f"{statistics.median(vs_hf):.2f}× transformers (median of per-round ratios; "
                        f"quartiles {q[0]:.2f}–{q[-1]:.2f})")
        elif name == BF16:
            vs32 = [b / c for b, c in zip(s, cached)]
            compared = (f"{statistics.median(vs32):.2f}× the float32 weights (quartiles {quartiles(vs32)[0]:.2f}–"
                        f"{quartiles(vs32)[-1]:.2f}), "
                        f"{statistics.median([b / h for b, h in zip(s, speeds['transformers generate (cache)'])]):.2f}"
                        f"× transformers; {statistics.median(agree16):.0%} of its tokens equal float32's")
        elif name == "GPT.generate, no cache":
            vs_uncached = [c / u for c, u in zip(cached, s)]
            compared = f"the cache is {statistics.median(vs_uncached):.1f}× faster"
        print(f"| {name} | {statistics.median(s):.2f} | {max(s):.2f} | {compared} |")
    print()
    print(f"read bandwidth (sum over 1 GiB): {bandwidth / 1e9:.1f} GB/s; bytes per token "
          f"{bytes_per_token(ours, args.prompt, n) / 1e6:.0f} MB → bound {bound:.1f} tokens/s; cached path at "
          f"{max(cached) / bound:.0%} of it (best round), {statistics.median(cached) / bound:.0%} (median)")
    hf_median = statistics.median(speeds["transformers generate (cache)"])
    q = quartiles(of_floor)
    print(f"a token's matrix products alone: {floor * 1e3:.1f} ms (median of rounds) → "
          f"at most {1 / floor:.1f} tokens/s; "
          f"cached path at {statistics.median(of_floor):.1%} of it (median of per-round ratios; "
          f"quartiles {q[0]:.1%}–{q[-1]:.1%})")
    if args.bf16_weights:
        print(f"with bf16 weights: matrix products alone {statistics.median(floors16) * 1e3:.1f} ms; "
              f"the bf16 path at {statistics.median([b * f for b, f in zip(speeds[BF16], floors16)]):.1%} "
              f"of that floor (median of rounds)")
    print(f"1.3× transformers ({hf_median:.2f} tokens/s, median) would be {1.3 * hf_median:.1f} tokens/s: "
          f"{1.3 * hf_median / bound:.0%} of the bandwidth bound, "
          f"{1.3 * hf_median * floor:.0%} of the matrix-product floor")


def quartiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=4) if len(values) > 1 else values * 3


def batched(args, ours: GPT, hf, transformers_version: str) -> None:
    """A left-padded batch of ``args.batch`` prompts of different lengths, ours and transformers' in turn."""
    g = torch.Generator().manual_seed(0)
    B, T, n = args.batch, args.prompt, args.new_tokens
    lengths = torch.linspace(max(1, T // 3), T, B).round().long().tolist()  # e.g. 7 … 20 tokens
    idx = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for row, length in enumerate(lengths):
        idx[row, T - length :] = torch.randint(0, ours.config.vocab_size, (length,), generator=g)
        mask[row, T - length :] = 1
    runs = {
        "transformers generate (cache, mask)": lambda: hf.generate(
            idx, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0,
            use_cache=True
        ),
        "GPT.generate (cache, mask)": lambda: ours.generate(idx, n, temperature=0, use_cache=True, attention_mask=mask),
    }
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):
            outputs = {}
            for name, fn in runs.items():
                speed, outputs[name] = tokens_per_second(fn, B * n)
                speeds[name].append(speed)
            assert torch.equal(*outputs.values()), "ours and transformers disagree on the tokens"
            print(f"round {r + 1}: " + ", ".join(f"{name} {s[-1]:.2f} tok/s" for name, s in speeds.items()), flush=True)
    ratios = [o / h for o, h in zip(*reversed(list(speeds.values())))]
    print()
    print(f"torch {torch.__version__}, transformers {transformers_version}, Python {platform.python_version()}, "
          f"{args.threads} threads, {ours.config.n_layer} layers × {ours.config.n_embd}, "
          f"{ours.num_params():,} parameters")
    print(f"batch {B}, prompts of {lengths} tokens left-padded to {T}, {n} new tokens each, greedy, float32; "
          "tokens identical")
    print()
    print("| path | tokens/s, all rows (median of rounds) | best | compared |")
    print("|---|---|---|---|")
    for name, s in speeds.items():
        compared = ""
        if name.startswith("GPT"):
            compared = f"{statistics.median(ratios):.2f}× transformers (median of per-round ratios)"
        print(f"| {name} | {statistics.median(s):.2f} | {max(s):.2f} | {compared} |")


if __name__ == "__main__":
    main()
