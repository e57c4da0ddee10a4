"""``minigpt2 doctor``: is this machine ready for the course? Each line is a check;
anything missing comes with what to do about it."""

from __future__ import annotations

import importlib
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from minigpt2.i18n.messages import _, columns, ngettext


@dataclass
class Finding:
    ok: bool
    what: str
    detail: str
    advice: str = ""


def _python() -> Finding:
    ok = sys.version_info >= (3, 10)
    return Finding(ok, "Python", platform.python_version(), "" if ok else _("the course needs Python 3.10 or newer"))


def _torch() -> list[Finding]:
    try:
        import torch
    except ImportError:
        return [Finding(False, "PyTorch", _("not installed"), _("run `make course` (or `pip install torch==2.13.0`)"))]
    build = f"torch {torch.__version__}"
    build += f", CUDA {torch.version.cuda}" if torch.version.cuda else _(", CPU build")
    findings = [Finding(True, "PyTorch", build)]
    from minigpt2.utils import pick_device

    device = pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        detail = _("cuda: {name}, {gib:.0f} GiB, bf16 {bf16}").format(
            name=props.name, gib=props.total_memory / 2**30,
            bf16=_("yes") if torch.cuda.is_bf16_supported() else _("no"))
    elif device.type == "mps":
        detail = _("mps (Apple GPU)")
    else:
        detail = _("cpu ({threads} threads); lessons run in quick mode on a laptop, training is faster on a "
                   "GPU").format(threads=torch.get_num_threads())
    findings.append(Finding(True, "Device", detail))
    return findings


def _data() -> list[Finding]:
    from minigpt2.datafiles import DATA_DIR_ENV, KNOWN_FILES, DataFileError, locate

    findings = []
    for name, spec in KNOWN_FILES.items():
        try:
            path = locate(name, download=False)
            findings.append(Finding(True, spec.filename, _("found and verified at {path}").format(path=path)))
        except DataFileError as err:
            if err.rejected is not None:
                detail = _("found at {path} but rejected as {problem}").format(path=err.rejected, problem=err.problem)
            elif err.problem == "data dir":
                detail = _("{variable} does not name a folder").format(variable=DATA_DIR_ENV)
            else:
                detail = _("not found locally")
            findings.append(Finding(False, spec.filename, detail, str(err)))
    return findings


