"""``minigpt2 finetune classify|instruct`` and ``minigpt2 chat``.

Every bad argument ends the command with one line saying what to change, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minigpt2.train.cli import EXIT_BAD_INPUT, EXIT_OK, OneLineParser, UsageError

DEFAULT_TARGETS = "c_attn,c_proj,c_fc"


def finetune_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="minigpt2 finetune",
        description="Fine-tune a GPT-2 and write the result as a Hugging Face directory (LoRA merged) that "
        "transformers and minigpt2 load. `classify` trains a spam classifier on the SMS Spam Collection "
        "(GPT2ForSequenceClassification); `instruct` teaches the model to follow instructions "
        "(GPT2LMHeadModel, for `minigpt2 chat`).",
    )
    p.add_argument("task", choices=("classify", "instruct"), help="what to fine-tune for")
    p.add_argument("--base", default="gpt2", metavar="DIR_OR_NAME",
                   help="the model to start from: a Hugging Face GPT-2 directory, or a hub name such as gpt2 "
                   "(from the Hugging Face cache, or downloaded when online) (default gpt2)")
    p.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help="classify: the SMS Spam Collection zip; instruct: a JSON list of instruction / input / "
                   "output records (default: the course's own file, found as every data file is)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the fine-tuned model")
    p.add_argument("--lora-rank", type=int, default=None, metavar="R",
                   help="train LoRA updates of rank R (a positive integer) instead of the weights themselves; "
                   "they are merged before saving (default: no LoRA)")
    p.add_argument("--lora-alpha", type=float, default=None, metavar="ALPHA",
                   help="LoRA's alpha: the update is scaled by alpha / R (default 2 * R)")
    p.add_argument("--lora-targets", default=DEFAULT_TARGETS, metavar="NAMES",
                   help=f"comma-separated names of the Linear layers LoRA wraps (default {DEFAULT_TARGETS})")
    p.add_argument("--trainable", choices=("head", "last", "all"), default="last",
                   help="classify without LoRA: train only the new head, the head with the last block and the "
                   "final LayerNorm, or everything (default last)")
    p.add_argument("--mask-prompt", action=argparse.BooleanOptionalAction, default=True,
                   help="instruct: learn only the response, not the prompt (default on)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--batch-size", type=int, default=8, help="examples per step (default 8)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 5e-5 for full fine-tuning, 1e-3 with LoRA)")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per example; longer ones are cut and counted (default: 256, at most the "
                        "model's context)")
    p.add_argument("--seed", type=int, default=123, help="seed of the data split and of training (default 123)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    return p


def _check_numbers(args) -> None:
    if args.lora_rank is not None and args.lora_rank <= 0:
        raise UsageError(f"--lora-rank should be a positive integer (e.g. 8), got {args.lora_rank}")
    for name in ("steps", "batch_size", "max_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} should be at least 1, got {value}")
    if args.lr is not None and args.lr <= 0:
        raise UsageError(f"--lr should be positive, got {args.lr}")


def _base_model(name_or_dir: str):
    from minigpt2.hf import CheckpointError
    from minigpt2.utils import pretrained_or_local

    try:
        choice = pretrained_or_local(None, name_or_dir, say=None)  # no stand-in here: GPT-2's weights or a directory
    except CheckpointError as err:
        raise UsageError(f"{err}; pass --base DIR, a local Hugging Face GPT-2 directory") from None
    print(f"base model: {choice.reason}", file=sys.stderr)
    return choice.model


def _lora(model, args) -> None:
    from minigpt2.lora import apply_lora

    targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
    apply_lora(model, r=args.lora_rank, alpha=args.lora_alpha or 2 * args.lora_rank, targets=targets)


def run_classify(args, device) -> dict:
    import torch.nn.functional as F

    from minigpt2.finetune.classify import GPTClassifier, batches_of, evaluate_classifier, set_trainable
    from minigpt2.finetune.data import SMS_LABELS, sms_spam_splits
    from minigpt2.finetune.loop import fit
    from minigpt2.lora import merge_lora
    from minigpt2.tokenizer import gpt2_tokenizer

    splits = sms_spam_splits(args.data, seed=args.seed)
    clf = GPTClassifier(_base_model(args.base), SMS_LABELS)
    if args.lora_rank:
        _lora(clf.body, args)
        clf.score.requires_grad_(True)
    else:
        set_trainable(clf, args.trainable)
    clf.to(device)
    enc = gpt2_tokenizer()
    max_length = min(args.max_length or 256, clf.config.block_size)
    train = [_to(b, device) for b in batches_of(clf, enc, splits.train, args.batch_size, max_length)]
    test = [_to(b, device) for b in batches_of(clf, enc, splits.test, args.batch_size, max_length)]
    fit(clf, lambda b: F.cross_entropy(clf(b.ids, b.lengths), b.labels), train, args.steps,
        lr=args.lr or (1e-3 if args.lora_rank else 5e-5), weight_decay=0.0)
    if args.lora_rank:
        merge_lora(clf.body)
    result = evaluate_classifier(clf, test)
    clf.cpu().save_pretrained(args.out)
    return {"test_accuracy": result.accuracy, "test_loss": result.loss,
            "truncated": sum(b.truncated for b in train + test)}


def run_instruct(args, device) -> dict:
    from minigpt2.finetune.data import instruction_splits
    from minigpt2.finetune.instruct import instruction_batches, response_loss
    from minigpt2.finetune.loop import fit
    from minigpt2.lora import merge_lora
    from minigpt2.tokenizer import gpt2_tokenizer

    splits = instruction_splits(args.data, seed=args.seed)
    model = _base_model(args.base)
    if args.lora_rank:
        _lora(model, args)
    model.to(device)
    enc = gpt2_tokenizer()
    max_length = min(args.max_length or 256, model.config.block_size)
    train = instruction_batches(enc, splits.train, args.batch_size, max_length, mask_prompt=args.mask_prompt)
    test = instruction_batches(enc, splits.test, args.batch_size, max_length)
    train, test = [_to(b, device) for b in train], [_to(b, device) for b in test]
    fit(model, lambda b: model(b.inputs, b.targets)[1], train, args.steps,
        lr=args.lr or (1e-3 if args.lora_rank else 5e-5), weight_decay=0.0)
    if args.lora_rank:
        merge_lora(model)
    result = {"test_response_loss": response_loss(model, test), "truncated": sum(b.truncated for b in train + test)}
    model.cpu().save_pretrained(args.out)
    return result


def _to(batch, device):
    import dataclasses

    import torch

    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name).to(device) for f in dataclasses.fields(batch)
                                         if isinstance(getattr(batch, f.name), torch.Tensor)})


def finetune_main(argv: list[str] | None = None) -> int:
    """``minigpt2 finetune …``; returns the exit status."""
    from minigpt2.datafiles import DataFileError
    from minigpt2.hf import CheckpointError
    from minigpt2.utils import pick_device, set_seed

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = finetune_parser().parse_args(argv)
        _check_numbers(args)
        device = pick_device(args.device)
        set_seed(args.seed)
        result = (run_classify if args.task == "classify" else run_instruct)(args, device)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (UsageError, ValueError, TypeError, DataFileError, CheckpointError, RuntimeError) as err:
        print(f"minigpt2 finetune: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({"out": str(args.out), **result}))
    return EXIT_OK


# --------------------------------------------------------------------------- chat


def chat_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="minigpt2 chat",
        description="Talk to an instruction-tuned model (written by `minigpt2 finetune instruct`) in the terminal: "
        "type an instruction, read the answer as it is generated. An empty line or end of input (Ctrl-D) ends.",
    )
    p.add_argument("model", type=Path, metavar="DIR", help="a Hugging Face GPT-2 directory (config.json + "
                                                           "model.safetensors)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="the longest answer, in tokens (default 200)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (the default); higher is more varied")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest tokens only")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample from the smallest set of tokens with probability p")
    p.add_argument("--seed", type=int, default=None, help="make sampled answers repeatable")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps (default cpu)")
    return p


def _chat_model(directory: Path):
    from minigpt2.hf import CheckpointError
    from minigpt2.model import GPT

    config = directory / "config.json"
    if config.is_file():
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        if "GPT2ForSequenceClassification" in architectures:
            raise CheckpointError(f"{directory} holds a classifier (minigpt2 finetune classify); chat needs a language "
                                  "model, e.g. one written by `minigpt2 finetune instruct`")
    return GPT.from_pretrained(directory).eval()


def chat_main(argv: list[str] | None = None, stdin=None, stdout=None) -> int:
    """``minigpt2 chat DIR``; returns the exit status."""
    from minigpt2.finetune.instruct import format_prompt
    from minigpt2.hf import CheckpointError
    from minigpt2.sampling import check_sampling_settings, stream_text
    from minigpt2.tokenizer import gpt2_tokenizer
    from minigpt2.utils import pick_device

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = chat_parser().parse_args(argv)
        if args.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens should be at least 1, got {args.max_new_tokens}")
        check_sampling_settings(args.temperature, args.top_k, args.top_p)
        model = _chat_model(args.model).to(pick_device(args.device))
        enc = gpt2_tokenizer()
    except SystemExit as done:
        return int(done.code or 0)
    except (UsageError, ValueError, CheckpointError, RuntimeError) as err:
        print(f"minigpt2 chat: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    interactive = stdin.isatty()
    if interactive:
        print("Type an instruction (an empty line or Ctrl-D ends).", file=stdout)
    while True:
        if interactive:
            print("you> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line or not line.strip():
            return EXIT_OK
        print("model> ", end="", file=stdout, flush=True)
        prompt = format_prompt({"instruction": line.strip(), "input": ""})
        for piece in stream_text(model, enc, prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                                 stop=["\n\n### "], seed=args.seed):
            print(piece, end="", file=stdout, flush=True)
        print(file=stdout, flush=True)


__all__ = ["finetune_parser", "finetune_main", "chat_parser", "chat_main"]
