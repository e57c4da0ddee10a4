"""Shared test set-up: no network, the data folder, quick mode."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests never touch the network.
os.environ["MINIGPT2_OFFLINE"] = "1"
# The lessons run their local models even where GPT-2's weights are cached, so their outputs are the committed ones.
os.environ["MINIGPT2_LOCAL_MODELS"] = "1"
# Long cells shrink their work.
os.environ.setdefault("MINIGPT2_QUICK", "1")
# The package's messages in English (tests match on them; tests of the Chinese catalog choose it themselves), even
# when pytest runs from a zh notebook's kernel (JPY_SESSION_NAME names that notebook).
os.environ.pop("MINIGPT2_LANG", None)
os.environ.pop("JPY_SESSION_NAME", None)
# Development checkouts have the course's shared data beside them; CI sets this itself.
_shared = ROOT.parent / "shared" / "data"
if "MINIGPT2_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["MINIGPT2_DATA_DIR"] = str(_shared)


@pytest.fixture
def root() -> Path:
    return ROOT
