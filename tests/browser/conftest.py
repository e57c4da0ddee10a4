"""The course in a real JupyterLab and a real headless Chromium.

One JupyterLab (from the project's .venv, on 127.0.0.1, a free port, a token, no browser)
serves a temporary COPY of notebooks/ and exercises/; one Chromium (Debian's package,
driven by Playwright, no browser download) with a fresh profile opens it in one tab that
the tests share (see lab_tabs.py). When a test ends its notebook is closed, its kernel shut
down, and every request made during it must have gone to 127.0.0.1 — JupyterLab and the
widgets render from what the packages ship, with no CDN. Screenshots land in
test-artifacts/browser/<test>/.

Without Chromium (or Playwright) every test here is skipped, and the run says so at the end.

    apt-get install chromium && .venv/bin/pip install -e '.[browser]'    # once (no browser download)
    .venv/bin/python -m pytest tests/browser -rs                          # about 3 minutes
    MINIGPT2_CHROMIUM=/path/to/chrome .venv/bin/python -m pytest tests/browser   # another Chromium
"""

from __future__ import annotations

import tempfile

import pytest
from chromium import CHROMIUM_ARGS, NO_CHROMIUM, NO_PLAYWRIGHT, find_chromium
from lab_server import copy_course, start_lab
from lab_tabs import LabTab, visit


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    return path


@pytest.fixture(scope="session")
def playwright(chromium):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NO_PLAYWRIGHT)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def lab(tmp_path_factory, chromium):
    """JupyterLab serving a temporary copy of the course (notebooks/, exercises/, solutions/), as `make course` does."""
    course = copy_course(tmp_path_factory.mktemp("course"))
    server = start_lab(course, tmp_path_factory.mktemp("jupyter-state"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(playwright, chromium):
    """Headless Chromium with a fresh profile, the same window size for every screenshot."""
    with tempfile.TemporaryDirectory(prefix="minigpt2-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1400})
        yield context
        context.close()


@pytest.fixture(scope="session")
def shared_tab(browser, lab):
    """The tab JupyterLab loads in once; the tests take turns in it."""
    tab = LabTab(browser.new_page(), lab)
    yield tab
    tab.page.close()


@pytest.fixture
def tab(request, shared_tab):
    """This test's visit to the shared tab: ``tab.open(path)`` gives a Notebook."""
    with visit(shared_tab, request.node.name) as this:
        yield this


def pytest_terminal_summary(terminalreporter):
    """Say plainly when the browser suite did not run, and why."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "tests/browser/" in r.nodeid]
    reasons = sorted({r.longrepr[2].removeprefix("Skipped: ") for r in skipped if isinstance(r.longrepr, tuple)})
    for reason in reasons:
        if reason in (NO_CHROMIUM, NO_PLAYWRIGHT):
            terminalreporter.write_sep("-", "browser suite skipped", yellow=True)
            terminalreporter.write_line(f"The browser tests (tests/browser/) did not run. {reason}")
