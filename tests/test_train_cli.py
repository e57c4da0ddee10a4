"""``minigpt2 train`` / ``minigpt2 sample`` (through minigpt2.train.main / sample_main): a run end to
end, resuming from the command line, and one-line errors for bad arguments."""

import pytest

from minigpt2.train import main, sample_main
from minigpt2.train.checkpoint import load_checkpoint

SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4",
         "--warmup-iters", "1", "--eval-interval", "2", "--eval-iters", "1", "--log-interval", "1",
         "--device", "cpu", "--no-progress"]


def one_line_error(capsys, code, expected_code=2):
    out, err = capsys.readouterr()
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_train_then_resume_then_sample(tmp_path, capsys):
    out_dir = str(tmp_path / "run")
    assert main([*SMALL, "--max-iters", "2", "--out-dir", out_dir]) == 0
    assert "val loss" in capsys.readouterr().out
    ckpt = tmp_path / "run" / "ckpt.safetensors"
    assert load_checkpoint(ckpt).step == 2
    # --resume takes the checkpoint's settings; a longer schedule may be given on top
    assert main(["--resume", "--out-dir", out_dir, "--max-iters", "4"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(ckpt).step == 4
    assert sample_main(["--checkpoint", str(ckpt), "--prompt", "ROMEO:", "--max-new-tokens", "20", "--num-samples",
                        "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("ROMEO:") == 2


def test_sample_is_repeatable_with_a_seed(tmp_path, capsys):
    main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path)])
    capsys.readouterr()
    args = ["--checkpoint", str(tmp_path / "ckpt.safetensors"), "--max-new-tokens", "30", "--seed", "3"]
    sample_main(args)
    first = capsys.readouterr().out
    sample_main(args)
    assert capsys.readouterr().out == first


def test_an_attention_only_model_trains_saves_and_samples(tmp_path, capsys):
    assert main([*SMALL, "--no-mlp", "--max-iters", "1", "--out-dir", str(tmp_path)]) == 0
    checkpoint = load_checkpoint(tmp_path / "ckpt.safetensors")
    assert checkpoint.meta["config"]["mlp"] is False and not any(".mlp." in name for name in checkpoint.model_state)
    capsys.readouterr()
    assert sample_main(["--checkpoint", str(tmp_path / "ckpt.safetensors"), "--max-new-tokens", "5"]) == 0


def test_list_presets(capsys):
    assert main(["--list-presets"]) == 0
    out = capsys.readouterr().out
    assert "shakespeare-char:" in out and "shakespeare-gpt2:" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--preset", "tiny-stories"], "unknown preset 'tiny-stories'"),
        (["--max-iters", "ten"], "invalid int value"),
        (["--n-embd", "130", "--n-head", "4"], "divisible"),
        (["--batch-size", "0"], "--batch-size"),
        (["--tokenizer", "words"], "--tokenizer"),
        (["--warmup-iters", "500", "--max-iters", "100"], "--warmup-iters"),
        (["--block-size", "200000"], "needs block_size + 1 = 200001 tokens"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_train_arguments_are_one_line_errors(argv, words, tmp_path, capsys):
    line = one_line_error(capsys, main([*argv, "--out-dir", str(tmp_path), "--device", "cpu", "--no-progress"]))
    assert words in line and line.startswith("minigpt2 train: error:")


def test_missing_data_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    line = one_line_error(capsys, main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path / "o")]))
    assert "tinyshakespeare.txt" in line and "MINIGPT2_DATA_DIR" in line


def test_resume_without_checkpoint_is_a_one_line_error(tmp_path, capsys):
    line = one_line_error(capsys, main(["--resume", "--out-dir", str(tmp_path / "nothing")]))
    assert "no checkpoint" in line


def test_resume_with_a_context_that_does_not_fit_is_a_one_line_error(tmp_path, capsys):
    main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path)])
    capsys.readouterr()
    line = one_line_error(capsys, main(["--resume", "--out-dir", str(tmp_path), "--block-size", "64", "--max-iters",
                                        "2"]))
    assert "block_size=16" in line


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--checkpoint", "nowhere/ckpt.safetensors"], "no checkpoint at"),
        (["--temperature", "hot"], "invalid float value"),
    ],
)
def test_bad_sample_arguments_are_one_line_errors(argv, words, capsys):
    line = one_line_error(capsys, sample_main(argv))
    assert words in line and line.startswith("minigpt2 sample: error:")


def test_sample_prompt_outside_the_vocabulary_is_a_one_line_error(tmp_path, capsys):
    main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path)])
    capsys.readouterr()
    line = one_line_error(capsys, sample_main(["--checkpoint", str(tmp_path / "ckpt.safetensors"), "--prompt", "日本"]))
    assert "--prompt has characters this model never saw: '日本'" in line
    assert "the 65 characters of its training text" in line and "ABCDEFGHIJKLMNOPQRSTUVWXYZ" in line


def test_help_exits_cleanly(capsys):
    assert main(["--help"]) == 0
    assert "--block-size" in capsys.readouterr().out
    assert sample_main(["--help"]) == 0


# --------------------------------------------------------------------------- what a user reads


def test_train_help_explains_every_option_and_its_default(capsys):
    from minigpt2.train.cli import train_parser

    for action in train_parser()._actions:
        if action.dest in ("help", "list_presets"):  # actions, not settings
            continue
        assert action.help and "(default: " in action.help, action.option_strings
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines to the terminal's width
    assert ("transformer blocks (default: 4 with shakespeare-char, 4 with shakespeare-char-bf16, 6 with "
            "shakespeare-gpt2)") in out
    assert "AdamW's beta1 (default: 0.9)" in out and "a tqdm progress bar" not in out
    assert "Exit status: 0 trained; 2 bad input" in out


