"""The grader's errand-runner inside the learner's kernel.

The grader (:mod:`minigpt2.grading.kernel`) never runs learner code itself. It writes a request
(what to call, on which inputs) to a file and asks the kernel to run :func:`serve`, which calls
the learner's object — or a probe of the package that receives it —, watches the calls the
exercise forbids, and writes back only plain data (:mod:`minigpt2.grading.wire`). Nothing the
grader compares against ever reaches this process: the reference answers stay in the grader.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
from typing import Any

import torch

from minigpt2.grading import wire
from minigpt2.grading.core import describe_exception
from minigpt2.grading.forbid import Watch, Watched

_NAMESPACE: dict[str, Any] = {}
_WATCH: list[Watch] = []


def learner_object(name: str) -> Any:
    """Unpickling a :class:`minigpt2.grading.core.Learner` lands here: the learner's object, each call
    of which runs under the request's watch of forbidden calls."""
    obj = _NAMESPACE[name]
    return Watched(obj, _WATCH[-1]) if callable(obj) else obj


def rebuild_with_grad(is_parameter: bool, data: torch.Tensor, requires_grad: bool, grad: torch.Tensor) -> torch.Tensor:
    """A tensor pickled with its ``.grad`` (which pickle alone drops)."""
    if is_parameter:
        tensor = torch.nn.Parameter(data, requires_grad=requires_grad)
    else:
        tensor = data.requires_grad_(requires_grad)
    tensor.grad = grad
    return tensor


def limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at what it uses now plus ``extra_bytes`` (soft and hard
    limit, so learner code cannot raise it again): a memory bomb becomes a MemoryError."""
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    cap = kib * 1024 + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def describe(namespace: dict, names: list[str]) -> dict:
    """For each name: whether the notebook defines it, and whether it can be called."""
    return {
        name: {"defined": name in namespace, "callable": callable(namespace.get(name)),
               "type": str(type(namespace.get(name)).__name__)}
        for name in names
    }


def _tensor_arguments(args: tuple, kwargs: dict) -> dict[str, torch.Tensor]:
    pairs = [(str(i), a) for i, a in enumerate(args)] + [(k, v) for k, v in kwargs.items()]
    return {key: value for key, value in pairs if type(value) is torch.Tensor or type(value) is torch.nn.Parameter}


def _run(request: dict) -> dict:
    fn, args, kwargs = request["target"], request["args"], request["kwargs"]
    if not callable(fn):
        return {"kind": "not callable", "type": str(type(fn).__name__)}
    tensors = _tensor_arguments(args, kwargs)
    before = {key: t.detach().clone() for key, t in tensors.items()}
    watch = _WATCH[-1]
    try:
        value = fn(*args, **kwargs)  # the learner's object (Watched), or a probe whose Watched argument it is
    except BaseException as err:  # noqa: BLE001 -- whatever the learner's code raises is reported
        return describe_exception(err)
    if watch.hit is not None:
        return {"kind": "forbidden", "message": watch.hit}
    changed = {key: wire.encode(t) for key, t in tensors.items()
               if t.shape != before[key].shape or not torch.equal(t.detach(), before[key])}
    return {"value": wire.encode(value), "changed": changed}


def serve(namespace: dict, request_path: str, response_path: str) -> None:
    """Run the request in ``request_path`` and write the plain answer to ``response_path``."""
    _NAMESPACE.clear()
    _NAMESPACE.update(namespace)
    try:
        if request_path.endswith(".names"):
            with open(request_path, encoding="utf-8") as f:
                answer = {"value": wire.encode(describe(namespace, json.load(f)))}
        else:
            with open(request_path, "rb") as f:
                _WATCH[:] = [Watch(pickle.load(f))]  # the forbidden paths come first, so that the learner's
                request = pickle.load(f)  # objects in the request unpickle already watched
            answer = _run(request)
    except BaseException as err:  # noqa: BLE001 -- e.g. a MemoryError while encoding
        answer = {"kind": "raised", **{k: v for k, v in describe_exception(err).items() if k != "kind"}}
    finally:
        _NAMESPACE.clear()
        _WATCH.clear()
    text = wire.dumps(answer)
    temporary = response_path + ".part"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, response_path)
