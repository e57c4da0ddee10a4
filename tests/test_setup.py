"""The set-up a learner relies on: dependencies listed once for pip and once for conda, in agreement;
JupyterLab answers on loopback with the widget manager served locally; committed notebooks are executed."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import tomllib
import yaml


def requirements_from_pyproject(root):
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [req for group in project.get("optional-dependencies", {}).values() for req in group]
    return sorted(project["dependencies"] + extras)


def requirements_from_environment(root):
    env = yaml.safe_load((root / "environment.yml").read_text(encoding="utf-8"))
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml should have exactly one pip: section"
    return sorted(pip_lists[0])


def test_environment_yml_agrees_with_pyproject(root):
    from_pip = requirements_from_pyproject(root)
    from_conda = requirements_from_environment(root)
    assert from_conda == from_pip, (
        f"only in pyproject.toml: {sorted(set(from_pip) - set(from_conda))}; "
        f"only in environment.yml: {sorted(set(from_conda) - set(from_pip))}"
    )


def test_the_learners_packages_are_all_listed(root):
    names = {req.split(">")[0].split("=")[0].split("<")[0].strip().lower() for req in requirements_from_pyproject(root)}
    for needed in ("jupyterlab", "torch", "matplotlib", "ipywidgets", "tiktoken", "nbval", "pytest"):
        assert needed in names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_starts_on_loopback_and_serves_the_widget_manager(root, tmp_path):
    port, token = free_port(), "minigpt2-test-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    try:
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline and page is None:
            assert server.poll() is None, "JupyterLab exited during start-up"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as response:
                    assert response.status == 200
                    page = response.read().decode("utf-8")
            except OSError:
                time.sleep(0.5)
        assert page is not None, "JupyterLab did not answer on /lab within 90 s"
        assert "JupyterLab" in page
        assert "@jupyter-widgets/jupyterlab-manager" in page, "the ipywidgets manager extension is not served"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def committed_notebooks(root):
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def test_committed_notebooks_are_executed_without_stored_errors(root):
    problems = []
    for path in committed_notebooks(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
                continue
            if cell.get("execution_count") is None:
                problems.append(f"{path.name}: code cell {index} was never executed")
            if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
                problems.append(f"{path.name}: code cell {index} holds a stored error")
    assert not problems, "\n".join(problems)


def test_every_lesson_has_a_notebook_and_every_solution_a_lesson(root):
    lessons = {p.name[:2] for p in (root / "notebooks").glob("*.ipynb")}
    solutions = {p.name[:2] for p in (root / "solutions").glob("*.ipynb")}
    assert "00" in lessons
    assert solutions <= lessons, f"solutions without a lesson: {sorted(solutions - lessons)}"


@pytest.mark.parametrize("module, absent", [
    ("minigpt2.tokenizer", "torch"),  # a pure-Python tokenizer imports in milliseconds
    ("minigpt2.model", "minigpt2.hf"),  # the model is a model without its loader (which imports the model)
])
def test_a_module_does_not_import_what_it_does_not_need(module, absent):
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
