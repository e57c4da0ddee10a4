""""Build it yourself": the calls an exercise forbids, seen two ways.

An exercise lists them by dotted path (``@exercise(..., forbid=("torch.softmax", …))``):
PyTorch functions and Tensor methods, and the package's own finished versions (a function,
or a class, meaning its methods), and whole libraries (``"peft.*"``: anything from peft, installed
or not). While the learner's function runs, :class:`Watch` sees
every PyTorch call through a ``TorchFunctionMode`` (functional, method and module forms
alike) and every call of a forbidden Python function (or of code in a forbidden library's folder) through
``sys.setprofile``. Before
that, :func:`scan_source` reads the learner's code in the grader's own process and finds the
forbidden names there (through the notebook's imports and aliases), which learner code cannot
patch.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from torch.overrides import TorchFunctionMode

# Names whose use in a notebook can only mean reaching into the grader's machinery.
TAMPERING = {
    "setprofile", "settrace", "_pop_mode", "_push_mode", "_get_current_function_mode_stack", "DisableTorchFunction",
    "DisableTorchFunctionSubclass", "_disable_torch_function_impl", "TorchFunctionMode", "pre_run_cell",
    "post_run_cell", "_getframe", "f_back", "f_locals", "f_globals",
}
HIDING = {"exec", "eval", "__import__"}  # builtins that run code the source scan cannot read
ALLOWED_GRADING = {"minigpt2.grading", "minigpt2.grading.check"}


def library(path: str) -> str | None:
    """``"peft"`` for ``"peft.*"``: a whole library forbidden (it may not even be installed), else None."""
    return path[:-2] if path.endswith(".*") else None


def library_dir(name: str) -> str | None:
    """The folder a library's code lives in, found without importing it (None where it is absent)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return os.path.join(locations[0], "") if locations else None


def resolve(path: str) -> Any:
    """The object a dotted path names, importing its module (package and library paths only)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(f"cannot resolve {path!r}")


def _loaded(path: str) -> Any:
    """Like :func:`resolve`, but only through modules already imported: never runs new code."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj = module
        for part in parts[cut:]:
            try:
                obj = inspect.getattr_static(obj, part)
            except AttributeError:
                return None
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
        return obj
    return None


def _codes(obj: Any) -> list:
    """The code objects that running ``obj`` (a Python function, or a class's own methods) executes."""
    if inspect.isclass(obj):
        return [c for value in vars(obj).values() for c in _codes(getattr(value, "__func__", value))
                if inspect.isfunction(getattr(value, "__func__", value))]
    obj = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
    return [obj.__code__] if inspect.isfunction(obj) else []


def _is_tensor_method(path: str) -> bool:
    return path.startswith("torch.Tensor.")


# --------------------------------------------------------------------------- while it runs


class _Mode(TorchFunctionMode):
    def __init__(self, watch: "Watch"):
        super().__init__()
        self.watch = watch

    def __torch_function__(self, func, types, args=(), kwargs=None):
        path = self.watch.torch_functions.get(func)
        if path is not None and self.watch.hit is None:
            self.watch.hit = path
        return func(*args, **(kwargs or {}))


class Watch:
    """``with Watch(paths) as watch: …``; afterwards ``watch.hit`` is the first forbidden path called, or None."""

    def __init__(self, paths: Iterable[str]):
        self.hit: str | None = None
        self.torch_functions: dict[Any, str] = {}
        self.codes: dict[Any, str] = {}
        self.folders: dict[str, str] = {}  # a forbidden library's folder -> its path ("peft.*")
        for path in paths:
            if library(path) is not None:
                folder = library_dir(library(path))
                if folder is not None:
                    self.folders[folder] = path
                continue
            obj = resolve(path)
            codes = _codes(obj)
            if codes and not path.startswith("torch."):
                self.codes.update({code: path for code in codes})
            else:
                self.torch_functions[obj] = path
        self._mode = _Mode(self) if self.torch_functions else None
        self._previous_profile = None
        self._depth = 0

    def _profile(self, frame, event, arg):
        if event == "call" and self.hit is None:
            self.hit = self.codes.get(frame.f_code)
            if self.hit is None and self.folders:
                filename = frame.f_code.co_filename
                self.hit = next((path for folder, path in self.folders.items() if filename.startswith(folder)), None)

    def __enter__(self) -> "Watch":
        self._depth += 1
        if self._depth > 1:
            return self
        if self._mode is not None:
            self._mode.__enter__()
        if self.codes or self.folders:
            self._previous_profile = sys.getprofile()
            sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        if self.codes or self.folders:
            sys.setprofile(self._previous_profile)
        if self._mode is not None:
            self._mode.__exit__(*exc)


