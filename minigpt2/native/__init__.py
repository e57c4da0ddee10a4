"""Native CPU kernels, compiled on first use with the machine's C compiler.

PyTorch's kernels are fast where the work is a big matrix product; for some element-wise
functions they leave speed on the table. One such is GPT-2's tanh GELU: on the 2-core machine
of ``benchmarks/RESULTS.md``, ``F.gelu(x, approximate="tanh")`` runs at a fifth of the speed of
``torch.tanh`` on the same tensor, and it was a sixth of a CPU training step. ``gelu.c`` is a
plain loop that the compiler vectorises (:mod:`minigpt2.native.gelu` uses it).

(A one-row matrix product for generation was tried too and left out: through all of GPT-2
small's weights it read them no faster than ``F.linear``, see ``benchmarks/bench_kernels.py``.)

The library is built once per machine, into ``~/.cache/minigpt2/native`` (or
``$MINIGPT2_NATIVE_CACHE``), under a name made from the source, the compiler flags and the CPU's
features, so a changed source or another machine gets a fresh build. ``MINIGPT2_NATIVE=0``
turns the native kernels off. Without a compiler, or if the build fails, :func:`library`
returns None and the callers use PyTorch's kernels, which give the same results to float32
rounding; :func:`status` says which it is (``minigpt2 doctor`` prints it).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from minigpt2.datafiles import cache_dir, replacing

SOURCES = [Path(__file__).with_name("gelu.c")]
# -fopenmp: the loops are shared among PyTorch's threads (torch.set_num_threads), through the
# OpenMP runtime PyTorch has already loaded; -march=native: the machine's widest vectors.
COMPILE_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-fPIC"]
LINK_FLAGS = ["-shared", "-fopenmp", "-lm"]  # -lm brings libmvec, glibc's vector maths, with it


def _cpu_features() -> str:
    """The CPU's feature flags (Linux), else the processor's name: -march=native depends on them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _openmp_runtimes() -> list[str]:
    """The OpenMP runtimes mapped into this process (Linux; elsewhere an empty list). The kernels
    run their loops on the runtime they were linked with, which must be PyTorch's own."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in maps if "/" in line}
    return sorted(p for p in paths if any(name in Path(p).name for name in ("libgomp", "libiomp", "libomp")))


def _cache_dirs() -> list[Path]:
    """Where the library may be kept, in order: ``$MINIGPT2_NATIVE_CACHE``, else the user cache
    the data files use, then (a read-only home) a folder of the temporary directory."""
    if os.environ.get("MINIGPT2_NATIVE_CACHE"):
        return [Path(os.environ["MINIGPT2_NATIVE_CACHE"])]
    user = getattr(os, "getuid", lambda: "user")()
    return [cache_dir() / "native", Path(tempfile.gettempdir()) / f"minigpt2-{user}" / "native"]


def _build(compiler: str, target: Path) -> None:
    """Compile SOURCES into the shared library ``target``, written atomically: a concurrent
    build (two test workers) or an interrupted one never leaves a half-written file there."""
    with replacing(target) as built:
        objects = []
        for source in SOURCES:
            obj = built.parent / f"{source.stem}.o"
            subprocess.run([compiler, *COMPILE_FLAGS, "-c", str(source), "-o", str(obj)],
                           check=True, capture_output=True, text=True, timeout=120)
            objects.append(str(obj))
        # Linked without -ffast-math, so no crtfastmath: loading the library changes no floating-point mode.
        subprocess.run([compiler, *objects, "-o", str(built), *LINK_FLAGS],
                       check=True, capture_output=True, text=True, timeout=120)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("MINIGPT2_NATIVE", "1") == "0":
        return None, "off (MINIGPT2_NATIVE=0): PyTorch's kernels are used"
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc) found: PyTorch's kernels are used"
    key = hashlib.sha256()
    for part in [*(s.read_bytes() for s in SOURCES), " ".join([compiler, *COMPILE_FLAGS, *LINK_FLAGS]).encode(),
                 _cpu_features().encode()]:
        key.update(part)
    name = f"minigpt2_native_{key.hexdigest()[:16]}.so"
    problems = []
    for folder in _cache_dirs():
        target = folder / name
        try:
            if not target.exists():
                _build(compiler, target)
            lib = ctypes.CDLL(str(target))
            break
        except subprocess.CalledProcessError as e:
            last = (e.stderr or "").strip().splitlines()[-1:] or ["no message"]
            return None, f"the build failed ({last[0]}): PyTorch's kernels are used"
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append(f"{target}: {e}")
    else:
        return None, f"could not build or load the library ({'; '.join(problems)}): PyTorch's kernels are used"
    runtimes = _openmp_runtimes()
    if len(runtimes) > 1:  # two thread pools would fight over the cores: keep PyTorch's alone
        return None, f"it would bring a second OpenMP runtime ({', '.join(runtimes)}): PyTorch's kernels are used"
    pointer, length = ctypes.c_void_p, ctypes.c_long
    signatures = {
        "gelu_tanh_forward": [pointer] * 2 + [length],
        "gelu_tanh_backward": [pointer] * 3 + [length],
        "gelu_tanh_forward_bf16": [pointer] * 2 + [length],
        "gelu_tanh_backward_bf16": [pointer] * 3 + [length],
    }
    for name, argtypes in signatures.items():
        getattr(lib, name).argtypes = argtypes
        getattr(lib, name).restype = None
    return lib, f"built ({target})"


def library() -> ctypes.CDLL | None:
    """The native library, built on the first call; None when it cannot be had (see :func:`status`)."""
    return _load()[0]


def status() -> str:
    """One line: whether the native kernels are in use, and if not, why."""
    return _load()[1]


__all__ = ["library", "status"]
