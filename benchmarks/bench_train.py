"""Training speed against Hugging Face, and how far the CPU preset gets in five minutes.

Two benchmarks:

``throughput`` — training tokens per second of minigpt2's GPT and of Hugging Face's
``GPT2LMHeadModel`` (sdpa attention) of the same shape, in one process, in the same precision
(``--dtype``: float32, or both under the same bf16 autocast), with the same optimizer (AdamW, foreach, decay groups),
the same clipping and the same
batches. The two are timed in alternating rounds so that load from other programs
hits both alike; the ratio reported is the median of the per-round ratios. MFU is
against the matmul peak of that dtype measured in the same run::

    .venv/bin/python benchmarks/bench_train.py throughput            # both sizes
    .venv/bin/python benchmarks/bench_train.py throughput --rounds 9 --steps 20
    .venv/bin/python benchmarks/bench_train.py throughput --sizes small --compile   # both torch.compile'd
    .venv/bin/python benchmarks/bench_train.py throughput --dtype bfloat16          # both under bf16 autocast

``precision`` — minigpt2's training step in the precision ``--dtype auto`` picks for each shape
against the same step in float32, alternating, and what auto picked and why::

    .venv/bin/python benchmarks/bench_train.py precision --rounds 10

``learn`` — a preset (``shakespeare-char`` by default) from scratch, timed, with the validation
loss at every evaluation (the loss curve, by step, tokens seen and seconds)::

    MINIGPT2_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_train.py learn
    MINIGPT2_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_train.py learn --preset shakespeare-char-bf16
    MINIGPT2_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_train.py learn --set max_iters=500 dtype=float32

On a loaded host, ``--threads 1 --clock cpu`` (throughput, precision) times one thread's CPU time
instead of the wall clock, leaving out the time other programs take.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from minigpt2.model import GPT, GPTConfig
from minigpt2.train.mfu import measure_matmul_flops, training_flops_per_token
from minigpt2.train.optim import clip_grad_norm, make_optimizer
from minigpt2.train.precision import autocast_context, choose_precision

SIZES = {
    # name: (n_layer, n_head, n_embd, block_size, batch_size) — nanoGPT's two Shakespeare-char models
    "small": (4, 4, 128, 64, 12),
    "medium": (6, 6, 384, 256, 8),
    "bf16-preset": (4, 4, 256, 128, 16),  # the shakespeare-char-bf16 preset's shape
}
VOCAB = 65  # Tiny Shakespeare's characters


def hf_model(n_layer, n_head, n_embd, block_size):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB, n_positions=block_size, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
        bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(config)
    assert model.config._attn_implementation == "sdpa"
    return model


def ours_model(n_layer, n_head, n_embd, block_size):
    return GPT(GPTConfig(block_size=block_size, vocab_size=VOCAB, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                         dropout=0.0))


def step_fn(model, loss_of, dtype=torch.float32):
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    autocast = autocast_context(torch.device("cpu"), dtype)

    def step(x, y):
        with autocast:
            loss = loss_of(model, x, y)
        loss.backward()
        clip_grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def ours_loss(model, x, y):
    return model(x, y)[1]


def hf_loss(model, x, y):
    return model(input_ids=x, labels=x).loss  # Hugging Face shifts the labels itself


CLOCK = time.perf_counter  # --clock cpu: time.thread_time, see main()


def time_steps(step, batches) -> float:
    start = CLOCK()
    for x, y in batches:
        step(x, y)
    return CLOCK() - start


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """The best FLOP/s of an n × n product in ``dtype``, timed by the benchmark's clock
    (as :func:`minigpt2.train.mfu.measure_matmul_flops`, which always reads the wall clock)."""
    if CLOCK is time.perf_counter:
        return measure_matmul_flops("cpu", dtype, size=n, repeats=repeats)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = CLOCK()
        a @ b
        best = min(best, CLOCK() - start)
    return 2.0 * n**3 / best


def throughput(size: str, rounds: int, steps: int, compile: bool = False, dtype: torch.dtype = torch.float32) -> dict:
    n_layer, n_head, n_embd, block_size, batch_size = SIZES[size]
    torch.manual_seed(0)
    ours = ours_model(n_layer, n_head, n_embd, block_size).train()
    hf = hf_model(n_layer, n_head, n_embd, block_size).train()
    n_ours = sum(p.numel() for p in ours.parameters())
    n_hf = sum(p.numel() for p in hf.parameters())
    assert n_ours == n_hf, f"the two models should have the same parameters: {n_ours} vs {n_hf}"
    run_ours, run_hf = (torch.compile(ours), torch.compile(hf)) if compile else (ours, hf)
    contenders = {"minigpt2": step_fn(run_ours, ours_loss, dtype), "huggingface": step_fn(run_hf, hf_loss, dtype)}
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(VOCAB, (batch_size, block_size), generator=g),) * 2 for _ in range(steps)]
    for step in contenders.values():  # warm-up: allocator, kernels, optimizer state
        time_steps(step, batches[:3])
    peak = matmul_peak(dtype)

    # Short rounds, alternating which goes first: a burst of load from other programs
    # lands on both, and the median of the per-round ratios ignores the rounds it spoils.
    tokens = steps * batch_size * block_size
    rates = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            rates[name].append(tokens / time_steps(contenders[name], batches))
    ratios = [a / b for a, b in zip(rates["minigpt2"], rates["huggingface"])]
    peak = max(peak, matmul_peak(dtype))  # the better of before and after
    flops_per_token = training_flops_per_token(n_ours - ours.transformer.wpe.weight.numel(), n_layer, n_embd,
                                               block_size)
    median = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "size": size,
        "compiled": compile,
        "dtype": str(dtype).removeprefix("torch."),
        "shape": dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, batch_size=batch_size),
        "params": n_ours,
        "tokens_per_s_best": {name: max(r) for name, r in rates.items()},
        "tokens_per_s_median": median,
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "matmul_peak_flops": peak,
        "mfu_median": {name: median[name] * flops_per_token / peak for name in median},
    }


def precision(size: str, rounds: int, steps: int) -> dict:
    """minigpt2's step in the precision ``--dtype auto`` picks against the same step in float32."""
    n_layer, n_head, n_embd, block_size, batch_size = SIZES[size]
    torch.manual_seed(0)
    model = ours_model(n_layer, n_head, n_embd, block_size).train()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(VOCAB, (batch_size, block_size), generator=g),) * 2 for _ in range(steps)]
    chosen = choose_precision("auto", torch.device("cpu"), model, batches[0])
    contenders = {"auto": step_fn(model, ours_loss, chosen.dtype), "float32": step_fn(model, ours_loss, torch.float32)}
    for step in contenders.values():
        time_steps(step, batches[:2])
    tokens = steps * batch_size * block_size
    rates = {name: [] for name in contenders}
    for r in range(rounds):
        for name in (list(contenders) if r % 2 == 0 else list(reversed(contenders))):
            rates[name].append(tokens / time_steps(contenders[name], batches))
    ratios = [a / b for a, b in zip(rates["auto"], rates["float32"])]
    return {"size": size, "auto_picked": chosen.name, "why": chosen.reason,
            "tokens_per_s_median": {k: statistics.median(v) for k, v in rates.items()}, "ratios": ratios}


