"""A browser tab on the test's JupyterLab: opens notebooks, records where its requests went,
and on closing shuts the kernels down and checks that nothing left this machine."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from lab_server import ROOT
from lab_ui import Notebook

ARTIFACTS = ROOT / "test-artifacts" / "browser"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class LabTab:
    """A browser tab on the test's JupyterLab that records where its requests went."""

    def __init__(self, page, server, artifacts: Path):
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.urls: list[str] = []
        self.console: list[str] = []
        self.opened: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))

    def open(self, path: str, timeout_s: float = 90) -> Notebook:
        """Open ``path`` (relative to the served folder) in a fresh workspace; wait for its kernel."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.opened.append(path)
        self.page.goto(self.server.url(f"lab/tree/{urllib.parse.quote(path)}?reset"))
        notebook = Notebook(self.page, Path(path).name, self.artifacts)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_s * 1000)
        notebook.wait_for_kernel_idle(timeout_s)
        return notebook

    def off_loopback(self) -> list[str]:
        """Every request to a host other than this machine (blob: and data: URLs stay in the page)."""
        hosts = ((url, urllib.parse.urlsplit(url)) for url in self.urls)
        return [url for url, parts in hosts
                if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK]


def shut_down_kernels(server) -> None:
    with urllib.request.urlopen(server.url("api/kernels"), timeout=10) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(server.url(f"api/kernels/{kernel['id']}"), method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


@contextmanager
def lab_tab(browser, lab, name: str):
    """A new tab. Afterwards, if it opened a notebook: its console log saved, its kernels shut down,
    and no request gone beyond this machine. Screenshots go to test-artifacts/browser/<name>/."""
    artifacts = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    shutil.rmtree(artifacts, ignore_errors=True)
    tab = LabTab(browser.new_page(), lab, artifacts)
    try:
        yield tab
    finally:
        tab.page.close()
        if tab.opened:
            (artifacts / "console.log").write_text("\n".join(tab.console), encoding="utf-8")
            shut_down_kernels(lab)
    if tab.opened:
        assert any(url.startswith(f"http://127.0.0.1:{lab.port}/") for url in tab.urls), "no request was recorded"
        assert not tab.off_loopback(), f"the page reached beyond 127.0.0.1: {tab.off_loopback()[:5]}"
