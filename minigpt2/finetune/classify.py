"""A GPT body with a classification head, read at the last real token of each sequence.

GPT-2 is causal: position t sees positions 0..t only, so the last token of a text is the one
position that has read all of it. Texts of different lengths are padded on the right to
share a tensor; the padding comes after the last real token, which therefore never sees it,
and the head reads each row at ``length - 1``, not at ``T - 1`` (that would be padding).

    clf = GPTClassifier(GPT.from_pretrained("gpt2"), labels=("ham", "spam"))
    set_trainable(clf, "last", n_blocks=1)        # the head, the last block and ln_f
    batch = collate_classification([tok.encode(t) for t in texts], labels, pad_id=50256, max_length=128)
    logits = clf(batch.ids, batch.lengths)        # (B, n_labels)
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minigpt2 import hf
from minigpt2.model import GPT
from minigpt2.tokenizer.gpt2 import END_OF_TEXT_ID

TRAINABLE_CHOICES = ("head", "last", "all")


@dataclass
class ClassBatch:
    ids: torch.Tensor  # (B, T) token ids, right-padded with pad_id
    lengths: torch.Tensor  # (B,) real tokens of each row (after truncation)
    labels: torch.Tensor  # (B,) class indices
    truncated: int  # how many texts were cut to max_length


def collate_classification(token_lists: Sequence[Sequence[int]], labels: Sequence[int], pad_id: int,
                           max_length: int, end_id: int | None = None) -> ClassBatch:
    """Pad the token lists on the right to the longest (cut to ``max_length`` tokens first,
    keeping the beginning) and stack them; ``truncated`` counts the texts that were cut.

    ``end_id``: a token put after every text, so that it is each row's last real token, the one
    the head reads (a text is then cut to ``max_length - 1`` tokens to leave it room). Hugging
    Face's ``GPT2ForSequenceClassification`` reads the last token that is not its pad token, so
    an ``end_id`` equal to ``pad_id`` suits this package's classifier, not a saved one.
    """
    if len(token_lists) != len(labels):
        raise ValueError(f"got {len(token_lists)} texts but {len(labels)} labels")
    if not token_lists:
        raise ValueError("an empty batch: give at least one text")
    if max_length < 1:
        raise ValueError(f"max_length should be at least 1, got {max_length}")
    if any(len(ids) == 0 for ids in token_lists):
        raise ValueError("a text has no tokens: an empty message cannot be classified (drop it)")
    room = max_length if end_id is None else max_length - 1  # tokens each text may keep
    if room < 1:
        raise ValueError(f"max_length should be at least 2 with an end token, got {max_length}")
    cut = [list(ids[:room]) + ([] if end_id is None else [end_id]) for ids in token_lists]
    T = max(len(ids) for ids in cut)
    ids = torch.full((len(cut), T), pad_id, dtype=torch.long)  # (B, T)
    for row, tokens in enumerate(cut):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    lengths = torch.tensor([len(t) for t in cut], dtype=torch.long)  # (B,)
    truncated = sum(len(t) > room for t in token_lists)
    return ClassBatch(ids, lengths, torch.as_tensor(list(labels), dtype=torch.long), truncated)


def pool_last(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's vector at its last real token: (B, T, C), (B,) -> (B, C)."""
    if lengths.min() < 1 or lengths.max() > hidden.size(1):
        raise ValueError(f"lengths should be between 1 and T={hidden.size(1)}, got {lengths.tolist()}")
    rows = torch.arange(hidden.size(0), device=hidden.device)  # (B,)
    return hidden[rows, lengths.to(hidden.device) - 1]  # (B, C)


