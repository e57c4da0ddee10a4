"""GPT-2's pre-split: cut text into chunks with a regex before any merging.

BPE never merges across chunk boundaries, so "dog." and "dog!" share the token
" dog" instead of each wasting vocabulary on "dog." and "dog!". The pattern, as GPT-2
was released, reads::

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

contractions, then an optional space followed by letters, or by digits, or by
other symbols; then runs of whitespace (all but the last space when a word follows,
so the space sticks to that word). :data:`GPT2_SPLIT_PATTERN` is tiktoken's
equivalent form: possessive quantifiers (``++``) never backtrack, so it splits the
same way, faster.
"""

from __future__ import annotations

from functools import lru_cache

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


@lru_cache(maxsize=16)
def compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def split_text(text: str, pattern: str | None = GPT2_SPLIT_PATTERN) -> list[str]:
    """The chunks BPE works on: ``pattern``'s matches, or the whole text when ``pattern`` is None."""
    if pattern is None:
        return [text] if text else []
    return compiled(pattern).findall(text)
