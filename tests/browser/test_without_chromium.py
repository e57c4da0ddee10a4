"""Without Chromium the browser tests are skipped, and the run says so plainly."""

import os
import re
import subprocess
import sys

from chromium import NO_CHROMIUM
from lab_server import ROOT


def test_a_run_without_chromium_skips_and_says_why():
    env = dict(os.environ, MINIGPT2_CHROMIUM=str(ROOT / "no-such-chromium"))
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/browser/test_exercises_in_lab.py", "-q"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b[1-9]\d* skipped\b", run.stdout) and " passed" not in run.stdout, run.stdout  # all of them
    assert f"The browser tests (tests/browser/) did not run. {NO_CHROMIUM}" in run.stdout


def test_the_browser_suite_opens_the_course_as_make_course_does(tmp_path):
    from lab_server import COURSE_FOLDERS, COURSE_START, copy_course, trust

    recipe = subprocess.run(["make", "-n", "course"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert f'--ServerApp.root_dir="{ROOT}"' in recipe  # the repository root, so exercises/ and solutions/ are reachable
    assert f"--LabApp.default_url=/lab/tree/{COURSE_START}" in recipe
    assert "jupyter trust " + " ".join(f"{folder}/*.ipynb" for folder in COURSE_FOLDERS) in recipe
    course = copy_course(tmp_path / "course")
    env = dict(os.environ, JUPYTER_DATA_DIR=str(tmp_path / "data"))
    trust(course, env)
    from nbformat import read
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary(data_dir=str(tmp_path / "data"))  # the trust database the server would read
    for folder in COURSE_FOLDERS:
        for notebook in (course / folder).glob("*.ipynb"):
            assert notary.check_signature(read(notebook, as_version=4)), notebook
