"""Without Chromium the browser tests are skipped, and the run says so plainly."""

import os
import subprocess
import sys

from chromium import NO_CHROMIUM
from lab_server import ROOT


def test_a_run_without_chromium_skips_and_says_why():
    env = dict(os.environ, MINIGPT2_CHROMIUM=str(ROOT / "no-such-chromium"))
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/browser/test_exercises_in_lab.py", "-q"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout
    assert f"The browser tests (tests/browser/) did not run. {NO_CHROMIUM}" in run.stdout
