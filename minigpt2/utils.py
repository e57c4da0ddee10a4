"""Small helpers every lesson uses: quick mode, the device, seeding, GPT-2's weights or a local model, and plots
that can show Chinese."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from minigpt2.datafiles import env_flag

QUICK_ENV = "MINIGPT2_QUICK"
LOCAL_ENV = "MINIGPT2_LOCAL_MODELS"  # set: the lessons run their local model even where GPT-2's weights are cached


def quick_mode() -> bool:
    """True when ``MINIGPT2_QUICK`` is set (CI sets it): long cells shrink their work."""
    return env_flag(QUICK_ENV)


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else CUDA, then Apple's MPS, then CPU.

    A forced device that is not available raises with what to do instead.
    """
    if prefer is not None and prefer != "auto":
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was asked for, but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}). Use --device cpu, or install a CUDA build of torch."
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("device 'mps' was asked for, but MPS is not available here. Use --device cpu.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's (if present) and torch's generators, on every device."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional for the package itself
        pass
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- GPT-2's weights, or a local model


@dataclass
class ModelChoice:
    """What :func:`pretrained_or_local` picked: the model, whether it is the real checkpoint, and why."""

    model: object
    pretrained: bool
    reason: str
    directory: Path | None = None  # the checkpoint's folder on the real path (transformers can read it too)

    def __str__(self) -> str:
        return self.reason


def cached_checkpoint(name: str = "gpt2") -> Path | None:
    """The directory of hub checkpoint ``name`` in the Hugging Face cache, if both its
    ``config.json`` and ``model.safetensors`` are there; None otherwise (never downloads)."""
    from minigpt2.hf import CONFIG_FILE, HUB_ORGANISATION, WEIGHTS_FILE

    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = [try_to_load_from_cache(f"{HUB_ORGANISATION}/{name}", filename) for filename in (CONFIG_FILE, WEIGHTS_FILE)]
    if all(isinstance(path, str) and Path(path).is_file() for path in found):
        return Path(found[0]).parent
    return None


def pretrained_or_local(local: Callable[[], object] | None, name: str | os.PathLike = "gpt2", *,
                        say: Callable[[str], None] | None = print,
                        local_because: str | None = None) -> ModelChoice:
    """GPT-2's real weights where they can be had, else the model ``local()`` builds.

    ``name`` is a hub name ("gpt2" … "gpt2-xl") or a local directory in Hugging Face's format.
    In this order:

    1. ``name`` is a directory: the checkpoint in it (it needs neither the cache nor the network);
    2. ``local_because`` is given (lesson 11 in quick mode: a reason to run the small model even
       where GPT-2's weights are here), or ``MINIGPT2_LOCAL_MODELS`` is set (the test suite sets it,
       so that the lessons' committed outputs are what it checks on any machine): ``local()``;
    3. the Hugging Face cache (no network);
    4. a download, when downloads are allowed (``MINIGPT2_OFFLINE`` unset);
    5. otherwise, or when the download fails, ``local()``.

    ``local=None`` means there is no local model (``minigpt2 finetune``): the flag of step 2 is
    then ignored, and where step 5 would take ``local()`` a :class:`CheckpointError` says why.
    ``say`` gets one line saying which model runs and why (None: say nothing); the lessons print
    it, so a reader of their outputs knows which one they are looking at.
    """
    from minigpt2.datafiles import offline
    from minigpt2.hf import HUB_NAMES, CheckpointError, download, load_dir

    def fallback(why: str) -> ModelChoice:
        if local is None:
            raise CheckpointError(why)
        return ModelChoice(local(), False, f"{why}; using the small local model instead")

    def real(directory: Path, where: str) -> ModelChoice:
        return ModelChoice(load_dir(directory).eval(), True, f"{name}: GPT-2's real weights, {where}", directory)

    path, name = Path(name), str(name)
    if path.is_dir():
        choice = ModelChoice(load_dir(path).eval(), True, f"the checkpoint in {path}", path)
    elif name not in HUB_NAMES:
        raise CheckpointError(f"{name!r} is neither a directory nor a GPT-2 hub name ({', '.join(HUB_NAMES)})")
    elif local is not None and (local_because or env_flag(LOCAL_ENV)):
        choice = ModelChoice(local(), False, f"{local_because or LOCAL_ENV + '=1'}: using the small local model, "
                                             f"not {name}'s real weights")
    elif (cached := cached_checkpoint(name)) is not None:
        choice = real(cached, f"from the Hugging Face cache ({cached})")
    elif not offline():
        try:
            downloaded = download(name)
        except CheckpointError as err:
            choice = fallback(f"{name} could not be had ({err})")
        else:
            choice = real(downloaded, f"downloaded to {downloaded}")
    else:
        choice = fallback(f"{name}'s weights are not in the Hugging Face cache and downloads are off "
                          "(MINIGPT2_OFFLINE=1)")
    if say is not None:
        say(choice.reason)
    return choice


# Fonts with Chinese glyphs, most wanted first (Debian/Ubuntu's fonts-noto-cjk, Linux's WenQuanYi, Windows, macOS).
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC",
             "Heiti SC", "SimHei")


def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib knows on this machine, or None."""
    from matplotlib import font_manager

    known = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in known), None)


def use_cjk_font() -> str | None:
    """Let plots show Chinese text: matplotlib draws with its usual font and takes each character that font lacks
    from the CJK font (``font.family`` is a fallback list; ``font.sans-serif`` is not, it picks one font). Returns
    the CJK font, or None where there is none (Chinese characters then show as boxes; ``minigpt2 doctor`` says
    how to install one)."""
    import matplotlib

    font = cjk_font()
    if font is not None:
        families = [family for family in matplotlib.rcParams["font.family"] if family not in CJK_FONTS]
        matplotlib.rcParams["font.family"] = [*families, font]
    return font


# The lessons import matplotlib before the package (and minigpt2.viz calls this itself): set the fallback for them,
# without making every other user of these helpers (the trainer, the grader's kernels) import matplotlib.
if "matplotlib" in sys.modules:
    use_cjk_font()
