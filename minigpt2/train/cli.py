"""``minigpt2 train`` and ``minigpt2 sample`` (also ``python -m minigpt2.train`` and, for several
processes, ``torchrun --nproc_per_node=N -m minigpt2.train``).

Every bad argument ends the command with one line saying what to change, exit status 2.
A training run that diverges stops with exit status 3, its last good checkpoint kept.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from dataclasses import fields
from pathlib import Path

from minigpt2.train.config import HELP, PRESETS, TrainConfig, flag, preset

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 2, 3
DEFAULT_PRESET = "shakespeare-char"


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
        epilog="Each setting's default is its preset's value (--list-presets shows them); with --resume, the "
        "checkpoint's. Exit status: 0 trained; 2 bad input, an unusable --out-dir or a damaged checkpoint "
        "(nothing trained); 3 the loss became nan or inf (the run stopped, its last good checkpoint kept).",
    )
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"the settings to start from: {', '.join(PRESETS)} "
                                                            f"(default: {DEFAULT_PRESET})")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/ckpt.safetensors, with its settings plus any given here "
                        "(default: start afresh)")
    p.add_argument("--list-presets", action="store_true", help="print the presets' settings and exit")
    for f in fields(TrainConfig):
        help_text = f"{HELP[f.name]} (default: {preset_defaults(f.name)})".replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            p.add_argument(flag(f.name), dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_text)
    return p


def preset_defaults(name: str) -> str:
    """A setting's default: one value if every preset agrees, else each preset's."""
    values = {preset_name: getattr(config, name) for preset_name, config in PRESETS.items()}
    if len(set(map(repr, values.values()))) == 1:
        return show(next(iter(values.values())))
    return ", ".join(f"{show(value)} with {preset_name}" for preset_name, value in values.items())


def show(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
        raise ValueError(f"--resume: there is no checkpoint at {path}; train without --resume first, or "
                         "give its --out-dir")
    saved = TrainConfig.from_dict(load_checkpoint(path).meta.get("config", {}))  # CheckpointError if damaged
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
        check_device(config.device)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, ValueError) as err:  # CheckpointError and OutDirError are ValueErrors
        print(f"minigpt2 train: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_training(config, resume)


def check_device(device: str) -> None:
    """A device this torch cannot use (``--device cuda`` on a CPU-only build) is a ValueError."""
    from minigpt2.utils import pick_device

    try:
        pick_device(device)
    except RuntimeError as err:
        raise ValueError(str(err)) from None


def command_name() -> str:
    """How to start the ``minigpt2`` command so that it runs as typed, without an activated venv:
    ``minigpt2`` if that is on the PATH and belongs to this Python, else the script beside this
    interpreter (``.venv/bin/minigpt2``), else ``python -m minigpt2`` with this interpreter's path."""
    bin_dir = Path(sys.executable).parent  # not resolved: a venv's python is a link out of the venv
    script = bin_dir / ("minigpt2.exe" if os.name == "nt" else "minigpt2")
    if script.is_file():
        found = shutil.which("minigpt2")
        if found and Path(found).resolve() == script.resolve():
            return "minigpt2"
        return shlex.quote(_as_typed(script))
    return f"{shlex.quote(_as_typed(Path(sys.executable)))} -m minigpt2"