def print_precision(result: dict) -> None:
    q = quartiles(result["ratios"])
    print(f"\n{result['size']}: auto picked {result['auto_picked']} ({result['why']})")
    print("  " + "   ".join(f"{k} median {v:,.0f} tok/s" for k, v in result["tokens_per_s_median"].items()))
    print(f"  auto / float32: {statistics.median(result['ratios']):.2f}x  (median of {len(result['ratios'])} "
          f"alternating rounds; quartiles {q[0]:.2f} to {q[-1]:.2f})")


def quartiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=4) if len(values) > 1 else values * 3


def print_throughput(result: dict) -> None:
    s = result["shape"]
    print(
        f"\n{result['size']}{' (both compiled)' if result['compiled'] else ''}: {s['n_layer']} layers, {s['n_head']} "
        f"heads, n_embd {s['n_embd']}, context {s['block_size']}, batch {s['batch_size']} "
        f"({result['params'] / 1e6:.2f}M parameters); "
        f"{'bf16 autocast' if result['dtype'] == 'bfloat16' else result['dtype']}; measured {result['dtype']} matmul "
        f"peak {result['matmul_peak_flops'] / 1e9:.1f} GFLOP/s"
    )
    for name in ("minigpt2", "huggingface"):
        print(
            f"  {name:<12} median {result['tokens_per_s_median'][name]:>9,.0f} tok/s   best "
            f"{result['tokens_per_s_best'][name]:>9,.0f} tok/s   MFU (median) {result['mfu_median'][name]:.1%}"
        )
    q = quartiles(result["ratios"])
    print(f"  minigpt2 / huggingface: {result['ratio_median']:.2f}x  (median of {len(result['ratios'])} alternating "
          f"rounds; quartiles {q[0]:.2f} to {q[-1]:.2f})")


