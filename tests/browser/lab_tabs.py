"""The browser tab the tests share, and what one test does in it.

JupyterLab loads once in the tab (that is most of a page's cost); each test opens its
notebook from the File menu and, when done, closes it with File > Close and Shut Down
Notebook. Every test ends by checking that none of the requests made during it left
this machine. If a test leaves the tab in a state that cannot be closed cleanly, the
next test reloads JupyterLab from scratch.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from lab_server import ROOT, LabServer
from lab_ui import PANEL, Notebook, menu

ARTIFACTS = ROOT / "test-artifacts" / "browser"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CLOSE_TIMEOUT_MS = 30_000


def off_loopback(urls: list[str]) -> list[str]:
    """The requests to a host other than this machine (blob: and data: URLs stay in the page)."""
    return [url for url in urls if urllib.parse.urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urllib.parse.urlsplit(url).hostname not in LOOPBACK]


class LabTab:
    """A browser tab on JupyterLab that records every request it makes and what its console says."""

    def __init__(self, page, server: LabServer | None):
        self.page = page
        self.server = server
        self.urls: list[str] = []
        self.console: list[str] = []
        self.loaded = False  # JupyterLab is up in the tab, with no notebook open
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))

    def open(self, path: str, artifacts: Path, timeout_s: float = 90) -> Notebook:
        """Open ``path`` (relative to the served folder) and wait for its kernel: from the File
        menu when JupyterLab is already up, else by loading JupyterLab on it in a fresh workspace."""
        if self.loaded:
            menu(self.page, "File", "filebrowser:open-path")
            self.page.fill(".jp-Dialog input", path)
            self.page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        else:
            self.page.goto(self.server.url(f"lab/tree/{urllib.parse.quote(path)}?reset"))
        self.loaded = False  # until the notebook is closed again
        self.page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=timeout_s * 1000)
        metadata = json.loads((self.server.root_dir / path).read_text(encoding="utf-8"))["metadata"]
        notebook = Notebook(self.page, Path(path).name, artifacts, metadata.get("minigpt2", {}).get("language", "en"))
        notebook.wait_for_kernel_idle(timeout_s)
        return notebook

    def close_notebooks(self, artifacts: Path) -> None:
        """File > Close and Shut Down Notebook, for every notebook open. On any trouble (a dialog
        left open by a failed test, say) leave it: the next open reloads JupyterLab."""
        try:
            while open_now := self.page.locator(".jp-NotebookPanel").count():
                menu(self.page, "File", "filemenu:close-and-cleanup", timeout_ms=CLOSE_TIMEOUT_MS)
                self.page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept", timeout=CLOSE_TIMEOUT_MS)
                # The panel goes once its kernel has shut down.
                self.page.wait_for_function("n => document.querySelectorAll('.jp-NotebookPanel').length < n",
                                            arg=open_now, timeout=CLOSE_TIMEOUT_MS)
            self.loaded = True
        except Exception as err:  # noqa: BLE001 — any failure here only costs the next test a page load
            self.console.append(f"closing the notebook failed, JupyterLab will be reloaded: {err}")
            self.page.screenshot(path=str(artifacts / "closing_failed.png"))
            self.loaded = False


def shut_down_kernels(server: LabServer) -> None:
    with urllib.request.urlopen(server.url("api/kernels"), timeout=10) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(server.url(f"api/kernels/{kernel['id']}"), method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


class Visit:
    """One test's use of the shared tab: the notebooks it opened, its artefacts folder."""

    def __init__(self, tab: LabTab, artifacts: Path):
        self.tab = tab
        self.page = tab.page
        self.artifacts = artifacts
        self.opened: list[str] = []

    def open(self, path: str) -> Notebook:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.opened.append(path)
        return self.tab.open(path, self.artifacts)


@contextmanager
def visit(tab: LabTab, name: str):
    """A test's visit to the shared tab. Afterwards, if it opened a notebook: the console lines of
    the visit saved, its notebooks closed and kernels shut down, and no request of the visit gone
    beyond this machine. Screenshots go to test-artifacts/browser/<name>/."""
    artifacts = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    shutil.rmtree(artifacts, ignore_errors=True)
    first_url, first_line = len(tab.urls), len(tab.console)
    this = Visit(tab, artifacts)
    try:
        yield this
    finally:
        if this.opened:
            tab.close_notebooks(artifacts)
            shut_down_kernels(tab.server)
            (artifacts / "console.log").write_text("\n".join(tab.console[first_line:]), encoding="utf-8")
    if this.opened:
        urls = tab.urls[first_url:]
        assert any(url.startswith(f"http://127.0.0.1:{tab.server.port}/") for url in urls), "no request was recorded"
        assert not off_loopback(urls), f"the page reached beyond 127.0.0.1: {off_loopback(urls)[:5]}"
