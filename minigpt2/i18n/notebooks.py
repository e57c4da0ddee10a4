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

The catalogs live in ``translations/<lang>/notebooks/NN_x.po`` and ``translations/<lang>/solutions/NN_x.po``.
``minigpt2 translate`` writes from them ``notebooks/<lang>/``, ``solutions/<lang>/`` and (through the exercise
generator) ``exercises/<lang>/``: prose from the catalog, with relative links and images rewritten to resolve from
the deeper folder; code cells, outputs, execution counts and widget state exactly the English run's; the
language in ``metadata.minigpt2.language``. A prose cell with no translation, or whose translation was made from
English text that has since changed, is an error naming the notebook and the cells.
"""

from __future__ import annotations

import argparse
import copy
import posixpath
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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


LANGUAGES = ("zh",)
SOURCES = ("notebooks", "solutions")  # the English folders a catalog translates; exercises/<lang>/ is generated
FOLDERS = ("notebooks", "solutions", "exercises")  # the folders with a <lang>/ twin


class TranslationError(ValueError):
    """Catalogs that cannot give a complete, current translation (the message lists notebooks and cells)."""


def catalog_path(root: str | Path, kind: str, name: str, lang: str = "zh") -> Path:
    """Where the catalog of ``<kind>/<name>.ipynb`` lives: ``translations/<lang>/<kind>/<name>.po``."""
    return Path(root) / "translations" / lang / kind / (Path(name).stem + ".po")


def catalogs(root: str | Path, lang: str = "zh") -> list[tuple[str, str]]:
    """(kind, notebook file name) of every catalog there is, e.g. ``("notebooks", "03_attention.ipynb")``."""
    return [(kind, po.stem + ".ipynb") for kind in SOURCES
            for po in sorted((Path(root) / "translations" / lang / kind).glob("*.po"))]


@dataclass
class Coverage:
    """How a catalog covers its notebook's prose cells (cell ids)."""

    missing: list[str] = field(default_factory=list)  # no translation
    stale: list[str] = field(default_factory=list)  # translated from English text that has since changed
    unknown: list[str] = field(default_factory=list)  # in the catalog, no longer in the notebook

    def problems(self, where: str) -> list[str]:
        said = [(self.missing, "no translation for cells"),
                (self.stale, "the English text changed since these cells were translated"),
                (self.unknown, "the catalog has cells the notebook no longer has")]
        return [f"{where}: {what}: {', '.join(ids)}" for ids, what in said if ids]


def coverage(notebook: nbformat.NotebookNode, catalog: dict[str, tuple[str, str]]) -> Coverage:
    """Which of ``notebook``'s prose cells ``catalog`` (from :func:`read_catalog`) leaves untranslated or stale."""
    cells = prose_cells(notebook)
    found = Coverage(unknown=sorted(set(catalog) - {p.cell_id for p in cells}))
    for p in cells:
        english, translation = catalog.get(p.cell_id, (None, ""))
        if english is None or not translation:
            found.missing.append(p.cell_id)
        elif english != p.text:
            found.stale.append(p.cell_id)
    return found


# A link's target in markdown: [text](target "title"), ![alt](target), [name]: target, and HTML src= / href=.
_LINK_TARGETS = re.compile(
    r"(?P<inline>\]\(\s*<?)(?P<t1>[^)\s>]+)"
    r"|(?P<ref>^[ ]{0,3}\[[^\]]+\]:[ \t]*<?)(?P<t2>[^\s>]+)"
    r"|(?P<html>\b(?:src|href)\s*=\s*[\"'])(?P<t3>[^\"']+)",
    re.MULTILINE,
)
_FENCE = re.compile(r"^[ ]{0,3}(```|~~~)", re.MULTILINE)


def relocate(target: str, kind: str, lang: str, has_twin: Callable[[str], bool]) -> str:
    """A relative link target of a notebook in ``<kind>/``, as seen from its twin in ``<kind>/<lang>/``.

    A notebook of the course that has a ``<lang>`` twin is linked to that twin; anything else (images, docs,
    notebooks not translated yet) to the same file as before. URLs, anchors and absolute paths are kept.

    >>> relocate("../exercises/03_attention.ipynb#top", "notebooks", "zh", lambda path: True)
    '../../exercises/zh/03_attention.ipynb#top'
    >>> relocate("../docs/x.png", "notebooks", "zh", lambda path: True)
    '../../docs/x.png'
    """
    if not target or target.startswith(("#", "/")) or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
        return target
    path, suffix = re.match(r"([^#?]*)(.*)", target).groups()  # suffix: "#anchor" or "?query"
    here = posixpath.normpath(posixpath.join(kind, path))  # the target's path from the repository root
    folder, _, name = here.partition("/")
    if folder in FOLDERS and "/" not in name and name.endswith(".ipynb") and has_twin(here):
        here = f"{folder}/{lang}/{name}"
    return posixpath.relpath(here, f"{kind}/{lang}") + suffix


