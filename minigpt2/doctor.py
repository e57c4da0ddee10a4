"""``minigpt2 doctor``: is this machine ready for the course? Each line is a check;
anything missing comes with what to do about it."""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass


@dataclass
class Finding:
    ok: bool
    what: str
    detail: str
    advice: str = ""


def _python() -> Finding:
    ok = sys.version_info >= (3, 10)
    return Finding(ok, "Python", platform.python_version(), "" if ok else "the course needs Python 3.10 or newer")


def _torch() -> list[Finding]:
    try:
        import torch
    except ImportError:
        return [Finding(False, "PyTorch", "not installed", "run `make course` (or `pip install torch==2.13.0`)")]
    build = f"torch {torch.__version__}"
    build += f", CUDA {torch.version.cuda}" if torch.version.cuda else ", CPU build"
    findings = [Finding(True, "PyTorch", build)]
    from minigpt2.utils import pick_device

    device = pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        detail = (f"cuda: {props.name}, {props.total_memory / 2**30:.0f} GiB, bf16 "
                  f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    elif device.type == "mps":
        detail = "mps (Apple GPU)"
    else:
        detail = (f"cpu ({torch.get_num_threads()} threads); lessons run in quick mode on a laptop, training is "
                  "faster on a GPU")
    findings.append(Finding(True, "Device", detail))
    return findings


def _data() -> list[Finding]:
    from minigpt2.datafiles import DATA_DIR_ENV, KNOWN_FILES, DataFileError, locate

    findings = []
    for name, spec in KNOWN_FILES.items():
        try:
            path = locate(name, download=False)
            findings.append(Finding(True, spec.filename, f"found and verified at {path}"))
        except DataFileError as err:
            if err.rejected is not None:
                detail = f"found at {err.rejected} but rejected as {err.problem}"
            elif err.problem == "data dir":
                detail = f"{DATA_DIR_ENV} does not name a folder"
            else:
                detail = "not found locally"
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
        return Finding(False, "Widgets", f"missing: {', '.join(missing)}", "run `make course` to install them")
    from pathlib import Path

    import ipywidgets

    manager = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    if not (manager / "package.json").is_file():
        return Finding(False, "Widgets", f"ipywidgets {ipywidgets.__version__}, but JupyterLab's widget manager is not "
                       f"installed in {sys.prefix}", "reinstall: `pip install --force-reinstall jupyterlab_widgets`")
    return Finding(True, "Widgets", f"ipywidgets {ipywidgets.__version__} with JupyterLab's widget manager (served "
                                    "locally, no CDN)")


def _packages() -> Finding:
    missing = _missing(("tiktoken", "safetensors", "nbclient", "nbformat", "tqdm"))
    if missing:
        return Finding(False, "Packages", f"missing: {', '.join(missing)}", "run `make course` to install them")
    return Finding(True, "Packages", "tiktoken, safetensors, nbclient, nbformat, tqdm")


def _native() -> Finding:
    """Optional: without the native kernels PyTorch's are used, a little slower on a CPU."""
    try:
        from minigpt2 import native
    except ImportError as e:  # torch missing: reported above
        return Finding(True, "Native kernels", f"not checked ({e})")
    return Finding(True, "Native kernels", native.status())


def _precision() -> Finding:
    """What ``minigpt2 train --dtype auto`` will compute in on this machine's CPU (GPUs: bf16 where supported)."""
    try:
        from minigpt2.train.precision import cpu_bf16_flags
    except ImportError as e:  # torch missing: reported above
        return Finding(True, "Precision", f"not checked ({e})")
    import torch

    flags = cpu_bf16_flags()
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        detail = f"training on the GPU uses {'bf16 autocast' if bf16 else 'float32 (no bf16 on this GPU)'}"
    elif flags:
        detail = (f"this CPU has {', '.join(flags)}: `minigpt2 train --dtype auto` times each run's model and uses "
                  "bf16 autocast where it is faster (larger models), float32 where not")
    else:
        detail = "this CPU has no bf16 matrix instructions (AMX, AVX512-BF16): training on it uses float32"
    return Finding(True, "Precision", detail)


def diagnose() -> list[Finding]:
    return [_python(), *_torch(), *_data(), _widgets(), _packages(), _native(), _precision()]


def run_doctor() -> int:
    findings = diagnose()
    width = max(len(f.what) for f in findings)
    for f in findings:
        print(f"{'ok ' if f.ok else 'NO '} {f.what.ljust(width)}  {f.detail}")
        if not f.ok and f.advice:
            print(f"    {' ' * width}  → {f.advice}")
    bad = [f for f in findings if not f.ok]
    print()
    print("All set: `make course` opens the course." if not bad else f"{len(bad)} problem(s) above; fix them and run "
                                                                     "`minigpt2 doctor` again.")
    return 1 if bad else 0