def _missing(modules: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` that cannot be imported."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def _widgets() -> Finding:
    missing = _missing(("ipywidgets", "jupyterlab_widgets", "matplotlib", "jupyterlab"))
    if missing:
        return Finding(False, _("Widgets"), _("missing: {modules}").format(modules=", ".join(missing)),
                       _("run `make course` to install them"))

    import ipywidgets

    manager = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    if not (manager / "package.json").is_file():
        return Finding(False, _("Widgets"), _("ipywidgets {version}, but JupyterLab's widget manager is not installed "
                                              "in {prefix}").format(version=ipywidgets.__version__, prefix=sys.prefix),
                       _("reinstall: `pip install --force-reinstall jupyterlab_widgets`"))
    return Finding(True, _("Widgets"), _("ipywidgets {version} with JupyterLab's widget manager (served locally, no "
                                         "CDN)").format(version=ipywidgets.__version__))


def _packages() -> Finding:
    missing = _missing(("tiktoken", "safetensors", "nbclient", "nbformat", "tqdm"))
    if missing:
        return Finding(False, _("Packages"), _("missing: {modules}").format(modules=", ".join(missing)),
                       _("run `make course` to install them"))
    return Finding(True, "Packages", "tiktoken, safetensors, nbclient, nbformat, tqdm")


def _native() -> Finding:
    """Optional: without the native kernels PyTorch's are used, a little slower on a CPU."""
    try:
        from minigpt2 import native
    except ImportError as e:  # torch missing: reported above
        return Finding(True, _("Native kernels"), _("not checked ({reason})").format(reason=e))
    return Finding(True, _("Native kernels"), native.status())


def _precision() -> Finding:
    """What ``minigpt2 train --dtype auto`` will compute in on this machine's CPU (GPUs: bf16 where supported)."""
    try:
        from minigpt2.train.precision import cpu_bf16_flags
    except ImportError as e:  # torch missing: reported above
        return Finding(True, _("Precision"), _("not checked ({reason})").format(reason=e))
    import torch

    flags = cpu_bf16_flags()
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        detail = (_("training on the GPU uses bf16 autocast") if bf16
                  else _("training on the GPU uses float32 (no bf16 on this GPU)"))
    elif flags:
        detail = _("this CPU has {flags}: `minigpt2 train --dtype auto` times each run's model and uses bf16 "
                   "autocast where it is faster (larger models), float32 where not").format(flags=", ".join(flags))
    else:
        detail = _("this CPU has no bf16 matrix instructions (AMX, AVX512-BF16): training on it uses float32")
    return Finding(True, "Precision", detail)


# Font files of CJK fonts, by name: installed, but maybe not yet in matplotlib's font list.
_CJK_FILES = re.compile(r"cjk|wqy|wenquanyi|sourcehan|msyh|yahei|pingfang|simhei|stheiti", re.IGNORECASE)


def _cjk_font() -> Finding:
    """Chinese text in plots needs a font with CJK glyphs (for the Chinese course, MINIGPT2_LANG=zh, a must)."""
    what = _("Chinese font")
    try:
        from minigpt2.utils import cjk_font
    except ImportError as e:  # torch missing: reported above
        return Finding(True, what, _("not checked ({reason})").format(reason=e))
    font = cjk_font()
    if font is not None:
        return Finding(True, what, _("{font}: plots show Chinese text").format(font=font))
    from matplotlib import font_manager, get_cachedir

    from minigpt2.i18n.messages import current_language

    needed = current_language() == "zh"
    unseen = [path for path in font_manager.findSystemFonts() if _CJK_FILES.search(Path(path).name)]
    if unseen:
        return Finding(not needed, what,
                       _("{file} is installed, but matplotlib's list of fonts was made before it").format(
                           file=Path(unseen[0]).name),
                       _("delete {cache} (matplotlib makes it again, with the new font) and restart the notebook's "
                         "kernel").format(cache=Path(get_cachedir()) / "fontlist-*.json"))
    if sys.platform.startswith("linux"):
        advice = _("install one: `sudo apt-get install fonts-noto-cjk` (Debian, Ubuntu), `sudo dnf install "
                   "google-noto-sans-cjk-fonts` (Fedora), then run `minigpt2 doctor` again")
    else:  # macOS has PingFang SC, Windows Microsoft YaHei
        advice = _("this system normally comes with one (PingFang SC on macOS, Microsoft YaHei on Windows): "
                   "reinstall it")
    detail = (_("none found: Chinese text in plots shows as empty boxes") if needed else
              _("none found: Chinese text in plots shows as empty boxes (the English course does not need one)"))
    return Finding(not needed, what, detail, advice)


def diagnose() -> list[Finding]:
    return [_python(), *_torch(), *_data(), _widgets(), _packages(), _native(), _precision(), _cjk_font()]


def run_doctor() -> int:
    findings = diagnose()
    width = max(columns(f.what) for f in findings)
    for f in findings:
        print(f"{'ok ' if f.ok else 'NO '} {f.what}{' ' * (width - columns(f.what))}  {f.detail}")
        if f.advice:  # a problem's remedy, or a suggestion where nothing is wrong for now
            print(f"    {' ' * width}  → {f.advice}")
    bad = [f for f in findings if not f.ok]
    print()
    print(_("All set: `make course` opens the course.") if not bad else ngettext(
        "{n} problem above; fix it and run `minigpt2 doctor` again.",
        "{n} problems above; fix them and run `minigpt2 doctor` again.", len(bad)).format(n=len(bad)))
    return 1 if bad else 0
