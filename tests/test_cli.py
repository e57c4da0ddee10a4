"""The `minigpt2` command: doctor, the exercises generator, and train / sample reached through it."""

import subprocess
import sys


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "minigpt2", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


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


def test_train_and_sample_take_their_own_options_first():
    """`minigpt2 train --preset …` hands every argument after the command to the training parser."""
    listed = run("train", "--list-presets")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("shakespeare-char:") and "shakespeare-gpt2:" in listed.stdout
    for command in ("train", "sample"):
        helped = run(command, "--help")
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith(f"usage: minigpt2 {command}") and "--preset" in helped.stdout


def test_a_bad_training_argument_is_one_line_through_the_command():
    done = run("train", "--preset", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "minigpt2 train: error: unknown preset 'nope'; the presets are: shakespeare-char, shakespeare-char-bf16, "
        "shakespeare-gpt2"]


def test_the_command_lists_train_and_sample():
    done = run("--help")
    assert done.returncode == 0 and "train" in done.stdout and "sample" in done.stdout
