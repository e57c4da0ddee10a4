"""``minigpt2 train`` and ``minigpt2 sample`` (also ``python -m minigpt2.train`` and, for several
processes, ``torchrun --nproc_per_node=N -m minigpt2.train``).

Every bad argument ends the command with one line saying what to change, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from minigpt2.train.config import PRESETS, TrainConfig, flag, preset

EXIT_OK, EXIT_BAD_INPUT = 0, 2


class UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) and does not exit the caller's process."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="minigpt2 train",
        description="Train a GPT. Start from a preset and override any setting, e.g. "
        "`minigpt2 train --preset shakespeare-char --max-iters 500`. Several processes: "
        "`torchrun --nproc_per_node=N -m minigpt2.train …`.",
    )
    p.add_argument("--preset", default="shakespeare-char", help=f"one of: {', '.join(PRESETS)} (default shakespeare-char)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.safetensors (its settings, plus any given here)")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    for f in fields(TrainConfig):
        if f.type in ("bool", bool):
            p.add_argument(flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            p.add_argument(flag(f.name), dest=f.name, type=kind, default=None, metavar=f.name.upper())
    return p


def build_config(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """The run's config (the preset's, or the checkpoint's on --resume, with the flags given on top)
    and whether there is a checkpoint to resume from."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    base = preset(args.preset, **overrides)
    if not args.resume:
        return base.validate(), False
    from minigpt2.train.checkpoint import load_checkpoint
    from minigpt2.train.loop import checkpoint_path

    path = checkpoint_path(base)
    if not path.is_file():
        raise ValueError(f"--resume: there is no checkpoint at {path}; train without --resume first, or give its --out-dir")
    saved = TrainConfig.from_dict(load_checkpoint(path).meta.get("config", {}))
    for name, value in overrides.items():
        setattr(saved, name, value)
    return saved.validate(), True


def main(argv: list[str] | None = None) -> int:
    """``minigpt2 train …``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = train_parser().parse_args(argv)
        if args.list_presets:
            for name, config in PRESETS.items():
                print(f"{name}: {describe(config)}")
            return EXIT_OK
        config, resume = build_config(args)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, ValueError) as err:
        print(f"minigpt2 train: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_training(config, resume)


def describe(config: TrainConfig) -> str:
    return (
        f"{config.tokenizer} tokens, {config.n_layer} layers × {config.n_head} heads × {config.n_embd}, "
        f"context {config.block_size}, batch {config.batch_size}×{config.grad_accum}, {config.max_iters} steps, "
        f"lr {config.lr:g}, device {config.device}"
    )


def run_training(config: TrainConfig, resume: bool) -> int:
    from minigpt2.datafiles import DataFileError
    from minigpt2.train.checkpoint import CheckpointError
    from minigpt2.train.loop import train

    def report(kind: str, row: dict, model) -> None:
        if kind == "val":
            from tqdm.auto import tqdm

            tqdm.write(f"step {row['step']:>6}: val loss {row['val_loss']:.4f}")

    print(f"minigpt2 train: {describe(config)}{' (resuming)' if resume else ''}", flush=True)
    said = _say_log_lines("minigpt2.train.loop")  # the loop's "precision: … (why)" line
    try:
        result = train(config, resume=resume, callback=report)
    except (ValueError, DataFileError, CheckpointError) as err:
        print(f"minigpt2 train: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        said()
    if result.checkpoint is not None:
        last = result.history.train[-1] if result.history.train else {}
        print(
            f"done: {result.step} steps, val loss {result.val_loss:.4f}, "
            f"{last.get('tokens_per_s', float('nan')):,.0f} tokens/s, MFU {last.get('mfu', float('nan')):.1%}; "
            f"checkpoint {result.checkpoint}\n"
            f"sample from it: minigpt2 sample --checkpoint {result.checkpoint}"
        )
    return EXIT_OK


def _say_log_lines(name: str):
    """Print the INFO lines of logger ``name`` as "minigpt2 train: …" until the returned function is called."""
    import logging

    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("minigpt2 train: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def stop() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return stop


# --------------------------------------------------------------------------- sample


def sample_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="minigpt2 sample", description="Generate text from a checkpoint written by minigpt2 train.")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a ckpt.safetensors (default: the one of --preset's out_dir)")
    p.add_argument("--preset", default="shakespeare-char", help="whose out_dir to look in when --checkpoint is not given")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; higher is wilder")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto")
    return p


def sample_main(argv: list[str] | None = None) -> int:
    """``minigpt2 sample …``; returns the exit status."""
    import torch

    from minigpt2.train.checkpoint import CheckpointError
    from minigpt2.train.sample import generate_text, load_model
    from minigpt2.utils import pick_device

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = sample_parser().parse_args(argv)
        path = args.checkpoint or Path(preset(args.preset).out_dir) / "ckpt.safetensors"
        model, tokenizer = load_model(path, pick_device(args.device))
        torch.manual_seed(args.seed)
        texts = generate_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature,
                              args.top_k, args.top_p, args.num_samples)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, ValueError, CheckpointError, RuntimeError) as err:
        print(f"minigpt2 sample: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for i, text in enumerate(texts):
        if i:
            print("\n" + "-" * 40)
        print(text)
    return EXIT_OK


__all__ = ["main", "sample_main", "train_parser", "sample_parser", "build_config"]