def rewrite_links(text: str, kind: str, lang: str, has_twin: Callable[[str], bool]) -> str:
    """``text`` (a prose cell of a notebook in ``<kind>/``) with every relative link relocated for ``<kind>/<lang>/``
    (:func:`relocate`); fenced code blocks are left as they are."""

    def relink(m: re.Match) -> str:
        lead, target = next((m[lead], m[target]) for lead, target in (("inline", "t1"), ("ref", "t2"), ("html", "t3"))
                            if m[target] is not None)
        return lead + relocate(target, kind, lang, has_twin)

    # split() alternates text and the fence marks it captured: text, mark, text, mark, ... and a fence opens at
    # every other mark, so text outside fences has an index that is a multiple of 4 (inside: 2, 6, ...).
    pieces = _FENCE.split(text)
    return "".join(_LINK_TARGETS.sub(relink, piece) if index % 4 == 0 else piece for index, piece in enumerate(pieces))


def translate(notebook: nbformat.NotebookNode, catalog: dict[str, tuple[str, str]], kind: str, lang: str,
              has_twin: Callable[[str], bool]) -> nbformat.NotebookNode:
    """The ``lang`` twin of ``notebook`` (a notebook of ``<kind>/``, not modified): each prose cell's translation
    with its links relocated, everything else as it is. A cell without a current translation keeps its English
    text: :func:`coverage` says which, and the strict callers refuse them."""
    twin = copy.deepcopy(notebook)
    for cell in twin.cells:
        if cell.cell_type != "markdown":
            continue
        english, translation = catalog.get(cell.id, (None, ""))
        if english == cell.source and translation:
            cell.source = translation
        cell.source = rewrite_links(cell.source, kind, lang, has_twin)
    twin.metadata.setdefault("minigpt2", {})["language"] = lang
    return twin


def exercise_ids(notebook: nbformat.NotebookNode) -> list[str]:
    """The numbers of the exercise headings (``### Exercise 03.1 — …``, ``### 练习 03.1 — …``), in order."""
    from minigpt2.grading.generator import HEADING

    return [m["id"] for cell in notebook.cells if cell.cell_type == "markdown" for m in HEADING.finditer(cell.source)]


def expected_twins(root: str | Path, lang: str = "zh", partial: bool = False) -> tuple[dict[str, str], list[str]]:
    """What ``minigpt2 translate`` writes: the text of every twin notebook the catalogs give, by its path from
    ``root`` (``notebooks/zh/03_attention.ipynb``, and ``exercises/zh/…`` for each solutions catalog), and the
    problems with the catalogs. Strict (not ``partial``), any problem raises :class:`TranslationError`."""
    from minigpt2.grading.generator import make_exercises, render

    root = Path(root)
    present = catalogs(root, lang)
    twins = {f"{kind}/{name}" for kind, name in present} | {f"exercises/{name}" for kind, name in present
                                                             if kind == "solutions"}
    texts: dict[str, str] = {}
    problems: list[str] = []
    for kind, name in present:
        source = root / kind / name
        if not source.is_file():
            problems.append(f"{catalog_path(root, kind, name, lang).relative_to(root)}: there is no {kind}/{name}")
            continue
        english = read_notebook(source)
        catalog = read_catalog(catalog_path(root, kind, name, lang))
        problems += coverage(english, catalog).problems(f"{kind}/{name}")
        twin = translate(english, catalog, kind, lang, twins.__contains__)
        if exercise_ids(twin) != exercise_ids(english):
            problems.append(f"{kind}/{name}: the translation's exercise headings number "
                            f"{', '.join(exercise_ids(twin))}, the English ones {', '.join(exercise_ids(english))}")
        texts[f"{kind}/{lang}/{name}"] = render(twin)
        if kind == "solutions":
            texts[f"exercises/{lang}/{name}"] = render(make_exercises(twin, name=f"solutions/{lang}/{name}"))
    if problems and not partial:
        raise TranslationError("\n".join(problems))
    return dict(sorted(texts.items())), problems


def _present_twins(root: Path, lang: str) -> list[str]:
    return [f"{folder}/{lang}/{path.name}" for folder in FOLDERS
            for path in sorted((root / folder / lang).glob("*.ipynb"))]


def out_of_date(root: str | Path, lang: str = "zh") -> list[str]:
    """How the twin notebooks in the repository differ from what the catalogs give (strict: a catalog problem
    raises :class:`TranslationError`)."""
    root = Path(root)
    expected, _ = expected_twins(root, lang)
    problems = []
    for path, text in expected.items():
        if not (root / path).is_file():
            problems.append(f"{path} is missing")
        elif (root / path).read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from what its English notebook and catalog give")
    problems += [f"{path} has no catalog" for path in _present_twins(root, lang) if path not in expected]
    return problems


def write_twins(root: str | Path, lang: str = "zh", partial: bool = False) -> tuple[list[str], list[str], list[str]]:
    """Write every twin notebook the catalogs give and remove those no catalog gives any more.
    Returns (paths written, paths removed, catalog problems left as English under ``partial``)."""
    root = Path(root)
    expected, problems = expected_twins(root, lang, partial)
    written = []
    for path, text in expected.items():
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(path)
    removed = [path for path in _present_twins(root, lang) if path not in expected]
    for path in removed:
        (root / path).unlink()
    return written, removed, problems


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
