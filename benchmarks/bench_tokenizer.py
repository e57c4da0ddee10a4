"""Tokenizer speed, side by side with tiktoken, in the same run.

    MINIGPT2_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_tokenizer.py

Measures, on all of tinyshakespeare (1.1 MB):

* training a 512-id vocabulary with ``BPETokenizer.train`` (target: ≤ 3 s), and the
  plain trainer (``simple.train_simple``, every pair recounted after every merge),
  timed for a few merges and scaled to 256 (``--full-simple`` runs all 256);
* encoding with ``gpt2_tokenizer()`` against tiktoken's GPT-2 encoding (target: ≤ 4×
  tiktoken's time), cold (a fresh tokenizer, nothing remembered) and warm (every
  chunk already seen); the ids are checked to be identical;
* building ``gpt2_tokenizer()`` (recovering 50,000 merges from the ranks file).

``--long-chunks``: instead, one long chunk (``"x" * n``, a single pre-split chunk) encoded by a
fresh ``gpt2_tokenizer()`` and by tiktoken, alternating, for n up to 1,000,000 (ids checked
identical); the time per byte stays flat when encoding is linear. The quadratic short loop
(``merge_short``, used below 48 bytes) is timed on the same chunk up to 40,000 for comparison.

Every figure is given as wall-clock time and as CPU time of this process: on a
shared machine other processes stretch the wall clock, while CPU time stays close
to what an idle machine would show. Each is the median of ``--repeats`` runs; the
encoding ratios are medians of per-repeat ratios, the two encoders timed back to back.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass

from minigpt2.data import load_text
from minigpt2.tokenizer import BPETokenizer, gpt2_tokenizer, tiktoken_gpt2
from minigpt2.tokenizer.bpe import merge_short
from minigpt2.tokenizer.gpt2 import _gpt2_merges
from minigpt2.tokenizer.simple import train_simple


@dataclass
class Timing:
    wall: float
    cpu: float


def timed(fn, *args, **kwargs) -> tuple[Timing, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), out


def median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--simple-merges", type=int, default=8, help="merges of the plain trainer to time "
                                                                     "(scaled to 256)")
    parser.add_argument("--full-simple", action="store_true", help="run the plain trainer for all 256 merges (minutes)")
    parser.add_argument("--long-chunks", action="store_true", help="time one long chunk against tiktoken instead")
    args = parser.parse_args()
    if args.long_chunks:
        return long_chunks(args.repeats)

    text = load_text("tinyshakespeare")
    reference = tiktoken_gpt2()
    rows = []

    train = median([timed(BPETokenizer.train, text, 512)[0] for _ in range(args.repeats)])
    rows.append(("train 512-id vocabulary, `BPETokenizer.train`", train, "", "≤ 3 s"))

    merges = 256 if args.full_simple else args.simple_merges
    simple, _ = timed(train_simple, text, 256 + merges)
    scale = 256 / merges
    simple = Timing(simple.wall * scale, simple.cpu * scale)
    label = "train 512-id vocabulary, plain trainer" + ("" if args.full_simple else f" (first {merges} "
        f"merges × {scale:g})")
    rows.append((label, simple, f"{simple.cpu / train.cpu:.0f}× the fast trainer (CPU)", ""))

    builds = []
    for _ in range(args.repeats):
        _gpt2_merges.cache_clear()
        builds.append(timed(gpt2_tokenizer)[0])
    rows.append(("build `gpt2_tokenizer()` (recover 50,000 merges)", median(builds), "", ""))

    expected = reference.encode_ordinary(text)
    warm_tokenizer = gpt2_tokenizer()
    warm_tokenizer.encode_ordinary(text)
    tik, cold, warm = [], [], []
    for _ in range(args.repeats):
        t_ref, _ = timed(reference.encode_ordinary, text)
        fresh = gpt2_tokenizer()  # the merges are cached; the chunk memory is empty
        t_cold, ids_cold = timed(fresh.encode_ordinary, text)
        t_warm, ids_warm = timed(warm_tokenizer.encode_ordinary, text)
        assert ids_cold == expected and ids_warm == expected, "gpt2_tokenizer() and tiktoken disagree"
        tik.append(t_ref)
        cold.append(t_cold)
        warm.append(t_warm)

    def ratio(ours: list[Timing]) -> str:
        wall = statistics.median(o.wall / r.wall for o, r in zip(ours, tik))
        cpu = statistics.median(o.cpu / r.cpu for o, r in zip(ours, tik))
        return f"{wall:.2f}× tiktoken (wall), {cpu:.2f}× (CPU)"

    rows.append(("encode, tiktoken GPT-2", median(tik), f"{len(expected) / median(tik).cpu / 1e6:.2f} M tokens/s (CPU)",
                 ""))
    rows.append(("encode, `gpt2_tokenizer()` cold", median(cold), ratio(cold), "≤ 4×"))
    rows.append(("encode, `gpt2_tokenizer()` warm", median(warm), ratio(warm), ""))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"tinyshakespeare: {len(text.encode('utf-8')):,} bytes, {len(expected):,} GPT-2 tokens (identical ids); "
        f"median of {args.repeats} repeats; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the end\n"
    )
    print("| what | wall | CPU | compared | target |\n|---|---|---|---|---|")
    for what, timing, compared, target in rows:
        print(f"| {what} | {timing.wall:.3g} s | {timing.cpu:.3g} s | {compared} | {target} |")


def long_chunks(repeats: int) -> None:
    reference = tiktoken_gpt2()
    template = gpt2_tokenizer()
    print("| chunk | ours | tiktoken | ours / tiktoken | ours per byte | quadratic loop (`merge_short`) |")
    print("|---|---|---|---|---|---|")
    for n in (10_000, 40_000, 100_000, 1_000_000):
        text = "x" * n
        ours, theirs, ratios = [], [], []
        for _ in range(repeats if n < 1_000_000 else max(1, repeats // 2)):
            t_ref, expected = timed(reference.encode, text)
            t_ours, ids = timed(gpt2_tokenizer().encode, text)  # fresh: the chunk is not remembered
            assert ids == expected, "gpt2_tokenizer() and tiktoken disagree"
            theirs.append(t_ref)
            ours.append(t_ours)
            ratios.append(t_ours.cpu / max(t_ref.cpu, 1e-9))
        quadratic = ""
        if n <= 40_000:
            chunk_ids = list(text.encode().translate(template._byte_table))
            t_quad, quad_ids = timed(merge_short, chunk_ids, template._ranks)
            assert quad_ids == expected
            quadratic = f"{t_quad.cpu:.3g} s"
        o, r = median(ours), median(theirs)
        print(f"| `'x' * {n:,}` | {o.cpu:.3g} s | {r.cpu:.3g} s | {statistics.median(ratios):.1f}× | "
              f"{o.cpu / n * 1e6:.2f} µs | {quadratic} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nCPU times of this process, medians of {repeats} alternating repeats; load average {load:.1f} at the end")


if __name__ == "__main__":
    main()
