"""How a run shows its progress: a tqdm bar on a terminal or in a notebook, plain lines elsewhere.

A bar redraws itself with carriage returns, which turns a log file or a pipe into one
endless line. So when the output is not a terminal, the run prints a line of text about
every tenth of the way instead: step x of N, the time spent, the time left, the last losses.
"""

from __future__ import annotations

import sys
import time


def progress_bar(total: int, initial: int = 0, enabled: bool = True):
    """Something with tqdm's ``update(n)``, ``set_postfix_str(s, refresh)`` and ``close()``."""
    from tqdm.auto import tqdm

    if not enabled:
        return tqdm(total=total, initial=initial, disable=True)
    if in_notebook() or _isatty(sys.stderr):  # where tqdm draws its bar
        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
    return PlainProgress(total, initial)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class PlainProgress:
    """Progress as whole lines on stdout, about ``lines`` of them over the run, and one at the end."""

    def __init__(self, total: int, initial: int = 0, lines: int = 10, stream=None):
        self.total, self.n, self.initial = total, initial, initial
        self.every = max(1, -(-total // lines))  # steps between lines, rounded up
        self.next = (initial // self.every + 1) * self.every
        self.stream = stream
        self.postfix = ""
        self.start = time.perf_counter()
        self.printed_at = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self.next or self.n >= self.total:
            self._print()
            self.next = (self.n // self.every + 1) * self.every

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if self.printed_at != self.n and self.n > self.initial:
            self._print()

    def _print(self) -> None:
        elapsed = time.perf_counter() - self.start
        done = self.n - self.initial
        left = elapsed / done * (self.total - self.n) if done else float("nan")
        line = (f"step {self.n}/{self.total} ({self.n / max(self.total, 1):.0%}), "
                f"{duration(elapsed)} elapsed, {duration(left)} left")
        print(line + (f" · {self.postfix}" if self.postfix else ""), file=self.stream or sys.stdout, flush=True)
        self.printed_at = self.n


def duration(seconds: float) -> str:
    """``75.4`` -> ``'1:15'``, ``3725`` -> ``'1:02:05'`` (``'?'`` when unknown)."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = ["progress_bar", "PlainProgress", "in_notebook", "duration"]
