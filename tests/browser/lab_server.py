"""JupyterLab from the project's .venv, on loopback, for the browser tests.

The server gets its own settings, workspaces and runtime folders (nothing of the user's
JupyterLab leaks in, nothing is written to it), never asks the internet for news or
updates, and serves a folder of COPIES of the course's notebooks — opened as `make course` opens the
course: the copies' root is JupyterLab's root, the notebooks are trusted, lesson 00 is the default page.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
COURSE_FOLDERS = ("notebooks", "exercises", "solutions")  # what `make course` trusts and serves
COURSE_START = "notebooks/00_welcome.ipynb"  # the page `make course` opens (the Makefile's COURSE_START)

# A learner's defaults, minus what would reach the network or pop over the page.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python() -> str:
    """The project's .venv interpreter (the one `make course` runs JupyterLab with), else this one."""
    python = ROOT / ".venv" / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def copy_course(destination: Path) -> Path:
    """Copy the course's folders into ``destination`` so the committed notebooks are never modified."""
    for folder in COURSE_FOLDERS:
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, destination / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return destination


@dataclass
class LabServer:
    process: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    log: Path

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_lab(root_dir: Path, state_dir: Path) -> LabServer:
    """Start JupyterLab serving ``root_dir``; its settings and logs go under ``state_dir``."""
    settings = state_dir / "user-settings"
    for name, values in USER_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), "minigpt2-browser-tests"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"), JUPYTER_CONFIG_DIR=str(state_dir / "config"),
               JUPYTER_DATA_DIR=str(state_dir / "data"),  # the trust database too: the user's is left alone
               MINIGPT2_OFFLINE="1", MINIGPT2_QUICK=os.environ.get("MINIGPT2_QUICK", "1"))
    trust(root_dir, env)
    command = [
        venv_python(), "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.default_url=/lab/tree/{COURSE_START}",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = state_dir / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root_dir, env=env)
    server = LabServer(process, port, token, root_dir, log)
    try:
        wait_until_up(server)
    except BaseException:
        server.stop()
        raise
    return server


def trust(root_dir: Path, env: dict) -> None:
    """`jupyter trust` every course notebook, as `make course` does (saved widgets show only in trusted notebooks);
    the Chinese ones (<folder>/zh/) too."""
    notebooks = sorted(str(p) for folder in COURSE_FOLDERS for pattern in ("*.ipynb", "zh/*.ipynb")
                       for p in (root_dir / folder).glob(pattern))
    jupyter = Path(venv_python()).with_name("jupyter")
    command = [str(jupyter), "trust", *notebooks] if jupyter.exists() else [venv_python(), "-m", "jupyter", "trust",
                                                                            *notebooks]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)


def wait_until_up(server: LabServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("JupyterLab exited during start-up; its "
                               f"log:\n{server.log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(server.url("api/status"), timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer within {START_TIMEOUT_S} s; its log:\n"
                       f"{server.log.read_text(errors='replace')[-3000:]}")
