"""The first minutes, as `make course` gives them: JupyterLab's root is the repository, so
exercises/ and solutions/ are there beside notebooks/; lesson 00 is the page it opens; and a
notebook's saved widgets show their last picture before any cell runs (the notebooks are trusted).
Screenshots land in test-artifacts/browser/<test>/.
"""

from __future__ import annotations

import json
import urllib.request

from lab_server import COURSE_FOLDERS, COURSE_START
from lab_ui import PANEL, Notebook


def test_the_course_opens_on_lesson_00_with_every_folder_at_its_root(tab, lab):
    with urllib.request.urlopen(lab.url("api/contents"), timeout=30) as response:
        root = {item["name"] for item in json.load(response)["content"]}
    assert set(COURSE_FOLDERS) <= root, root
    tab.opened.append(COURSE_START)  # closed again after the test, like every notebook the visit opens
    tab.tab.loaded = False
    tab.page.goto(lab.url(""))  # the server's default page: where `make course` sends the browser
    tab.page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=90_000)
    notebook = Notebook(tab.page, "00_welcome.ipynb", tab.artifacts)
    notebook.wait_for_kernel_idle()
    title = tab.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownOutput h1").first.inner_text()
    assert title.startswith("00"), title
    notebook.screenshot("lesson-00-opened")


def test_a_saved_widget_shows_its_picture_before_its_cell_runs(tab):
    notebook = tab.open("notebooks/00_welcome.ipynb")
    cells = notebook.cell_sources()
    widget_cell = next(i for i, source in enumerate(cells) if "widgets.VBox([slider, picture])" in source)
    output = notebook.cells().nth(widget_cell).locator(".jp-OutputArea")
    image = output.locator("img.widget-image")
    image.first.wait_for(timeout=30_000)  # drawn from the widget state saved in the notebook
    assert "VBox(children=" not in output.inner_text()
    width = image.first.evaluate("img => img.getBoundingClientRect().width")
    natural = image.first.evaluate("img => img.naturalWidth")
    assert width == 360 and natural == 720, (width, natural)  # 2x pixels, shown at its own width, not stretched
    assert "temperature" in output.locator(".widget-label").first.inner_text()  # the whole label
    notebook.screenshot("widget-before-running", element=output)


def test_a_lessons_figures_have_twice_the_pixels_they_are_shown_with(tab):
    """sharp_figures() in the import cell: the saved figure is shown at its size (inches × 72 px), its PNG holds twice
    the pixels each way, so a high-density screen shows it sharp and no screen stretches it."""
    notebook = tab.open("notebooks/00_welcome.ipynb")
    cells = notebook.cell_sources()
    figure_cell = next(i for i, source in enumerate(cells) if "draw_gpt2(ax)" in source)
    output = notebook.cells().nth(figure_cell).locator(".jp-OutputArea")
    image = output.locator(".jp-RenderedImage img")
    image.first.wait_for(timeout=30_000)
    natural, width = image.first.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert natural >= 1000 and width == natural // 2, (natural, width)  # 2x pixels, shown at half their number
    notebook.screenshot("figure-2x", element=output)
