"""When lesson 10's toy grows its induction head, over seeds, with and without MLPs.

The lesson trains one seed of a 2-layer, 2-head, 64-wide GPT on ``in_context_bigrams`` (16 ids, 64 tokens of
context, batch 32, AdamW at 2e-3) and asserts the phase change it shows. This runs the same training over several
seeds, for the attention-only model the lesson uses (``mlp=False``) and for the same model with its MLPs, and prints
for each run the first measured step (every 25) at which layer 0 has a previous-token head above 0.5 and layer 1 an
induction head above 0.5, and the final scores and loss on the tokens looking back predicts. float32, one thread::

    .venv/bin/python benchmarks/bench_induction_toy.py                    # seeds 0-3, 1,000 steps, both models
    .venv/bin/python benchmarks/bench_induction_toy.py --seeds 12 --steps 1500
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from minigpt2.data import in_context_bigrams
from minigpt2.model import GPT, GPTConfig
from minigpt2.viz import head_scores

VOCAB, T = 16, 64


def best_scores(model: GPT, probe: torch.Tensor) -> tuple[float, float]:
    """(layer 0's best previous-token score, layer 1's best induction score) on the probe sequences."""
    weights = torch.stack(model.attention_weights(probe), dim=1)  # (N, n_layer, n_head, T, T)
    per_row = [head_scores(w, ids=row.tolist()) for w, row in zip(weights, probe)]
    previous = torch.stack([s["previous_token"] for s in per_row]).mean(0)  # (n_layer, n_head)
    induction = torch.stack([s["induction"] for s in per_row]).nanmean(0)
    return previous[0].max().item(), induction[1].max().item()


def run(seed: int, steps: int, mlp: bool) -> dict:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=T, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=64, mlp=mlp))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    probe, predictable = in_context_bigrams(64, T + 1, VOCAB, generator=torch.Generator().manual_seed(1))
    data = torch.Generator().manual_seed(seed)
    formed, started = None, time.perf_counter()
    for step in range(steps + 1):
        if step % 25 == 0:
            previous, induction = best_scores(model, probe[:16, :-1])
            if formed is None and previous > 0.5 and induction > 0.5:
                formed = step
        if step == steps:
            break
        x, _ = in_context_bigrams(32, T + 1, VOCAB, generator=data)  # (32, T + 1)
        _, loss = model(x[:, :-1], x[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits, _ = model(probe[:, :-1])  # (64, T, VOCAB)
        losses = F.cross_entropy(logits.transpose(1, 2), probe[:, 1:], reduction="none")  # (64, T)
    return dict(formed=formed, previous=previous, induction=induction, seconds=time.perf_counter() - started,
                loss=losses[predictable[:, 1:]].mean().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 (default 4)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run (default 1000)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for mlp in (False, True):
        name = "with MLPs" if mlp else "attention-only"
        formed = []
        for seed in range(args.seeds):
            r = run(seed, args.steps, mlp)
            formed.append(r["formed"])
            when = "—" if r["formed"] is None else r["formed"]
            print(f"{name:>14}  seed {seed}: both heads > 0.5 at step {when}; "
                  f"final previous-token {r['previous']:.2f}, induction {r['induction']:.2f}, loss on the predictable "
                  f"tokens {r['loss']:.2f} nats ({r['seconds']:.0f} s)", flush=True)
        found = [step for step in formed if step is not None]
        print(f"{name:>14}: the induction circuit formed in {len(found)} of {len(formed)} runs"
              + (f", at steps {min(found)}–{max(found)}" if found else "") + f" (of {args.steps})\n")


if __name__ == "__main__":
    main()