def learn(max_minutes: float | None, name: str = "shakespeare-char", overrides: dict | None = None) -> dict:
    from minigpt2.train import preset, train

    config = preset(name, **{"out_dir": f"checkpoints/bench-{name}", "progress": False, **(overrides or {})})
    start = time.perf_counter()
    curve = []

    def on_row(kind, row, model):
        if kind == "val":
            elapsed = time.perf_counter() - start
            curve.append({"step": row["step"], "tokens": row["step"] * config.tokens_per_step,
                          "seconds": round(elapsed, 1),
                          "val_loss": round(row["val_loss"], 4)})
            print(f"step {row['step']:>5}  {elapsed:6.0f} s  val loss {row['val_loss']:.4f}", flush=True)

    result = train(config, callback=on_row)
    seconds = time.perf_counter() - start
    rates = [r["tokens_per_s"] for r in result.history.train]
    summary = {
        "preset": name,
        "overrides": overrides or {},
        "precision": f"{result.precision.name} ({result.precision.reason})",
        "tokens_seen": result.step * config.tokens_per_step,
        "steps": result.step,
        "seconds": round(seconds, 1),
        "final_val_loss": round(result.val_loss, 4),
        "median_tokens_per_s": round(statistics.median(rates)),
        "median_mfu": round(statistics.median(r["mfu"] for r in result.history.train), 4),
        "curve": curve,
    }
    print(f"precision: {summary['precision']}")
    print(f"done: {result.step} steps ({summary['tokens_seen']:,} tokens) in {seconds:.0f} s, val loss "
          f"{result.val_loss:.4f}, median {summary['median_tokens_per_s']:,} tok/s, MFU {summary['median_mfu']:.1%}")
    if max_minutes is not None and seconds > 60 * max_minutes:
        print(f"note: the run took longer than {max_minutes:g} minutes on this machine as loaded now")
    return summary


def parse_overrides(pairs: list[str]) -> dict:
    """["max_iters=500", "dtype=float32"] -> {"max_iters": 500, "dtype": "float32"}, typed as TrainConfig's fields."""
    from dataclasses import fields

    from minigpt2.train import TrainConfig

    types = {f.name: f.type for f in fields(TrainConfig)}
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        kind = types.get(key)
        if kind is None:
            raise SystemExit(f"--set: {key!r} is not a training setting")
        parse = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(kind, str)
        out[key] = parse(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput", help="tokens/s against Hugging Face GPT2LMHeadModel")
    t.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=list(SIZES))
    t.add_argument("--rounds", type=int, default=30)
    t.add_argument("--steps", type=int, default=3, help="training steps per timed round")
    t.add_argument("--compile", action="store_true", help="torch.compile both models first (the warm-up compiles)")
    t.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="bfloat16: both "
        "under bf16 autocast")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    t.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: the CPU time of the one thread (with --threads 1): on a loaded host it leaves out the "
                        "time other programs take")
    t.add_argument("--json", help="also write the results to this file")
    pr = sub.add_parser("precision", help="minigpt2's step as --dtype auto picks it against float32")
    pr.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=list(SIZES))
    pr.add_argument("--rounds", type=int, default=10)
    pr.add_argument("--steps", type=int, default=2, help="training steps per timed round")
    pr.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    pr.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: the CPU time of the one thread (with --threads 1): on a loaded host it leaves out the "
                        "time other programs take")
    pr.add_argument("--json", help="also write the results to this file")
    lrn = sub.add_parser("learn", help="train a preset from scratch and record its loss curve")
    lrn.add_argument("--preset", default="shakespeare-char")
    lrn.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override settings, e.g. "
        "max_iters=500 dtype=float32")
    lrn.add_argument("--max-minutes", type=float, default=5.0)
    lrn.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    global CLOCK
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if getattr(args, "clock", "wall") == "cpu":
        if torch.get_num_threads() != 1:
            raise SystemExit("--clock cpu needs --threads 1 (it counts the CPU time of the one thread doing the work)")
        CLOCK = time.thread_time
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, clock: {getattr(args, 'clock', 'wall')}")
    if args.what == "throughput":
        results = []
        for size in args.sizes:
            results.append(throughput(size, args.rounds, args.steps, args.compile, getattr(torch, args.dtype)))
            print_throughput(results[-1])
    elif args.what == "precision":
        results = []
        for size in args.sizes:
            results.append(precision(size, args.rounds, args.steps))
            print_precision(results[-1])
    else:
        results = learn(args.max_minutes, args.preset, parse_overrides(args.set))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
