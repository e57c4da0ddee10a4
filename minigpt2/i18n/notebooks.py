"""Translation files for the notebooks: one gettext catalog (.po) per English notebook.

The English notebooks are the single source. A notebook's translation file holds one entry per prose
(markdown) cell: ``msgctxt`` is the cell's id, ``msgid`` its English text, ``msgstr`` the translation.
Keying by the English text itself (not only a hash of it) shows a reviewer both sides at once, and lets
any gettext tool (Poedit, Babel, Weblate) edit the file.

Translators work on a plain text file with no escaping, one block per cell::

    <<< cell 1a2b3c4d >>>
    the cell's text

``python -m minigpt2.i18n.notebooks template NOTEBOOK TEXT`` writes that file with the English text;
replace each block's text, then ``python -m minigpt2.i18n.notebooks import NOTEBOOK TEXT CATALOG``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

MARKER = re.compile(r"^<<< cell (\S+) >>>$", re.MULTILINE)


@dataclass(frozen=True)
class Prose:
    cell_id: str
    text: str


def prose_cells(notebook: nbformat.NotebookNode) -> list[Prose]:
    """The markdown cells of `notebook`, in order: the text a translation replaces."""
    return [Prose(c["id"], c["source"]) for c in notebook.cells if c.cell_type == "markdown"]


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write_template(notebook_path: str | Path, text_path: str | Path) -> None:
    """Write the plain-text file a translator fills in, with each prose cell's English text."""
    blocks = [f"<<< cell {p.cell_id} >>>\n{p.text.rstrip()}\n" for p in prose_cells(read_notebook(notebook_path))]
    Path(text_path).write_text("\n".join(blocks), encoding="utf-8")


def parse_text(text: str) -> dict[str, str]:
    """Cell id → translated text, from a translator's plain-text file."""
    marks = list(MARKER.finditer(text))
    if not marks:
        raise ValueError("no '<<< cell ID >>>' line found: is this a translation text file?")
    out: dict[str, str] = {}
    for here, after in zip(marks, marks[1:] + [None]):
        end = after.start() if after else len(text)
        cell_id = here.group(1)
        if cell_id in out:
            raise ValueError(f"cell {cell_id} appears twice in the text file")
        out[cell_id] = text[here.end():end].strip("\n")
    return out


def import_text(notebook_path: str | Path, text_path: str | Path, catalog_path: str | Path) -> int:
    """Turn a translator's text file into the notebook's catalog; returns how many cells are translated."""
    cells = prose_cells(read_notebook(notebook_path))
    translated = parse_text(Path(text_path).read_text(encoding="utf-8"))
    unknown = set(translated) - {p.cell_id for p in cells}
    if unknown:
        raise ValueError(f"{text_path}: cells not in {notebook_path}: {', '.join(sorted(unknown))}")
    missing = [p.cell_id for p in cells if p.cell_id not in translated]
    if missing:
        raise ValueError(f"{text_path}: no translation for cells {', '.join(missing)}")
    catalog = Catalog(locale="zh_CN", project="minigpt2", fuzzy=False)
    for p in cells:
        catalog.add(p.text, translated[p.cell_id], context=p.cell_id)
    Path(catalog_path).parent.mkdir(parents=True, exist_ok=True)
    with open(catalog_path, "wb") as f:
        write_po(f, catalog, width=0, omit_header=True, sort_output=False)
    return len(cells)


def read_catalog(catalog_path: str | Path) -> dict[str, tuple[str, str]]:
    """Cell id → (English text it was translated from, translation)."""
    with open(catalog_path, "rb") as f:
        catalog = read_po(f, locale="zh_CN")
    return {m.context: (m.id, m.string) for m in catalog if m.id and m.context}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minigpt2.i18n.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("template", help="write a plain-text file with the English prose cells to translate")
    t.add_argument("notebook")
    t.add_argument("text")
    i = sub.add_parser("import", help="turn a translated plain-text file into the notebook's catalog (.po)")
    i.add_argument("notebook")
    i.add_argument("text")
    i.add_argument("catalog")
    args = parser.parse_args(argv)
    try:
        if args.command == "template":
            write_template(args.notebook, args.text)
        else:
            n = import_text(args.notebook, args.text, args.catalog)
            print(f"{args.catalog}: {n} cells")
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
