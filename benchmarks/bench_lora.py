"""A LoRA fine-tuning step: minigpt2.lora on our GPT against peft on transformers' GPT2LMHeadModel.

Both models have the same shape and the same weights, LoRA of the same rank on the same layers
(``c_attn``, ``c_proj``, ``c_fc``; peft with ``fan_in_fan_out=True`` for GPT-2's Conv1D), the same
optimizer (fused AdamW over the LoRA parameters, :func:`minigpt2.train.make_optimizer`), the same
clipping and the same batches, float32. A step is forward, backward, clip, optimizer step. The two
are timed in alternating rounds, so that load from other programs hits both alike; the ratio
reported is the median of the per-round ratios (ours / peft, tokens per second: above 1 is faster).

It also prints what LoRA saves: trainable parameters and AdamW state bytes against full fine-tuning,
for the benchmarked shape and for GPT-2 small (counted on the meta device, no memory used)::

    .venv/bin/python benchmarks/bench_lora.py                       # the small shape
    .venv/bin/python benchmarks/bench_lora.py --size gpt2 --rounds 3 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from minigpt2.lora import adam_state_bytes, apply_lora, lora_layers, trainable_parameters
from minigpt2.model import GPT, GPTConfig
from minigpt2.train.optim import clip_grad_norm, make_optimizer

SIZES = {
    # name: (n_layer, n_head, n_embd, block_size, batch_size); GPT-2's vocabulary
    "small": (4, 4, 256, 128, 4),
    "gpt2": (12, 12, 768, 256, 2),
}
TARGETS = ["c_attn", "c_proj", "c_fc"]


def models(size: str, r: int, alpha: float, tmp: str):
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    n_layer, n_head, n_embd, block_size, _ = SIZES[size]
    torch.manual_seed(0)
    ours = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size))
    ours.save_pretrained(tmp)
    hf = GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa")
    apply_lora(ours, r=r, alpha=alpha, targets=TARGETS)
    theirs = get_peft_model(hf, LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS, lora_dropout=0.0,
                                           fan_in_fan_out=True, bias="none"))
    peft_params = dict(theirs.named_parameters())
    with torch.no_grad():  # the same A and B (B random, so that the update is not zero)
        for name, layer in lora_layers(ours).items():
            layer.lora_B.normal_(std=0.02)
            peft_params[f"base_model.model.{name}.lora_A.default.weight"].copy_(layer.lora_A)
            peft_params[f"base_model.model.{name}.lora_B.default.weight"].copy_(layer.lora_B)
    return ours.train(), theirs.train()


def stepper(model, loss_of):
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.0, device_type="cpu")

    def step(x, y):
        loss = loss_of(model, x, y)
        loss.backward()
        clip_grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def ours_loss(model, x, y):
    return model(x, y)[1]


def peft_loss(model, x, y):  # the same cross-entropy as GPT.forward's, on the same targets
    return torch.nn.functional.cross_entropy(model(input_ids=x).logits.flatten(0, 1), y.flatten(), ignore_index=-1)


def savings(model_config: GPTConfig, r: int, alpha: float) -> dict:
    with torch.device("meta"):
        model = GPT(model_config)
        full = trainable_parameters(model), adam_state_bytes(model)
        apply_lora(model, r=r, alpha=alpha, targets=TARGETS)
        lora = trainable_parameters(model), adam_state_bytes(model)
    return {"full_trainable": full[0], "full_adam_bytes": full[1], "lora_trainable": lora[0],
            "lora_adam_bytes": lora[1]}


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=SIZES, default="small", help="the model shape (default small)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per model per round (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()

    n_layer, n_head, n_embd, block_size, batch_size = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = models(args.size, args.rank, 2.0 * args.rank, tmp)
    assert trainable_parameters(ours) == theirs.get_nb_trainable_parameters()[0]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 50257, (batch_size, block_size + 1), generator=g) for _ in range(args.steps)]
    with torch.no_grad():  # same weights, same A and B: same logits before any step
        x = batches[0][:, :-1]
        torch.testing.assert_close(ours(x)[0], theirs(input_ids=x).logits, atol=1e-4, rtol=1e-4)
    run = {"ours": stepper(ours, ours_loss), "peft": stepper(theirs, peft_loss)}
    for step in run.values():  # warm-up
        step(batches[0][:, :-1], batches[0][:, 1:])
    rates: dict[str, list[float]] = {"ours": [], "peft": []}
    tokens = args.steps * batch_size * block_size
    for round_ in range(args.rounds):
        order = ("ours", "peft") if round_ % 2 == 0 else ("peft", "ours")
        for name in order:
            t0 = time.perf_counter()
            for b in batches:
                run[name](b[:, :-1], b[:, 1:])
            rates[name].append(tokens / (time.perf_counter() - t0))
    ratios = [o / p for o, p in zip(rates["ours"], rates["peft"])]
    result = {
        "size": args.size, "shape": dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                                         batch_size=batch_size), "rank": args.rank, "threads": torch.get_num_threads(),
        "ours_tokens_per_s": statistics.median(rates["ours"]), "peft_tokens_per_s": statistics.median(rates["peft"]),
        "ratio_median": statistics.median(ratios), "ratios": ratios,
        "savings_this_shape": savings(ours.config, args.rank, 2.0 * args.rank),
        "savings_gpt2_small": savings(GPTConfig.from_preset("gpt2"), args.rank, 2.0 * args.rank),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.size} shape {result['shape']}, LoRA r={args.rank} on {TARGETS}, {result['threads']} threads, float32")
    print(f"  ours {result['ours_tokens_per_s']:,.0f} tokens/s, peft {result['peft_tokens_per_s']:,.0f} tokens/s: "
          f"{result['ratio_median']:.2f}x (per-round ratios {', '.join(f'{r:.2f}' for r in ratios)})")
    for label, s in (("this shape", result["savings_this_shape"]), ("GPT-2 small", result["savings_gpt2_small"])):
        print(f"  {label}: trainable {s['lora_trainable']:,} vs {s['full_trainable']:,} "
              f"({s['lora_trainable'] / s['full_trainable']:.2%}); AdamW state {s['lora_adam_bytes'] / 2**20:.1f} MiB "
              f"vs {s['full_adam_bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
