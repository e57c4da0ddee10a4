"""Driving JupyterLab the way a learner does: open a notebook, run its cells from the Run menu,
use a widget's selectors and text box, look at the heatmap it draws.

Playwright is imported by conftest.py (which skips when it is missing); this module only
takes its Page and Locator objects.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRACEBACK = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"^\w*(Error|Exception|Interrupt)\b", re.MULTILINE)  # SyntaxError: …, KeyboardInterrupt

# The current notebook panel, and the parts of it the tests read.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
KERNEL_STATUS = f"{PANEL} .jp-Notebook-ExecutionIndicator"
KERNEL_NAME = f"{PANEL} .jp-Toolbar-kernelName"


def menu(page, top: str, command: str, timeout_ms: float = 30_000) -> None:
    """Choose a command from JupyterLab's menu bar: the ``top`` menu, then the item for ``command``."""
    page.locator("#jp-MainMenu").get_by_role("menuitem", name=top, exact=True).click(timeout=timeout_ms)
    page.click(f'li[data-command="{command}"]', timeout=timeout_ms)


# Every picture's (src, base64 PNG), or null for one still decoding.
READ_PICTURES = """imgs => Promise.all(imgs.map(async img => {
    try { await img.decode(); } catch { return null; }  // replaced while decoding: read it again
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let s = ''; for (const b of bytes) s += String.fromCharCode(b);
    return [img.src, btoa(s)];
}))"""


