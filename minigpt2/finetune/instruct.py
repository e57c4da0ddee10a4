"""Instruction tuning: the Alpaca prompt, a collate that learns only the response, batched
answers to held-out instructions, and their scores (response loss, ROUGE-L).

One training example is the prompt followed by the response and ``<|endoftext|>``::

    Below is an instruction that describes a task. ...      <- the prompt: read, not learned
    ### Instruction:
    Convert 45 kilometers to meters.
    ### Response:
    45 kilometers is 45000 meters.<|endoftext|>             <- the response: learned

The inputs are the tokens, the targets the same tokens shifted by one. Targets inside the
prompt and in the padding are set to ``IGNORE`` (-1, which ``GPT.forward`` leaves out of the
loss), so the model learns to answer, not to recite the template; the ``<|endoftext|>`` after
the response stays a target, so it learns to stop.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minigpt2.tokenizer.gpt2 import END_OF_TEXT_ID

IGNORE = -1  # the target GPT.forward's cross-entropy ignores
PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def format_prompt(record: dict) -> str:
    """The Alpaca prompt of a record, ending where the response begins."""
    text = f"{PREAMBLE}\n\n### Instruction:\n{record['instruction']}"
    if record.get("input"):
        text += f"\n\n### Input:\n{record['input']}"
    return text + "\n\n### Response:\n"


@dataclass
class InstructBatch:
    inputs: torch.Tensor  # (B, T) token ids, right-padded with pad_id
    targets: torch.Tensor  # (B, T) the next token, IGNORE where nothing is learned
    truncated: int  # examples cut to max_length tokens


def collate_instructions(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = END_OF_TEXT_ID,
                         max_length: int = 1024, mask_prompt: bool = True,
                         end_id: int = END_OF_TEXT_ID) -> InstructBatch:
    """Stack (prompt ids, response ids) pairs into inputs and targets (B, T).

    Each sequence is prompt + response + ``end_id``; inputs are all but its last token, targets
    all but its first. A sequence longer than ``max_length`` + 1 is cut (counted in
    ``truncated``). Padding is ``pad_id`` in the inputs and IGNORE in the targets; with
    ``mask_prompt`` the targets that are prompt tokens are IGNORE too.
    """
    if not examples:
        raise ValueError("an empty batch: give at least one (prompt, response) pair")
    rows, truncated = [], 0
    for prompt, response in examples:
        if len(prompt) == 0:
            raise ValueError("a prompt has no tokens: every example starts with its instruction")
        if len(response) == 0:
            raise ValueError("a response has no tokens: there is nothing to learn from an empty response")
        sequence = [*prompt, *response, end_id][: max_length + 1]
        truncated += len(prompt) + len(response) + 1 > max_length + 1
        targets = sequence[1:]
        if mask_prompt:
            n_prompt_targets = min(len(prompt) - 1, len(targets))  # targets[t] is token t + 1
            targets = [IGNORE] * n_prompt_targets + targets[n_prompt_targets:]
        rows.append((sequence[:-1], targets))
    T = max(len(x) for x, _ in rows)
    inputs = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    targets = torch.full((len(rows), T), IGNORE, dtype=torch.long)  # (B, T)
    for row, (x, y) in enumerate(rows):
        inputs[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        targets[row, : len(y)] = torch.tensor(y, dtype=torch.long)
    return InstructBatch(inputs, targets, truncated)


def encode_record(tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of one record (special-token text is read as plain text)."""
    return tokenizer.encode_ordinary(format_prompt(record)), tokenizer.encode_ordinary(record["output"])


def instruction_batches(tokenizer, records: Sequence[dict], batch_size: int, max_length: int,
                        mask_prompt: bool = True) -> list[InstructBatch]:
    """The records, encoded and collated ``batch_size`` at a time, in order."""
    encoded = [encode_record(tokenizer, r) for r in records]
    return [collate_instructions(encoded[i:i + batch_size], max_length=max_length, mask_prompt=mask_prompt)
            for i in range(0, len(encoded), batch_size)]


@torch.no_grad()
@torch.no_grad()
def response_loss(model, batches: Sequence[InstructBatch]) -> float:
    """The mean cross-entropy per response token over ``batches`` (collated with the prompt masked)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        n = int((batch.targets != IGNORE).sum())
        _, loss = model(batch.inputs, batch.targets)
        total, count = total + loss.item() * n, count + n
    model.train(was_training)
    return total / count


def _supports_attention_mask(model) -> bool:
    return "attention_mask" in inspect.signature(model.generate).parameters


@torch.no_grad()
def generate_responses(model, tokenizer, records: Sequence[dict], max_new_tokens: int = 64, batch_size: int = 8,
                       end_id: int = END_OF_TEXT_ID, min_new_tokens: int = 0) -> list[str]:
    """Greedy answers to ``records``' prompts, cut at ``<|endoftext|>``.

    Prompts of a batch are padded on the left, with an attention mask, so that every row's
    answer starts right after its own prompt; a model whose ``generate`` has no
    ``attention_mask`` answers one prompt at a time instead. ``min_new_tokens`` (at most 1)
    keeps ``<|endoftext|>`` from being the first token, as transformers' option of that name
    does: a weak model otherwise often answers nothing at all.
    """
    if min_new_tokens not in (0, 1):
        raise ValueError(f"min_new_tokens should be 0 or 1, got {min_new_tokens!r}")
    model.eval()
    prompts = [tokenizer.encode_ordinary(format_prompt(r)) for r in records]
    limit = model.config.block_size - max_new_tokens
    if limit < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the context of "
                         f"{model.config.block_size}")
    prompts = [p[-limit:] for p in prompts]  # keep the end: the response starts there
    step = batch_size if _supports_attention_mask(model) else 1
    answers: list[str] = []
    for start in range(0, len(prompts), step):
        chunk = prompts[start:start + step]
        T = max(len(p) for p in chunk)
        idx = torch.full((len(chunk), T), end_id, dtype=torch.long)  # (B, T), left-padded
        mask = torch.zeros((len(chunk), T), dtype=torch.long)  # (B, T): 1 on real tokens
        for row, p in enumerate(chunk):
            idx[row, T - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, T - len(p):] = 1
        device = next(model.parameters()).device
        idx, mask = idx.to(device), mask.to(device)
        kwargs = {"attention_mask": mask} if step > 1 else {}
        steps = max_new_tokens
        if min_new_tokens:
            logits, _ = model(idx, last_only=True, **kwargs)  # (B, 1, V)
            first = logits[:, -1].index_fill(-1, torch.tensor([end_id], device=device), float("-inf")).argmax(-1)
            idx, mask = torch.cat([idx, first[:, None]], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            steps -= 1
            kwargs = {"attention_mask": mask} if step > 1 else {}
        out = model.generate(idx, steps, temperature=0.0, **kwargs)[:, T:]  # (B, max_new_tokens)
        for row in out.tolist():
            row = row[: row.index(end_id)] if end_id in row else row
            answers.append(tokenizer.decode(row).strip())
    return answers


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of ``predictions`` against ``references`` (Google's ``rouge-score``, stemmed)."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need as many predictions as references (got {len(predictions)} and "
                         f"{len(references)}), at least one")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return sum(scores) / len(predictions)


__all__ = ["IGNORE", "PREAMBLE", "format_prompt", "InstructBatch", "collate_instructions", "encode_record",
           "instruction_batches", "response_loss", "generate_responses", "rouge_l"]