class GPTClassifier(nn.Module):
    """A copy of ``gpt``'s body (embeddings, blocks, ln_f) and a new head ``score``, an
    (n_labels, n_embd) Linear without bias, as Hugging Face's ``GPT2ForSequenceClassification``."""

    def __init__(self, gpt: GPT, labels: Sequence[str]):
        super().__init__()
        labels = tuple(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"a classifier needs at least two distinct labels, got {labels}")
        self.labels = labels
        self.body = copy.deepcopy(gpt)
        self.body.lm_head = nn.Identity()  # the body now returns ln_f's output, (B, T, n_embd)
        self.score = nn.Linear(gpt.config.n_embd, len(labels), bias=False)
        nn.init.normal_(self.score.weight, std=0.02)

    @property
    def config(self):
        return self.body.config

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, n_labels) read at each row's last real token (the last position when
        ``lengths`` is None)."""
        hidden, _ = self.body(idx)  # (B, T, n_embd)
        if lengths is None:
            lengths = torch.full((idx.size(0),), idx.size(1), dtype=torch.long, device=idx.device)
        return self.score(pool_last(hidden, lengths))  # (B, n_labels)

    def label_ids(self, labels: Sequence) -> list[int]:
        """Class indices for labels given as names ("spam") or indices; any other is an error."""
        ids = []
        for label in labels:
            if isinstance(label, str):
                if label not in self.labels:
                    raise ValueError(f"label {label!r} is not one this classifier was built for: "
                                     f"{', '.join(self.labels)}")
                ids.append(self.labels.index(label))
            elif isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.labels):
                ids.append(label)
            else:
                raise ValueError(f"label {label!r} is not one this classifier was built for: the indices "
                                 f"0..{len(self.labels) - 1} ({', '.join(self.labels)})")
        return ids

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write Hugging Face's ``GPT2ForSequenceClassification`` format (``transformers`` loads it;
        it finds the last real token as the last one that is not ``pad_token_id``)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = hf.config_to_hf(self.config)
        config.update(architectures=["GPT2ForSequenceClassification"], pad_token_id=END_OF_TEXT_ID,
                      id2label={str(i): name for i, name in enumerate(self.labels)},
                      label2id={name: i for i, name in enumerate(self.labels)})
        (directory / hf.CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        tensors = hf.to_hf_state_dict(self.body)
        tensors["score.weight"] = self.score.weight.detach().cpu().contiguous()
        save_file(tensors, directory / hf.WEIGHTS_FILE, metadata={"format": "pt"})


def set_trainable(clf: GPTClassifier, what: str = "last", n_blocks: int = 1) -> int:
    """Choose what trains: ``"head"`` (the new head alone), ``"last"`` (the head, the last
    ``n_blocks`` blocks and the final LayerNorm) or ``"all"``. Returns the trainable count."""
    if what not in TRAINABLE_CHOICES:
        raise ValueError(f"what trains should be one of {', '.join(TRAINABLE_CHOICES)}, got {what!r}")
    blocks = clf.body.transformer.h
    if what == "last" and not 1 <= n_blocks <= len(blocks):
        raise ValueError(f"n_blocks should be between 1 and the model's {len(blocks)} blocks, got {n_blocks}")
    clf.requires_grad_(what == "all")
    clf.score.requires_grad_(True)
    if what == "last":
        for block in blocks[len(blocks) - n_blocks:]:
            block.requires_grad_(True)
        clf.body.transformer.ln_f.requires_grad_(True)
    return sum(p.numel() for p in clf.parameters() if p.requires_grad)


@dataclass
class ClassEval:
    loss: float
    accuracy: float
    confusion: torch.Tensor  # (n_labels, n_labels): row = true label, column = predicted

    def __str__(self) -> str:
        return f"loss {self.loss:.3f}, accuracy {self.accuracy:.1%}"


@torch.no_grad()
def evaluate_classifier(clf: GPTClassifier, batches: Sequence[ClassBatch]) -> ClassEval:
    """Mean loss, accuracy and the confusion matrix over ``batches``; dropout off meanwhile."""
    was_training = clf.training
    clf.eval()
    n = len(clf.labels)
    confusion = torch.zeros(n, n, dtype=torch.long)
    total_loss, count = 0.0, 0
    for batch in batches:
        logits = clf(batch.ids, batch.lengths)  # (B, n_labels)
        total_loss += F.cross_entropy(logits, batch.labels, reduction="sum").item()
        count += len(batch.labels)
        predicted = logits.argmax(-1)  # (B,)
        confusion += torch.bincount(batch.labels * n + predicted, minlength=n * n).view(n, n)
    clf.train(was_training)
    return ClassEval(total_loss / count, confusion.diag().sum().item() / count, confusion)


def batches_of(clf: GPTClassifier, tokenizer, examples: Sequence[tuple[str, str]], batch_size: int,
               max_length: int, pad_id: int = END_OF_TEXT_ID, end_id: int | None = None) -> list[ClassBatch]:
    """(text, label) examples, tokenized (``tokenizer.encode_ordinary``) and collated ``batch_size``
    at a time (in order); ``end_id`` as in :func:`collate_classification`."""
    if max_length > clf.config.block_size:
        raise ValueError(f"max_length {max_length} is longer than the model's context ({clf.config.block_size})")
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        ids = [tokenizer.encode_ordinary(text) for text, _ in chunk]
        labels = clf.label_ids([label for _, label in chunk])
        out.append(collate_classification(ids, labels, pad_id, max_length, end_id))
    return out


__all__ = ["ClassBatch", "collate_classification", "pool_last", "GPTClassifier", "set_trainable", "ClassEval",
           "evaluate_classifier", "batches_of", "TRAINABLE_CHOICES"]