def test_a_run_says_where_its_checkpoints_go_and_shows_its_progress_in_plain_lines(tmp_path, capsys):
    args = [a for a in SMALL if a != "--no-progress"]
    assert main([*args, "--max-iters", "4", "--out-dir", str(tmp_path / "run"), "--progress"]) == 0
    out, err = capsys.readouterr()
    assert f"checkpoints go to {tmp_path / 'run' / 'ckpt.safetensors'}" in out.splitlines()[1]
    progress = [line for line in out.splitlines() if line.startswith("step ") and "/4" in line]
    assert progress and progress[-1].startswith("step 4/4 (100%)") and "left" in progress[-1]
    assert "\r" not in out and "\r" not in err  # not a terminal: no bar redrawn in place
    assert "MFU" in out.splitlines()[-2] and " of " in out.splitlines()[-2] and "GFLOP/s (" in out.splitlines()[-2]


def test_a_bar_on_a_terminal_plain_lines_elsewhere(monkeypatch, capsys):
    from tqdm import tqdm

    from minigpt2.train import progress

    monkeypatch.setattr(progress, "_isatty", lambda stream: True)
    bar = progress.progress_bar(10)
    assert isinstance(bar, tqdm)
    bar.close()
    monkeypatch.setattr(progress, "_isatty", lambda stream: False)
    plain = progress.progress_bar(20, initial=5)
    assert isinstance(plain, progress.PlainProgress)
    for _ in range(15):
        plain.update(1)
    plain.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step 6/20 (30%)") and lines[-1].startswith("step 20/20 (100%)")
    assert len(lines) == 8  # about every tenth of the run: 6, 8, …, 20
    assert progress.duration(3725) == "1:02:05" and progress.duration(75.4) == "1:15"


def test_the_closing_hint_is_a_command_that_works_as_printed(tmp_path, capsys):
    import os
    import shlex
    import subprocess

    assert main([*SMALL, "--max-iters", "1", "--out-dir", str(tmp_path / "run")]) == 0
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    assert hint.startswith("sample from it: ")
    command = shlex.split(hint.removeprefix("sample from it: "))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # no activated venv
    if "/" in command[0]:  # a path: it must work without the venv's bin folder on the PATH
        env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run([*command, "--max-new-tokens", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) >= 5


def test_error_messages_name_options_the_command_has(tmp_path, capsys):
    line = one_line_error(capsys, sample_main(["--checkpoint", str(tmp_path / "none.safetensors")]))
    assert "--out-dir" not in line and "--checkpoint" in line
    line = one_line_error(capsys, sample_main(["--preset", "shakespeare-gpt2", "--device", "cpu"]))
    assert "--out-dir" not in line and "minigpt2 train --preset shakespeare-gpt2" in line


# --------------------------------------------------------------------------- sample


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("sample")
    assert main([*SMALL, "--max-iters", "1", "--out-dir", str(out_dir)]) == 0
    return out_dir / "ckpt.safetensors"


@pytest.mark.parametrize("argv, words", [
    (["--max-new-tokens", "1000000000"], "--max-new-tokens should be between 0 and 100,000, got 1,000,000,000"),
    (["--max-new-tokens", "-1"], "--max-new-tokens should be between 0 and 100,000"),
    (["--num-samples", "0"], "--num-samples should be at least 1"),
    (["--top-k", "0"], "--top-k should be at least 1"),
    (["--top-p", "1.5"], "--top-p should be in (0, 1]"),
    (["--temperature", "-1"], "--temperature should be 0 (greedy) or more"),
    (["--prompt", "ab\udcff\udcfe"], "--prompt is not valid UTF-8: the bytes 0xff 0xfe (the first at byte 2)"),
])
def test_bad_sample_requests_are_refused_before_any_output(checkpoint, capsys, argv, words):
    line = one_line_error(capsys, sample_main(["--checkpoint", str(checkpoint), *argv]))
    assert words in line


def test_sample_streams_its_text_as_it_is_generated(checkpoint):
    from minigpt2.train.cli import MAX_NEW_TOKENS
    from minigpt2.train.sample import encode_prompt, load_model, stream_sample

    model, tokenizer = load_model(checkpoint)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    pieces = stream_sample(model, tokenizer, encode_prompt(tokenizer, "ROMEO:"), MAX_NEW_TOKENS)
    first = next(pieces)
    assert first and len(calls) == 1  # the first piece comes after one step, not after 100,000
    assert len(first + next(pieces)) == 2 and len(calls) == 2
    pieces.close()


def test_end_of_text_in_a_prompt_gets_advice_naming_a_real_option():
    from minigpt2.tokenizer import gpt2_tokenizer
    from minigpt2.train.cli import sample_parser
    from minigpt2.train.sample import encode_prompt

    tokenizer = gpt2_tokenizer()
    with pytest.raises(ValueError, match="--allow-special") as err:
        encode_prompt(tokenizer, "Hello<|endoftext|>")
    assert "allowed_special" not in str(err.value)
    assert "--allow-special" in sample_parser().format_help()
    assert encode_prompt(tokenizer, "Hello<|endoftext|>", allow_special=True)[-1] == 50256
