"""What travels back from the learner's kernel to the grader: plain data only.

The kernel side :func:`encode`\\ s a value into JSON text; the grader side :func:`decode`\\ s it.
Only behaviour-free kinds survive the trip — ``None``, bools, ints, floats, strings, bytes,
tensors (their raw bytes, dtype and shape), and lists, tuples, dicts and sets of these.
Subclasses lose their class on the way (an ``int`` whose ``__eq__`` always says yes arrives as
a plain ``int``, a Tensor subclass as a plain Tensor); anything else arrives as an
:class:`Opaque` stand-in that only knows its type's name and equals nothing but itself.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import torch

from minigpt2.i18n.messages import _

MAX_DEPTH = 20
MAX_ITEMS = 1_000_000


class Opaque:
    """A value the kernel could not hand over as plain data (a generator, a module, …)."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text


def _opaque_class(type_name: str) -> type:
    """A class named like the learner's, so that messages say "it is a generator"."""
    safe = type_name if type_name.isidentifier() else "object"
    return type(safe, (Opaque,), {})


# --------------------------------------------------------------------------- kernel side


def _tensor(t: torch.Tensor) -> dict:
    with torch._C.DisableTorchFunction():  # a subclass's or a mode's __torch_function__ has no say here
        base = torch.Tensor.as_subclass(t, torch.Tensor).detach()
        if base.is_sparse:
            base = base.to_dense()
        base = base.cpu().contiguous()
        raw = base.reshape(-1).view(torch.uint8).numpy().tobytes() if base.numel() else b""
    return {"k": "tensor", "dtype": str(base.dtype).removeprefix("torch."), "shape": list(base.shape),
            "data": base64.b64encode(raw).decode("ascii")}


def _plain(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise ValueError(_("the value is nested too deeply or holds too many items"))
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return {"k": "int", "v": int.__repr__(value)}  # the digits themselves, whatever __int__ or __eq__ say
    if isinstance(value, float):
        number = float(value)
        return {"k": "float", "v": repr(number)} if not math.isfinite(number) else number
    if isinstance(value, str):
        return {"k": "str", "v": str.__str__(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"k": "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, torch.Tensor):
        return _tensor(value)
    if type(value).__module__ == "numpy":
        if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
            return _tensor(torch.from_numpy(value.copy()))
        return _plain(value.item(), depth + 1, budget)
    if isinstance(value, range):
        return [_plain(v, depth + 1, budget) for v in value]
    if isinstance(value, tuple):
        return {"k": "tuple", "v": [_plain(v, depth + 1, budget) for v in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [_plain(v, depth + 1, budget) for v in list.__iter__(value)]
    if isinstance(value, (set, frozenset)):
        return {"k": "set", "v": [_plain(v, depth + 1, budget) for v in value]}
    if isinstance(value, dict):
        return {"k": "dict", "v": [[_plain(k, depth + 1, budget), _plain(v, depth + 1, budget)] for k,
                                   v in dict.items(value)]}
    try:
        text = object.__repr__(value)
    except Exception:
        text = "<object>"
    return {"k": "object", "type": str(type(value).__name__), "v": text[:200]}


def encode(value: Any) -> Any:
    """``value`` as JSON-ready plain data (kernel side)."""
    return _plain(value, 0, [MAX_ITEMS])


def dumps(payload: Any) -> str:
    return json.dumps(payload)


# --------------------------------------------------------------------------- grader side


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(_("unknown dtype {name!r}").format(name=name))
    return dtype


def decode(data: Any) -> Any:
    """The plain value that ``encode`` described (grader side); nothing here runs learner code."""
    if data is None or isinstance(data, (bool, float, str)):
        return data
    if isinstance(data, int):
        return int(data)
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        raise ValueError(_("unexpected {type} in the kernel's answer").format(type=type(data).__name__))
    kind, value = data.get("k"), data.get("v")
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        return str(value)
    if kind == "bytes":
        return base64.b64decode(value)
    if kind == "tuple":
        return tuple(decode(v) for v in value)
    if kind == "set":
        return {decode(v) for v in value}
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value}
    if kind == "tensor":
        dtype, shape = _dtype(data["dtype"]), [int(s) for s in data["shape"]]
        raw = base64.b64decode(data["data"])
        if not raw:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
    if kind == "object":
        return _opaque_class(str(data.get("type")))(str(data.get("type")), str(value))
    raise ValueError(_("unknown kind {kind!r} in the kernel's answer").format(kind=kind))