class Notebook:
    """One notebook open in JupyterLab's main area."""

    def __init__(self, page, name: str, artifacts: Path, language: str = "en"):
        self.page = page
        self.name = name
        self.artifacts = artifacts
        self.language = language  # the notebook's (metadata.minigpt2.language): its widgets and checks speak it
        self._shots = 0

    def word(self, message: str) -> str:
        """One of the package's messages as this notebook shows it (a widget's label, a check's line)."""
        from minigpt2.i18n.messages import translations

        return translations(self.language).gettext(message)

    # ------------------------------------------------------------------ the kernel and running cells

    def wait_for_kernel_idle(self, timeout_s: float = 90) -> None:
        """Wait until the notebook has a kernel and it is idle. If JupyterLab asks which kernel
        to start (it does when the notebook opens before the kernel list arrives), answer
        with its proposal, the notebook's own kernel, as a learner would."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.page.wait_for_function(
                """([name, status]) => {
                    if (document.querySelector('.jp-Dialog .jp-Dialog-button.jp-mod-accept')) return 'asked';
                    const kernel = document.querySelector(name), indicator = document.querySelector(status);
                    const started = kernel && kernel.getAttribute('aria-label') !== 'No Kernel';
                    return started && indicator && indicator.dataset.status === 'idle' && 'idle';
                }""",
                arg=[KERNEL_NAME, KERNEL_STATUS], timeout=max(deadline - time.monotonic(), 1) * 1000, polling=200,
            ).json_value()
            if state == "idle":
                return
            self.page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")

    def run_all(self, timeout_s: float = 300) -> None:
        """Run > Run All Cells, then wait until no cell is queued or running.
        Fails with the notebook's first traceback, or names the cells that never ran."""
        self.wait_for_kernel_idle()
        menu(self.page, "Run", "runmenu:run-all")
        self.wait_until_done(timeout_s)
        failures = self.tracebacks()
        assert not failures, f"{self.name}: a cell raised an error when run in JupyterLab:\n{failures[0]}"
        not_run = self.page.eval_on_selector_all(
            f"{PANEL} .jp-CodeCell .jp-InputArea-prompt", "ps => ps.map((p, i) => [i, p.textContent.trim()])")
        unexecuted = [i for i, prompt in not_run if not re.fullmatch(r"\[\d+\]:", prompt)]
        assert not unexecuted, f"{self.name}: code cells {unexecuted} did not run (prompts: {not_run})"

    def wait_until_done(self, timeout_s: float) -> None:
        """Wait until no code cell shows [*] and the kernel is idle."""
        self.page.wait_for_function(
            """([panel, status]) => {
                const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputArea-prompt')];
                const busy = prompts.some(p => p.textContent.includes('*'));
                const indicator = document.querySelector(status);
                return !busy && indicator && indicator.dataset.status === 'idle';
            }""",
            arg=[PANEL, KERNEL_STATUS], timeout=timeout_s * 1000, polling=250)

    def tracebacks(self) -> list[str]:
        """The text of every traceback shown in the notebook's outputs."""
        texts = self.page.locator(f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        return [t for t in texts.all_inner_texts() if TRACEBACK in t or ERROR_LINE.search(t)]

    def run_cells_through(self, last: int, timeout_s: float = 60) -> None:
        """Select the first cell and press Shift+Enter until cell ``last`` has run, as a learner does."""
        self.wait_for_kernel_idle()
        self.cells().first.locator(".jp-InputPrompt").click()  # selects the cell, in command mode
        for _ in range(last + 1):
            self.page.keyboard.press("Shift+Enter")
            self.wait_until_done(timeout_s)

    def cells(self):
        return self.page.locator(f"{PANEL} .jp-Notebook .jp-Cell")

    def cell_sources(self) -> list[str]:
        return self.cells().evaluate_all(
            "cells => cells.map(c => [...c.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n'))")

    def output_text(self, index: int) -> str:
        return self.cells().nth(index).locator(".jp-OutputArea").inner_text()

    def output_mime_types(self, index: int) -> list[str]:
        return self.cells().nth(index).locator(".jp-OutputArea-output").evaluate_all(
            "outputs => outputs.map(o => o.dataset.mimeType)")

    # ------------------------------------------------------------------ widgets and pictures

    def attention_widgets(self, timeout_s: float = 30) -> list["AttentionWidgetView"]:
        """Every attention widget shown in the outputs (a box holding selectors and an image), in order."""
        boxes = self.page.locator(f"{PANEL} .jp-OutputArea-output > .widget-vbox").filter(
            has=self.page.locator("img.widget-image"))
        boxes.first.wait_for(timeout=timeout_s * 1000)
        return [AttentionWidgetView(self, boxes.nth(i)) for i in range(boxes.count())]

    def screenshot(self, step: str, element=None, pictures: list["Picture"] = ()) -> Path:
        """Save a screenshot of ``element`` (default: the page) as the next numbered artefact,
        and beside it the widget's ``pictures`` as the PNGs the browser received (whole, unscaled)."""
        self._shots += 1
        stem = f"{self._shots:02d}_{re.sub(r'[^a-z0-9]+', '_', step.lower()).strip('_')}"
        path = self.artifacts / f"{stem}.png"
        (element or self.page).screenshot(path=str(path))
        for number, picture in enumerate(pictures, start=1):
            (self.artifacts / f"{stem}.picture{number}.png").write_bytes(picture.png)
        return path


@dataclass
class Picture:
    """What an <img> shows: its blob URL and the PNG bytes behind it."""

    src: str
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")


# The widgets' messages (minigpt2.viz) that name the layer or head shown.
STATUS_NAMING = ("layer {layer}", "layer {layer}, head {head}", " · bars: head {head}")


class AttentionWidgetView:
    """An AttentionWidget / AttentionExplorer as the browser shows it."""

    def __init__(self, notebook: Notebook, root):
        self.notebook = notebook
        self.page = notebook.page
        self.root = root

    def dropdown(self, name: str):
        """The selector labelled ``name`` ("layer", "head", "token": the English label, shown in the notebook's
        language)."""
        label = self.page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(self.notebook.word(name))}$"))
        return self.root.locator(".widget-dropdown").filter(has=label).locator("select")

    def options(self, name: str) -> list[str]:
        """The option labels (ipywidgets shows their spaces as no-break spaces; here they are spaces again)."""
        labels = self.dropdown(name).locator("option").evaluate_all("options => options.map(o => o.textContent)")
        return [label.replace("\xa0", " ") for label in labels]

    @property
    def text_box(self):
        return self.root.locator(".widget-textarea textarea")

    @property
    def images(self):
        """The widget's pictures: the heatmap first (the explorer adds its bar charts)."""
        return self.root.locator("img.widget-image")

    @property
    def heatmap(self):
        return self.images.first

    @property
    def message(self) -> str:
        return self.root.locator(".widget-html-content").first.inner_text()

    def pictures(self, timeout_s: float = 30) -> list[Picture]:
        """Every picture's PNG, read back from the browser once each has loaded and decoded."""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = self.heatmap.is_visible() and self.images.evaluate_all(READ_PICTURES)
            if shown and None not in shown:
                return [Picture(src, base64.b64decode(data)) for src, data in shown]
            if time.monotonic() > deadline:
                raise AssertionError(f"the widget shows no heatmap; its message: {self.message!r}")
            time.sleep(0.2)

    def select(self, name: str, value) -> None:
        self.dropdown(name).select_option(label=str(value))

    def type_text(self, text: str) -> None:
        """Type into the text box and leave it, which is when the widget reads it."""
        self.text_box.fill(text)
        self.text_box.blur()

    def wait_for_new_pictures(self, before: list[Picture], what: str, timeout_s: float = 30) -> list[Picture]:
        """Every picture after ``what`` was done; fails with "image did not change" if one stays the same."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.pictures()
            if len(now) != len(before):
                raise AssertionError(f"after {what} the widget shows {len(now)} pictures instead of {len(before)}; "
                                     f"its message: {self.message!r}")
            same = [i for i, (a, b) in enumerate(zip(before, now)) if a.src == b.src or a.png == b.png]
            if not same:
                return now
            if time.monotonic() > deadline:
                which = "the heatmap" if same[0] == 0 else f"picture {same[0] + 1} of {len(now)}"
                raise AssertionError(f"image did not change within {timeout_s:g} s after {what}: {which} "
                                     "stayed the same")
            time.sleep(0.2)

    def wait_for_options(self, name: str, expected: list[str], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while (options := self.options(name)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"the {name} selector lists {options}, not {expected}")
            time.sleep(0.2)

    def selected(self, name: str) -> str:
        return self.dropdown(name).evaluate("select => select.selectedOptions[0].textContent")

    def status_start(self, n_tokens: int | None = None) -> str:
        """A pattern for the start of the widget's message: "12 tokens · " (any number when ``n_tokens`` is None)."""
        start = self.notebook.word("{n} tokens · {where}").split("{where}")[0]
        return "^" + re.escape(start).replace(re.escape("{n}"), r"\d+" if n_tokens is None else str(n_tokens))

    def status_naming(self, control: str, value: str) -> str:
        """A pattern for the widget's message naming ``control`` ("layer" or "head") as ``value``, in the notebook's
        language: the widgets' messages that name one ("layer 1, head 2", the explorer's " · bars: head 2")."""
        patterns = []
        for template in STATUS_NAMING:
            shown = re.escape(self.notebook.word(template))
            placeholder = re.escape("{" + control + "}")
            if placeholder in shown:
                shown = shown.replace(placeholder, re.escape(value))
                # the other placeholders: any number
                patterns.append(re.sub(r"\\\{\w+\\\}", r"\\d+", shown) + r"(?!\d)")
        return "|".join(patterns)

    def wait_for_message(self, pattern: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while not re.search(pattern, message := self.message):
            if time.monotonic() > deadline:
                raise AssertionError(f"the widget's message {message!r} never matched {pattern!r}")
            time.sleep(0.2)
        return message


def is_png(picture: Picture) -> bool:
    return picture.png.startswith(PNG_SIGNATURE)