class Watched:
    """The learner's function handed to a probe: every call of it runs under ``watch`` (the probe's
    own work, such as building a model with the package, is not watched)."""

    def __init__(self, fn, watch: Watch):
        self.fn, self.watch = fn, watch
        self.__name__ = getattr(fn, "__name__", "your code")

    def __call__(self, *args, **kwargs):
        with self.watch:
            return self.fn(*args, **kwargs)

    def also(self, obj) -> "Watched":
        """``obj`` (made by the learner's code: an instance of their class, say) under the same watch."""
        return Watched(obj, self.watch)


def is_probe(fn) -> bool:
    """A function of the grading package that receives the learner's function as its first argument."""
    return inspect.isfunction(fn) and str(fn.__module__).startswith("minigpt2.grading.")


# --------------------------------------------------------------------------- in the source


@dataclass
class Finding:
    what: str  # the forbidden path, or the tampering name
    cell: int  # index of the cell in the notebook
    line: int  # line within that cell


_MAGIC = re.compile(r"^\s*[%!]")


def parse_cells(sources: list[tuple[int, str]]) -> list[tuple[int, ast.Module]]:
    """(cell index, AST) for each code cell that parses (IPython magics blanked out)."""
    trees = []
    for index, source in sources:
        text = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
        try:
            trees.append((index, ast.parse(text)))
        except (SyntaxError, ValueError):
            continue
    return trees


def _aliases(trees) -> dict[str, str]:
    names: dict[str, str] = {}
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def top_level_definitions(trees) -> dict[str, tuple[int, ast.AST]]:
    """name -> (cell index, the last top-level statement that binds it)."""
    found: dict[str, tuple[int, ast.AST]] = {}
    for index, tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[stmt.name] = (index, stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for node in ast.walk(target):
                        if isinstance(node, ast.Name):
                            found[node.id] = (index, stmt)
    return found


def _reachable(name: str, definitions) -> list[tuple[int, ast.AST]]:
    """The definition of ``name`` and of every top-level name it uses, transitively."""
    seen, queue, out = set(), [name], []
    while queue:
        current = queue.pop()
        if current in seen or current not in definitions:
            continue
        seen.add(current)
        index, node = definitions[current]
        out.append((index, node))
        queue.extend(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id != current)
    return out


class _Rules:
    def __init__(self, paths: Iterable[str]):
        self.objects: dict[int, tuple[Any, str]] = {}
        self.methods: dict[str, str] = {}  # Tensor method name -> path
        self.names: dict[str, str] = {}  # last component -> path, for getattr(x, "name")
        self.libraries: dict[str, str] = {}  # "peft" -> "peft.*"
        for path in paths:
            if library(path) is not None:
                self.libraries[library(path)] = path
                continue
            obj = resolve(path)
            self.objects[id(obj)] = (obj, path)
            self.names.setdefault(path.rsplit(".", 1)[-1], path)
            if _is_tensor_method(path):
                self.methods[path.rsplit(".", 1)[-1]] = path

    def match(self, node: ast.AST, aliases: dict[str, str]) -> str | None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in self.names:
                return self.names[node.args[1].value]
        if not isinstance(node, (ast.Attribute, ast.Name)):
            return None
        parts = _dotted(node)
        if parts is None or parts[0] not in aliases:
            if isinstance(node, ast.Attribute) and node.attr in self.methods:
                return self.methods[node.attr]  # a method of some value: x.softmax(-1)
            return None
        full = ".".join([aliases[parts[0]], *parts[1:]])
        if full.split(".")[0] in self.libraries:
            return self.libraries[full.split(".")[0]]
        obj = _loaded(full)
        hit = self.objects.get(id(obj))
        return hit[1] if hit is not None and hit[0] is obj else None


def scan_source(trees, name: str, paths: Iterable[str]) -> Finding | None:
    """The first forbidden call in the code of ``name`` (and the notebook's functions it uses)."""
    paths = list(paths)
    if not paths:
        return None
    rules, aliases = _Rules(paths), _aliases(trees)
    for index, definition in _reachable(name, top_level_definitions(trees)):
        for node in ast.walk(definition):
            path = rules.match(node, aliases)
            if path is not None:
                return Finding(path, index, getattr(node, "lineno", 0))
    return None


def scan_tampering(trees) -> Finding | None:
    """The first place where the notebook reaches into the grader's machinery, or None."""
    aliases = _aliases(trees)
    for index, tree in trees:
        for node in ast.walk(tree):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in TAMPERING or (isinstance(node, ast.Name) and name in HIDING):
                return Finding(name, index, node.lineno)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    f"{node.module}.{a.name}" for a in node.names]
                for module in modules:
                    if module.startswith("minigpt2.grading.") and module not in ALLOWED_GRADING:
                        return Finding(module, index, node.lineno)
            parts = _dotted(node) if isinstance(node, ast.Attribute) else None
            if parts and parts[0] in aliases:
                full = ".".join([aliases[parts[0]], *parts[1:]])
                if full.startswith("minigpt2.grading.") and full not in ALLOWED_GRADING:
                    return Finding(full, index, node.lineno)
    return None
