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
    assert sample_main(["--checkpoint", str(ckpt), "--prompt", "ROMEO:", "--max-new-tokens", "20", "--num-samples", "2"]) == 0
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
        (["--block-size", "200000"], "too few for windows of --block-size 200000"),
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
    line = one_line_error(capsys, main(["--resume", "--out-dir", str(tmp_path), "--block-size", "64", "--max-iters", "2"]))
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
