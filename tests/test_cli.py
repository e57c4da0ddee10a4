"""The `minigpt2` command: doctor and the exercises generator."""

import subprocess
import sys


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "minigpt2", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_doctor_runs_clean_here():
    done = run("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All set" in done.stdout
    for line in ("Python", "PyTorch", "Device", "tinyshakespeare.txt", "gpt2.tiktoken", "Widgets"):
        assert line in done.stdout


def test_doctor_without_data_fails_with_advice(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "MINIGPT2_DATA_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path), MINIGPT2_OFFLINE="1")
    done = run("doctor", env=env)
    assert done.returncode == 1
    assert "NO  tinyshakespeare.txt" in done.stdout and "MINIGPT2_DATA_DIR" in done.stdout


def test_exercises_writes_then_checks_then_reports_drift(root, tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    (solutions / "00_welcome.ipynb").write_bytes((root / "solutions" / "00_welcome.ipynb").read_bytes())
    paths = ("--solutions", str(solutions), "--exercises", str(exercises))
    assert run("exercises", *paths).returncode == 0
    assert (exercises / "00_welcome.ipynb").read_bytes() == (root / "exercises" / "00_welcome.ipynb").read_bytes()
    assert run("exercises", "--check", *paths).returncode == 0
    (exercises / "00_welcome.ipynb").write_text("{}", encoding="utf-8")
    done = run("exercises", "--check", *paths)
    assert done.returncode == 1 and "differs" in done.stdout


def test_unknown_command_is_a_usage_error():
    done = run("fly")
    assert done.returncode == 2 and "invalid choice" in done.stderr
