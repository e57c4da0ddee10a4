"""The learner's kernel, seen from the grader: start it, run the learner's cells, ask it to call
things, and end it when a time limit passes.

A time limit is enforced by killing the kernel, never by interrupting it, so that no
``except BaseException`` (or handler of ``KeyboardInterrupt``) in learner code can outlast it;
the next request starts a fresh kernel and re-runs the learner's cells, leaving out the cells
that hung or ended the kernel before. The kernel's address space is capped
(:func:`minigpt2.grading.agent.limit_memory`), so a memory bomb is a ``MemoryError`` there.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import queue
import shutil
import subprocess
import tempfile
import time
from typing import Any

import torch

from minigpt2.grading import wire
from minigpt2.i18n.messages import LANG_ENV, SESSION_ENV, _

MAX_ANSWER_BYTES = 512 * 1024 * 1024
SETUP_TIMEOUT = 120  # seconds for the grader's own set-up in a fresh kernel (a cold `import torch` on a loaded machine)
DEFAULT_MEMORY_LIMIT = 4 * 1024**3  # bytes the learner's code may add to the kernel's address space


class KernelUnavailable(Exception):
    """The kernel could not be started at all (a broken environment, not the learner's doing)."""


class _Pickler(pickle.Pickler):
    """Pickles the grader's inputs for the kernel, keeping each tensor's ``.grad`` (plain pickle drops it)."""

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and obj.grad is not None:
            from minigpt2.grading import agent

            return agent.rebuild_with_grad, (isinstance(obj, torch.nn.Parameter), obj.detach().clone(),
                                             obj.requires_grad, obj.grad.detach().clone())
        return NotImplemented


def _first_line(source: str) -> str:
    lines = source.strip().splitlines()
    return lines[0][:60] if lines else ""


def is_check_cell(source: str) -> bool:
    """A cell holding only ``check("NN.K", name)`` calls: instant feedback, not needed to grade."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)
        and s.value.func.id == "check" for s in tree.body
    )


class KernelSession:
    """One learner notebook's kernel; ``cells`` are (index in the notebook, source) of its code cells."""

    def __init__(self, cells: list[tuple[int, str]], cwd: str, lesson: str, cell_timeout: float,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT, language: str = "en"):
        self.cells = [(i, s) for i, s in cells if s.strip() and not is_check_cell(s)]
        self.cwd, self.lesson, self.cell_timeout, self.memory_limit = cwd, lesson, cell_timeout, memory_limit
        self.language = language  # the grader's language ("en", "zh"), handed to the kernel
        self.notes: dict[int | str, str] = {}
        self.skip: set[int] = set()
        self.km = self.kc = self.context = None
        self.fresh = False
        self.dir = tempfile.mkdtemp(prefix="minigpt2-grade-")
        self.counter = 0

    # ------------------------------------------------------------------ kernel life

    def launch(self) -> None:
        """Start a fresh kernel process without waiting for it (the grader prepares its checks meanwhile)."""
        import zmq
        from jupyter_client import KernelManager

        self._kill()
        self.context = zmq.Context()  # its own, destroyed with the kernel: no socket outlives a killed kernel
        self.km = KernelManager(kernel_name="python3", context=self.context)
        try:
            # the kernel speaks the grader's language, not that of a notebook a Jupyter server named to this process
            env = {**{k: v for k, v in os.environ.items() if k != SESSION_ENV}, LANG_ENV: self.language}
            self.km.start_kernel(cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            self.kc = self.km.client(context=self.context)
            self.kc.start_channels(hb=False)  # no heartbeat thread: the grader polls the process itself
        except Exception as err:
            self._kill()
            raise KernelUnavailable(_("the notebook's kernel could not be started ({type}: {err})").format(
                type=type(err).__name__, err=err)) from None
        self.fresh = True

    def _start(self) -> None:
        if self.km is None or not self.fresh:
            self.launch()
        self.fresh = False
        try:
            self.kc.wait_for_ready(timeout=SETUP_TIMEOUT)
        except Exception as err:
            self._kill()
            raise KernelUnavailable(_("the notebook's kernel could not be started ({type}: {err})").format(
                type=type(err).__name__, err=err)) from None
        setup = (
            "import minigpt2.grading.agent as _minigpt2_agent\n"
            f"import minigpt2.grading.lesson{self.lesson}\n"
            f"_minigpt2_agent.limit_memory({int(self.memory_limit)})\n"
            "del _minigpt2_agent\n"
        )
        status, info = self._execute(setup, SETUP_TIMEOUT)
        if status != "ok":
            self._kill()
            raise KernelUnavailable(_("the grader could not prepare the kernel: {status} {info}").format(
                status=status, info=info or "").strip())

    def _kill(self) -> None:
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:
                pass
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass
        if self.context is not None:
            self.context.destroy(linger=0)
        self.km = self.kc = self.context = None

    def alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def boot(self) -> None:
        """A fresh kernel with the learner's cells run; a cell that hangs or ends the kernel becomes a
        note and is left out from then on."""
        while True:
            self._start()
            for index, source in self.cells:
                if index in self.skip:
                    continue
                status, info = self._execute(source, self.cell_timeout, store_history=True)
                what = _("cell {index} (`{line}`)").format(index=index, line=_first_line(source))
                if status == "error" and index not in self.notes:
                    self.notes[index] = _("{what} raised {type}: {message}").format(what=what, type=info[0],
                                                                                 message=info[1])
                if status in ("timeout", "died"):
                    self.notes[index] = (
                        _("{what} ran for more than {seconds:g} s and was stopped: an infinite loop? The grader left "
                          "it out and ran the rest.").format(what=what, seconds=self.cell_timeout)
                        if status == "timeout" else
                        _("{what} ended the kernel (sys.exit / exit() / os._exit / a kill, or it used more memory than "
                          "the grader allows); the grader left it out and ran the rest.").format(what=what)
                    )
                    self.skip.add(index)
                    break
            else:
                return

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ one request

    def _execute(self, code: str, timeout: float, store_history: bool = False) -> tuple[str, Any]:
        """Run ``code``: ("ok", None), ("error", (ename, evalue)), ("timeout", None) — the kernel is then
        killed — or ("died", None)."""
        try:
            msg_id = self.kc.execute(code, store_history=store_history, allow_stdin=False)
        except Exception:
            self._kill()
            return "died", None
        deadline = time.monotonic() + timeout
        error = None
        while True:
            if time.monotonic() > deadline:
                self._kill()
                return "timeout", None
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                if not self.alive():
                    self._kill()
                    return "died", None
                continue
            except Exception:  # the kernel's messages no longer parse (learner code broke its json, say)
                self._kill()
                return "died", None
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error" and error is None:
                error = (content.get("ename"), content.get("evalue"))
            elif kind == "status" and content.get("execution_state") == "idle":
                if not self.alive():
                    self._kill()
                    return "died", None
                return ("error", error) if error else ("ok", None)

    def names(self, names: list[str]) -> dict:
        """{name: {"defined", "callable", "type"}} in the learner's namespace."""
        answer = self._request(json.dumps(names).encode(), ".names", self.cell_timeout)
        return answer.get("value") or {}

    def call(self, fn, args: tuple, kwargs: dict, *, time_limit_s: float, forbid: tuple[str, ...]) -> dict:
        """Call ``fn`` (a :class:`Learner`, or a package function) in the kernel; the outcome as plain data."""
        limit = min(float(time_limit_s), float(self.cell_timeout))
        buffer = io.BytesIO()
        pickle.dump(tuple(forbid), buffer)
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"target": fn, "args": tuple(args),
                                                                 "kwargs": dict(kwargs)})
        answer = self._request(buffer.getvalue(), ".pkl", limit)
        answer["time_limit_s"] = limit
        if "value" in answer:
            for key, value in answer.get("changed", {}).items():  # the learner changed a tensor argument in place
                original = args[int(key)] if key.isdigit() else kwargs.get(key)
                if isinstance(original, torch.Tensor):
                    with torch.no_grad():
                        if value.shape != original.shape:
                            original.data = value.to(original.dtype)
                        else:
                            original.copy_(value)
        return answer

    def _request(self, payload: bytes, suffix: str, timeout: float) -> dict:
        if not self.alive():
            self.boot()
        self.counter += 1
        request = os.path.join(self.dir, f"request-{self.counter}{suffix}")
        response = os.path.join(self.dir, f"answer-{self.counter}.json")
        with open(request, "wb") as f:
            f.write(payload)
        code = f"__import__('minigpt2.grading.agent', fromlist=['serve']).serve(globals(), {request!r}, {response!r})"
        status, info = self._execute(code, timeout)
        if status == "timeout":
            return {"kind": "timed out"}
        if status == "died":
            return {"kind": "died", "message": _("the kernel died while it ran")}
        try:
            if os.path.getsize(response) > MAX_ANSWER_BYTES:
                return {"kind": "raised", "type": "ValueError",
                        "message": _("it returned more data than the grader reads")}
            with open(response, encoding="utf-8") as f:
                answer = json.load(f)
        except (OSError, ValueError):
            detail = f" ({info[0]}: {info[1]})" if status == "error" and info else ""
            return {"kind": "raised", "type": _("an error"), "message": _("the kernel gave no answer{detail}").format(
                detail=detail)}
        finally:
            for path in (request, response):
                if os.path.exists(path):
                    os.remove(path)
        if not isinstance(answer, dict):
            return {"kind": "raised", "type": _("an error"), "message": _("the kernel's answer was not understood")}
        if "value" in answer:
            try:
                answer["value"] = wire.decode(answer["value"])
                answer["changed"] = {str(k): wire.decode(v) for k, v in dict(answer.get("changed") or {}).items()}
            except (ValueError, TypeError, KeyError, RuntimeError) as err:
                return {"kind": "raised", "type": _("an error"),
                        "message": _("its answer could not be read ({err})").format(err=err)}
        return {k: v for k, v in answer.items() if k in ("value", "changed", "kind", "type", "message", "where")}


__all__ = ["KernelSession", "KernelUnavailable", "is_check_cell"]
