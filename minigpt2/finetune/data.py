"""Lesson 11's two data sets, read, checked and split reproducibly.

* The SMS Spam Collection v.1 (Almeida & Gómez Hidalgo, 2011): 5,574 text messages labelled
  ``ham`` (4,827) or ``spam`` (747). 403 of them are exact repeats of another (the same
  promotion sent to many people); :func:`sms_spam_splits` keeps the first of each, so no test
  message is also a training message, balances the rest (as many ham as spam, 653 each, drawn
  with a seed) and splits it 70 / 10 / 20 % into train / validation / test.
* 1,100 instruction / input / output records from rasbt/LLMs-from-scratch (chapter 7):
  :func:`instruction_splits` checks every record and splits them 85 / 5 / 10 %, seeded.

Both files are found like every other data file (:func:`minigpt2.datafiles.locate`).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

from minigpt2.datafiles import KNOWN_FILES, locate, read_member

SMS_LABELS = ("ham", "spam")


@dataclass(frozen=True)
class Splits:
    train: list
    val: list
    test: list

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def split(items: list, fractions: tuple[float, float], seed: int) -> Splits:
    """Shuffle ``items`` with ``seed`` and cut them into train / validation / test; ``fractions``
    are the train and validation shares, the test set takes the rest."""
    train_share, val_share = fractions
    if not (0 < train_share < 1 and 0 <= val_share < 1 and train_share + val_share < 1):
        raise ValueError("the train and validation fractions should be in (0, 1) and leave some for the test set, "
                         f"got {fractions}")
    items = list(items)
    random.Random(seed).shuffle(items)
    n_train, n_val = int(len(items) * train_share), int(len(items) * val_share)
    return Splits(items[:n_train], items[n_train:n_train + n_val], items[n_train + n_val:])


# --------------------------------------------------------------------------- SMS spam


def read_sms_spam(path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """Every (text, label) of the SMS Spam Collection, in the file's order (``path``: the zip)."""
    spec = KNOWN_FILES["sms-spam"]
    lines = read_member(locate("sms-spam", path), spec).decode("utf-8").splitlines()
    messages = []
    for number, line in enumerate(lines, 1):
        label, tab, text = line.partition("\t")
        if not tab or label not in SMS_LABELS:
            raise ValueError(f"line {number} of {spec.member} is not 'ham<TAB>text' or 'spam<TAB>text': {line[:60]!r}")
        messages.append((text, label))
    return messages


def deduplicate(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The messages without exact repeats (the first of each kept, the order kept)."""
    return list(dict.fromkeys(messages))


def balance(messages: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """As many messages of each label as the rarest label has, drawn with ``seed``."""
    by_label: dict[str, list] = {}
    for message in messages:
        by_label.setdefault(message[1], []).append(message)
    n = min(len(group) for group in by_label.values())
    rng = random.Random(seed)
    return [m for label in sorted(by_label) for m in rng.sample(by_label[label], n)]


def sms_spam_splits(path: str | os.PathLike | None = None, seed: int = 123, fractions=(0.7, 0.1)) -> Splits:
    """The SMS Spam Collection without repeats, balanced (653 ham, 653 spam), split into train / validation / test."""
    return split(balance(deduplicate(read_sms_spam(path)), seed), fractions, seed)


# --------------------------------------------------------------------------- instructions


def check_record(record, number: int) -> dict:
    """One instruction record, checked: ``instruction`` and ``output`` are non-empty strings,
    ``input`` a string (missing means empty). Returns it with ``input`` filled in."""
    where = f"record {number}"
    if not isinstance(record, dict):
        raise ValueError(f"{where} should be an object with instruction / input / output, got {type(record).__name__}")
    for key in ("instruction", "output"):
        if key not in record:
            raise ValueError(f"{where} has no {key!r}: every record needs an instruction and the output to learn "
                             f"(it has {sorted(record)})")
        if not isinstance(record[key], str):
            raise ValueError(f"{where}: {key!r} should be a string, got {type(record[key]).__name__}")
    if not record["output"].strip():
        raise ValueError(f"{where} has an empty output: there is no response to learn from it; fix or drop the record")
    if not record["instruction"].strip():
        raise ValueError(f"{where} has an empty instruction")
    value = record.get("input", "")
    if not isinstance(value, str):
        raise ValueError(f"{where}: 'input' should be a string (or absent), got {type(value).__name__}")
    return {"instruction": record["instruction"], "input": value, "output": record["output"]}


def read_instructions(path: str | os.PathLike | None = None) -> list[dict]:
    """The instruction records, each checked (see :func:`check_record`). With ``path``, a JSON
    list of records at that path (any file; the course's own is verified by its SHA-256)."""
    if path is None:
        path = locate("instruction-data")
    try:
        records = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"could not read instruction records from {path}: {err}") from None
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path} should hold a non-empty JSON list of instruction / input / output records")
    return [check_record(r, i) for i, r in enumerate(records)]


def instruction_splits(path: str | os.PathLike | None = None, seed: int = 123, fractions=(0.85, 0.05)) -> Splits:
    """The instruction records split 85 / 5 / 10 % into train / validation / test, seeded."""
    return split(read_instructions(path), fractions, seed)


__all__ = ["SMS_LABELS", "Splits", "split", "read_sms_spam", "deduplicate", "balance", "sms_spam_splits",
           "check_record",
           "read_instructions", "instruction_splits"]
