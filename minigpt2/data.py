"""Text corpora by name."""

from __future__ import annotations

import os

from minigpt2.datafiles import KNOWN_FILES, DataFileError, locate

CORPORA = ("tinyshakespeare",)


def load_text(name: str = "tinyshakespeare", path: str | os.PathLike | None = None) -> str:
    """The text of a corpus by name (``"tinyshakespeare"``), found and verified as
    :mod:`minigpt2.datafiles` describes; ``path`` points at an explicit copy."""
    if name not in CORPORA:
        raise DataFileError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    with open(locate(name, path), encoding="utf-8") as f:
        return f.read()


def gpt2_merges_path(path: str | os.PathLike | None = None):
    """The verified path of GPT-2's merge ranks (``gpt2.tiktoken``)."""
    return locate("gpt2-merges", path)


__all__ = ["load_text", "gpt2_merges_path", "CORPORA", "KNOWN_FILES"]
