"""The simplest tokenizer: one token per character of a text's alphabet.

Tiny Shakespeare has 65 distinct characters, so its vocabulary is 65 ids, against
GPT-2's 50,257. Every text becomes long (one id per character), but nothing is
ever split in a surprising place, which makes it the tokenizer to learn with.
"""

from __future__ import annotations

from typing import Iterable


class CharTokenizer:
    """Ids are the positions of the characters in the sorted alphabet of ``text``.

    >>> tok = CharTokenizer("hello")
    >>> tok.chars, tok.encode("hole")
    (['e', 'h', 'l', 'o'], [1, 3, 2, 0])
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer is built from a non-empty string: its characters become the vocabulary")
        self.chars: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            unknown = sorted({ch for ch in text if ch not in self.stoi})
            raise ValueError(
                f"characters {unknown!r} are not in this tokenizer's vocabulary of {self.vocab_size}; "
                "build the CharTokenizer from a text that contains them"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]  # lists, tensors and arrays alike
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} are outside this tokenizer's vocabulary (0 to {self.vocab_size - 1})")
        return "".join(self.chars[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


__all__ = ["CharTokenizer"]
