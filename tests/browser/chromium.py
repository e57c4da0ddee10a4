"""Which Chromium the browser tests drive, and how: Debian's package, no browser download."""

from __future__ import annotations

import os
import shutil

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
NO_CHROMIUM = "Chromium not found: install it with apt-get install chromium"
NO_PLAYWRIGHT = "Playwright not installed: install it with .venv/bin/pip install -e '.[browser]'"
# Chromium without its own calls home: the test machine may have no network at all.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def find_chromium() -> str | None:
    """Debian's chromium, or the browser named by MINIGPT2_CHROMIUM (a path or a command)."""
    chosen = os.environ.get("MINIGPT2_CHROMIUM")
    for candidate in (chosen,) if chosen else CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None
