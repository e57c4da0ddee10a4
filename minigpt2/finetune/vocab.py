"""GPT-2's tokenizer kept, its vocabulary cut to the tokens a corpus uses.

A small model with GPT-2's whole vocabulary spends most of its time in the 50,257-row embedding and
output layer (with 64 dimensions, 3.2M of its numbers, and a (B, T, 50257) softmax at every step),
and most rows belong to tokens its texts never use. :class:`CompactVocab` encodes with GPT-2's
tokenizer and renumbers the ids that occur in the corpus 0…n−1, so that a model pre-trained from
scratch on that corpus (ULMFiT's recipe in lesson 11) has an n-row embedding instead: the 914
training messages of the SMS collection use 4,658 of GPT-2's tokens, and a step costs about a
fifteenth. An id that the corpus never used becomes one shared ``unknown`` id.
"""

from __future__ import annotations

from collections.abc import Iterable

from minigpt2.tokenizer import END_OF_TEXT_ID


class CompactVocab:
    """GPT-2's ids that occur in ``texts`` (and ``<|endoftext|>``), renumbered; ``len()`` counts the
    unknown id too. ``encode_ordinary`` is the tokenizer's, renumbered, so it stands in for the
    tokenizer where only that is used (:func:`minigpt2.finetune.batches_of`)."""

    def __init__(self, tokenizer, texts: Iterable[str]):
        self.tokenizer = tokenizer
        self.gpt2_ids = sorted({i for text in texts for i in tokenizer.encode_ordinary(text)} | {END_OF_TEXT_ID})
        self.compact = {gpt2_id: i for i, gpt2_id in enumerate(self.gpt2_ids)}
        self.unknown = len(self.gpt2_ids)  # every id the corpus never used
        self.eot = self.compact[END_OF_TEXT_ID]

    def __len__(self) -> int:
        return len(self.gpt2_ids) + 1

    def encode_ordinary(self, text: str) -> list[int]:
        return [self.compact.get(i, self.unknown) for i in self.tokenizer.encode_ordinary(text)]


__all__ = ["CompactVocab"]
