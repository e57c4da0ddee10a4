"""The package's own messages (grader, checks, CLI, doctor, widgets) in the learner's language, through gettext.

Every user-facing message is written as ``_("expected shape {expected}, got {got}").format(...)``:
``_`` looks the English text up in the ``minigpt2`` domain's catalog for the current language, and
the named placeholders let a translation put the values in its own order. Counts use
``ngettext(singular, plural, n)``. The exercises' titles, registered at import before a language is
known, are extracted from ``@exercise(id, title, …)`` itself and translated where they are shown.

The language: ``set_language("zh")``, else the language of the notebook this kernel runs
(``metadata.minigpt2.language``, "zh" in the Chinese notebooks; JupyterLab names the notebook in the
kernel's ``JPY_SESSION_NAME``), else the ``MINIGPT2_LANG`` environment variable (``zh`` or ``zh_CN``), else
English. So a zh notebook's check cells speak Chinese in JupyterLab with no code of their own, and
``minigpt2 grade`` grades it in Chinese (it reads the metadata, and tells the kernel it starts).
``using_language(lang)`` switches for a block.

The catalogs are ``minigpt2/locale/<locale>/LC_MESSAGES/minigpt2.po``, shipped as package data and
compiled in memory at first use (Babel), so a compiled file can never be stale. ``python -m
minigpt2.i18n.messages update`` re-extracts ``minigpt2/locale/minigpt2.pot`` from the sources and merges
it into each catalog (``make messages``).
"""

from __future__ import annotations

import gettext
import io
import json
import os
import subprocess
import sys
import unicodedata
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

DOMAIN = "minigpt2"
LANG_ENV = "MINIGPT2_LANG"
SESSION_ENV = "JPY_SESSION_NAME"  # set by jupyter_server in a kernel it starts: the notebook's path
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
ROOT = LOCALE_DIR.parent.parent  # the repository (babel.cfg, the sources to extract from)
LOCALES = {"en": None, "zh": "zh_CN"}  # a language the course speaks -> its catalog's locale (English: none)

_chosen: str | None = None  # set_language's choice; None: the environment decides


def normalize(language: str | None) -> str:
    """``"zh"`` for zh, zh_CN, zh-cn, zh_CN.UTF-8…; ``"en"`` for anything else (and for None or "")."""
    return "zh" if language and language.strip().lower().replace("-", "_").startswith("zh") else "en"


def set_language(language: str | None) -> str:
    """Speak ``language`` ("zh" or "en") from now on in this process; None gives the choice back to
    ``MINIGPT2_LANG``. Returns the language now in use."""
    global _chosen
    _chosen = None if language is None else normalize(language)
    return current_language()


def current_language() -> str:
    if _chosen is not None:
        return _chosen
    return _session_language() or normalize(os.environ.get(LANG_ENV))


def notebook_language(metadata) -> str | None:
    """The language a notebook's metadata declares (``metadata.minigpt2.language``), or None if it does not."""
    meta = metadata.get("minigpt2") if isinstance(metadata, dict) else None
    language = meta.get("language") if isinstance(meta, dict) else None
    return normalize(language) if isinstance(language, str) and language.strip() else None


def _session_language() -> str | None:
    """The language of the notebook a Jupyter server started this kernel for, if it declares one."""
    path = os.environ.get(SESSION_ENV, "")
    if not path.endswith(".ipynb"):
        return None
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _file_language(path, modified)


@lru_cache(maxsize=8)
def _file_language(path: str, modified: int) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return notebook_language(json.load(f).get("metadata"))
    except (OSError, ValueError, AttributeError):
        return None


@contextmanager
def using_language(language: str | None):
    """Speak ``language`` inside the block (None: leave the language as it is)."""
    global _chosen
    previous = _chosen
    if language is not None:
        _chosen = normalize(language)
    try:
        yield
    finally:
        _chosen = previous


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English: the messages as written)."""
    locale = LOCALES.get(normalize(language))
    path = catalog_path(locale) if locale else None
    if path is None or not path.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """``message`` in the current language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of the message that fits the count ``n``, in the current language."""
    return translations(current_language()).ngettext(singular, plural, n)


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes: a Chinese character takes two (to line up tables)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


PYBABEL = [sys.executable, "-m", "babel.messages.frontend"]


def extract(template: Path = TEMPLATE) -> None:
    """Write the template (.pot) of every message marked in the package's sources (babel.cfg says where)."""
    template.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*PYBABEL, "extract", "-F", str(ROOT / "babel.cfg"), "-k", "exercise:2", "--project",
                    DOMAIN, "--no-location", "--sort-output", "-w", "100", "-o", str(template), DOMAIN],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def update_catalogs() -> None:
    """Re-extract the template from the sources and merge it into every catalog (Babel's pybabel)."""
    extract()
    for locale in filter(None, LOCALES.values()):
        command = "update" if catalog_path(locale).is_file() else "init"
        # update: a new message gets an empty translation (never a fuzzy guess) and a removed one is dropped
        fresh = ["--no-fuzzy-matching", "--ignore-obsolete"] if command == "update" else []
        subprocess.run([*PYBABEL, command, "-D", DOMAIN, "-i", str(TEMPLATE), "-d", str(LOCALE_DIR), "-l", locale,
                        "-w", "100", *fresh], check=True, cwd=ROOT)


if __name__ == "__main__":
    if sys.argv[1:] != ["update"]:
        sys.exit("usage: python -m minigpt2.i18n.messages update")
    update_catalogs()
