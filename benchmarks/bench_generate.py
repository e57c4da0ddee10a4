"""Generation speed, side by side with Hugging Face, in the same run.

    .venv/bin/python benchmarks/bench_generate.py

GPT-2 small's shape (124M parameters) with random weights, float32, batch 1, greedy,
a 20-token prompt and 200 new tokens, on ``--threads`` CPU threads (2 by default). Timed:

* ``GPT2LMHeadModel.generate`` from Hugging Face ``transformers``, with its KV cache, on the
  same weights (target: ours with the cache at least 1.5× its tokens per second);
* ``GPT.generate(use_cache=True)``: one token through the model per step;
* ``GPT.generate(use_cache=False)``: the whole context through the model every step
  (target: the cached path at least 5× faster).

``--batch 8``: instead, a batch of 8 prompts of different lengths (``--prompt`` the longest),
left-padded, with its attention mask, greedy: ``GPT.generate(..., attention_mask=mask)`` with the
cache against ``GPT2LMHeadModel.generate(..., attention_mask=mask)``; the tokens must be
identical, and tokens/s counts every row's new tokens.

The three must produce identical tokens (checked every round). The rounds interleave the
three, and the ratios are taken within a round, then their median reported, so that the
load of a shared machine, which moves from minute to minute, weighs on both sides of a ratio.

Memory-bandwidth bound: generating one token reads every weight once (and the KV cache);
at batch 1 that traffic, not arithmetic, sets the pace. The read bandwidth is measured
here with a sum over a tensor much larger than the caches; the bound is bandwidth / bytes
per token, and the cached path's fraction of it is reported. A second floor: the time of a
token's matrix products alone (each weight matrix times one row, in the model's order, by the
kernels ``generate`` uses, and nothing else). No implementation that reads float32 weights
through these kernels makes a token faster than that; the run says how the 1.5× target
compares with both.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from minigpt2.hf import config_to_hf, to_hf_state_dict
from minigpt2.model import GPT, GPTConfig


def tokens_per_second(fn, new_tokens: int) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return new_tokens / (time.perf_counter() - start), out


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
    included) times one row, in order, by the kernels of ``generate`` (best of ``repeats``)."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    rows = [torch.zeros(1, 1, m.in_features) for m in layers]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for layer, row in zip(layers, rows):
                layer(row)
            best = min(best, time.perf_counter() - start)
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
    parser.add_argument("--batch", type=int, default=1, help="above 1: a left-padded batch of prompts of "
                                                             "different lengths")
    args = parser.parse_args()

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

    with torch.inference_mode():
        ours.generate(idx, 4, temperature=0)  # warm-up
        hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=4, do_sample=False, pad_token_id=0)
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):
            outputs = {}
            for name, fn in runs.items():
                speed, outputs[name] = tokens_per_second(fn, n)
                speeds[name].append(speed)
            reference = outputs["GPT.generate, cache"]
            assert all(torch.equal(out, reference) for out in outputs.values()), "the paths disagree on the tokens"
            print(f"round {r + 1}: " + ", ".join(f"{name} {s[-1]:.2f} tok/s" for name, s in speeds.items()), flush=True)
        bandwidth = read_bandwidth()
        floor = matrix_products_seconds(ours)

    cached = speeds["GPT.generate, cache"]
    vs_hf = [c / h for c, h in zip(cached, speeds["transformers generate (cache)"])]
    bound = bandwidth / bytes_per_token(ours, args.prompt, n)
    print()
    print(f"torch {torch.__version__}, transformers {transformers_version}, Python {platform.python_version()}, "
          f"{args.threads} threads, {config.n_layer} layers × {config.n_embd}, {ours.num_params():,} parameters")
    print(f"prompt {args.prompt} tokens, {n} new tokens, greedy, batch 1, float32; tokens identical on all paths")
    print()
    print("| path | tokens/s (median of rounds) | best | compared |")
    print("|---|---|---|---|")
    for name, s in speeds.items():
        compared = ""
        if name == "GPT.generate, cache":
            compared = f"{statistics.median(vs_hf):.2f}× transformers (median of per-round ratios)"
        elif name == "GPT.generate, no cache":
            vs_uncached = [c / u for c, u in zip(cached, s)]
            compared = f"the cache is {statistics.median(vs_uncached):.1f}× faster"
        print(f"| {name} | {statistics.median(s):.2f} | {max(s):.2f} | {compared} |")
    print()
    print(f"read bandwidth (sum over 1 GiB): {bandwidth / 1e9:.1f} GB/s; bytes per token "
          f"{bytes_per_token(ours, args.prompt, n) / 1e6:.0f} MB → bound {bound:.1f} tokens/s; cached path at "
          f"{max(cached) / bound:.0%} of it (best round), {statistics.median(cached) / bound:.0%} (median)")
    hf_median = statistics.median(speeds["transformers generate (cache)"])
    print(f"a token's matrix products alone: {floor * 1e3:.1f} ms → at most {1 / floor:.1f} tokens/s; "
          f"cached path at {statistics.median(cached) * floor:.0%} of it (median)")
    print(f"1.5× transformers ({hf_median:.2f} tokens/s, median) would be {1.5 * hf_median:.1f} tokens/s: "
          f"{1.5 * hf_median / bound:.0%} of the bandwidth bound, {1.5 * hf_median * floor:.0%} of the "
          "matrix-product floor")


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
