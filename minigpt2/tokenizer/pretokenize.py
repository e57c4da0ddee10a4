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

Which code points are letters (``\\p{L}``) and numbers (``\\p{N}``) depends on the regex
engine's Unicode tables. tiktoken's engine uses Unicode 16.0; Python's ``regex`` module a
newer one, with thousands more letters, which split differently before an apostrophe. So
the pattern is compiled with ``\\p{L}`` and ``\\p{N}`` spelled out as Unicode 16.0's ranges
(:mod:`minigpt2.tokenizer.unicode16`), and every code point is classed as tiktoken classes it.
"""

from __future__ import annotations

import sys
from array import array
from functools import lru_cache

import regex

from minigpt2.tokenizer import unicode16

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def _class_body(ranges: str) -> str:
    r"""The inside of a character class for hex ranges: ``41-5A 61`` -> ``\U00000041-\U0000005A\U00000061``."""
    return "".join("-".join(f"\\U{int(end, 16):08X}" for end in item.split("-")) for item in ranges.split())


_PINNED_CLASSES = {r"\p{L}": _class_body(unicode16.LETTERS), r"\p{N}": _class_body(unicode16.NUMBERS)}


def pin_unicode_classes(pattern: str) -> str:
    r"""``pattern`` with ``\p{L}`` and ``\p{N}`` replaced by Unicode 16.0's ranges, inside a
    character class (``[^\s\p{L}]``) and outside one (``\p{L}++`` becomes ``[…]++``)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        pinned = next((p for p in _PINNED_CLASSES if pattern.startswith(p, i)), None)
        if pinned:
            body = _PINNED_CLASSES[pinned]
            out.append(body if in_class else f"[{body}]")
            i += len(pinned)
            continue
        char = pattern[i]
        if char == "\\":  # an escape: copy it with the character it escapes
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a literal
                out.append("]")
                i += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=16)
def compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


@lru_cache(maxsize=16)
def compiled_pinned(pattern: str) -> regex.Pattern:
    r"""``pattern`` compiled with ``\p{L}`` and ``\p{N}`` classed as tiktoken's engine classes them
    (slower: the regex module checks a long list of ranges where it would look up a property)."""
    return regex.compile(pin_unicode_classes(pattern))


@lru_cache(maxsize=1)
def reclassified_characters() -> frozenset[str]:
    r"""The characters the ``regex`` module classes differently from Unicode 16.0 as a letter or a
    number (17,480 with regex 2026.11.19's Unicode 18.0). Text without them splits the same with
    the plain pattern and the pinned one. Found once, in a fraction of a second."""
    differ: list[str] = []
    for prop, unprop, ranges in ((r"\p{L}", r"\P{L}", unicode16.LETTERS), (r"\p{N}", r"\P{N}", unicode16.NUMBERS)):
        members = _ranges(ranges)
        differ += regex.findall(unprop, _characters(members))  # members by Unicode 16.0, not by the regex module
        differ += regex.findall(prop, _characters(_complement(members)))  # and the other way round
    return frozenset(differ)


def _ranges(ranges: str) -> list[tuple[int, int]]:
    """``"41-5A 61"`` -> [(0x41, 0x5A), (0x61, 0x61)]."""
    return [(int(item.split("-")[0], 16), int(item.split("-")[-1], 16)) for item in ranges.split()]


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every other code point, surrogates left out (a str cannot hold them alone)."""
    out, start = [], 0
    for a, b in ranges + [(0x110000, 0x110000)]:
        out += [(lo, hi) for lo, hi in ((start, min(a, 0xD800) - 1), (max(start, 0xE000), a - 1)) if lo <= hi]
        start = b + 1
    return out


def _characters(ranges: list[tuple[int, int]]) -> str:
    code_points = array("I")
    for a, b in ranges:
        code_points.extend(range(a, b + 1))
    return code_points.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")


def split_text(text: str, pattern: str | None = GPT2_SPLIT_PATTERN) -> list[str]:
    """The chunks BPE works on: ``pattern``'s matches, or the whole text when ``pattern`` is None.

    Letters and numbers are those of Unicode 16.0, as in tiktoken; the fast plain pattern runs
    whenever the text holds no character whose class changed after Unicode 16.0."""
    if pattern is None:
        return [text] if text else []
    if text.isascii() or reclassified_characters().isdisjoint(text):
        return compiled(pattern).findall(text)
    return compiled_pinned(pattern).findall(text)