def _as_typed(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it (``.venv/bin/minigpt2``), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe(config: TrainConfig) -> str:
    return (
        f"{config.tokenizer} tokens, {config.n_layer} layers × {config.n_head} heads × {config.n_embd}, "
        f"context {config.block_size}, batch {config.batch_size}×{config.grad_accum}, {config.max_iters} steps, "
        f"lr {config.lr:g}, device {config.device}"
    )


def run_training(config: TrainConfig, resume: bool) -> int:
    from minigpt2.datafiles import DataFileError
    from minigpt2.train.checkpoint import CheckpointError
    from minigpt2.train.loop import TrainingDiverged, checkpoint_path, train

    def report(kind: str, row: dict, model) -> None:
        if kind == "val":
            from tqdm.auto import tqdm

            tqdm.write(f"step {row['step']:>6}: val loss {row['val_loss']:.4f}")

    print(f"minigpt2 train: {describe(config)}{' (resuming)' if resume else ''}", flush=True)
    print(f"checkpoints go to {checkpoint_path(config)}", flush=True)
    said = _say_log_lines("minigpt2.train.loop")  # the loop's "precision: … (why)" line
    try:
        result = train(config, resume=resume, callback=report)
    except (ValueError, DataFileError, CheckpointError) as err:
        print(f"minigpt2 train: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as err:
        print(f"minigpt2 train: error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    finally:
        said()
    if result.checkpoint is not None:
        last = result.history.train[-1] if result.history.train else {}
        nan = float("nan")
        print(
            f"done: {result.step} steps, val loss {result.val_loss:.4f}, {last.get('tokens_per_s', nan):,.0f} tokens/s "
            f"= {last.get('flops_per_s', nan) / 1e9:,.1f} GFLOP/s, MFU {last.get('mfu', nan):.1%} of "
            f"{result.peak_flops / 1e9:,.0f} GFLOP/s ({result.peak_source}); checkpoint {result.checkpoint}\n"
            f"sample from it: {command_name()} sample --checkpoint {shlex.quote(str(result.checkpoint))}"
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


MAX_NEW_TOKENS = 100_000  # enough for any reading; a typo like 10**9 would take days


def sample_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="minigpt2 sample", description="Generate text from a checkpoint written by minigpt2 train; "
                      "the text is printed as it is generated.")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a ckpt.safetensors written by minigpt2 train (default: the one in --preset's folder)")
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"whose folder to look in when --checkpoint is not given: {', '.join(PRESETS)} (default: "
                        f"{DEFAULT_PRESET})")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--allow-special", action="store_true",
                   help="read <|endoftext|> in --prompt as GPT-2's end-of-text token (default: refuse it)")
    p.add_argument("--max-new-tokens", type=int, default=300, help="tokens to generate per sample, at most "
                                                                   f"{MAX_NEW_TOKENS:,} (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; higher is wilder (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="draw only from the k likeliest tokens (default: all)")
    p.add_argument("--top-p", type=float, default=None, help="draw only from the likeliest tokens that make up "
                                                             "p (default: all)")
    p.add_argument("--num-samples", type=int, default=1, help="samples, one after another (default: 1)")
    p.add_argument("--seed", type=int, default=1337, help="seed of the draws: the same seed gives the same text "
                                                          "(default: 1337)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto, a GPU "
                                                    "if there is one)")
    return p


def sample_main(argv: list[str] | None = None) -> int:
    """``minigpt2 sample …``; returns the exit status."""
    import torch

    from minigpt2.train.sample import encode_prompt, load_model, stream_sample
    from minigpt2.utils import pick_device

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = sample_parser().parse_args(argv)
        if not 0 <= args.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(
                f"--max-new-tokens should be between 0 and {MAX_NEW_TOKENS:,}, got {args.max_new_tokens:,}"
            )
        if args.num_samples < 1:
            raise ValueError(f"--num-samples should be at least 1, got {args.num_samples}")
        if not args.temperature >= 0:
            raise ValueError(f"--temperature should be 0 (greedy) or more, got {args.temperature}")
        if args.top_k is not None and args.top_k < 1:
            raise ValueError(f"--top-k should be at least 1 (or left out to keep every token), got {args.top_k}")
        if args.top_p is not None and not 0 < args.top_p <= 1:
            raise ValueError(f"--top-p should be in (0, 1] (or left out to keep every token), got {args.top_p}")
        path = args.checkpoint or Path(preset(args.preset).out_dir) / "ckpt.safetensors"
        if not path.is_file():
            raise ValueError(f"no checkpoint at {path}; train one first (minigpt2 train --preset {args.preset}), "
                             "or give its path with --checkpoint")
        check_device(args.device)
        model, tokenizer = load_model(path, pick_device(args.device))
        ids = encode_prompt(tokenizer, args.prompt, allow_special=args.allow_special)
        torch.manual_seed(args.seed)
        pieces = [stream_sample(model, tokenizer, ids, args.max_new_tokens, args.temperature, args.top_k, args.top_p)
                  for _ in range(args.num_samples)]  # generators: nothing is drawn before it is printed
        first = next(pieces[0], "")  # the first step runs before any output, so its errors come first
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, ValueError) as err:  # CheckpointError is a ValueError
        print(f"minigpt2 sample: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        for i, sample in enumerate(pieces):
            if i:
                print("\n" + "-" * 40)
            print(args.prompt + (first if i == 0 else ""), end="", flush=True)
            for piece in sample:
                print(piece, end="", flush=True)
        print()
    except KeyboardInterrupt:
        print()
        return 130
    return EXIT_OK


__all__ = ["main", "sample_main", "train_parser", "sample_parser", "build_config"]
