"""minigpt2: GPT-2 built one piece at a time, with the course that builds it.

The finished pieces live in submodules (``tokenizer``, ``data``, ``attention``,
``layers``, ``model``, ``train``, ``sampling``, ``viz``, ``grading``). ``GPT`` and
``GPTConfig`` are importable from the top level; they load on first use so that
``import minigpt2`` stays quick.
"""

__version__ = "0.1.0"

__all__ = ["GPT", "GPTConfig", "__version__"]


def __getattr__(name):
    if name in ("GPT", "GPTConfig"):
        from minigpt2 import model

        return getattr(model, name)
    raise AttributeError(f"module 'minigpt2' has no attribute {name!r}")
