"""`minigpt2 finetune classify|instruct` writes a directory transformers loads; `minigpt2 chat` answers; bad input is
one line."""

import io
import json
import subprocess
import sys

import pytest
import torch

from minigpt2 import GPT, GPTConfig
from minigpt2.finetune.classify import GPTClassifier
from minigpt2.finetune.cli import chat_main, chat_parser, finetune_main, finetune_parser

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("base") / "tiny"
    GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=64)).save_pretrained(directory)
    return directory


def run_finetune(*args, capsys):
    status = finetune_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_every_option_has_help():
    for parser in (finetune_parser(), chat_parser()):
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"
    done = subprocess.run([sys.executable, "-m", "minigpt2", "finetune", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--lora-rank" in done.stdout and "DIR_OR_NAME" in done.stdout


def test_classify_with_lora_writes_what_transformers_loads(base_dir, tmp_path, capsys):
    out = tmp_path / "clf"
    status, stdout, err = run_finetune("classify", "--base", str(base_dir), "--out", str(out), "--steps", "2",
                                       "--lora-rank", "2", "--max-length", "32", capsys=capsys)
    assert status == 0, err
    report = json.loads(stdout)
    assert 0.0 <= report["test_accuracy"] <= 1.0 and report["truncated"] > 0  # some messages pass 32 tokens
    theirs = transformers.GPT2ForSequenceClassification.from_pretrained(out).eval()
    assert theirs.config.id2label == {0: "ham", 1: "spam"}
    assert "lora" not in " ".join(n for n, _ in theirs.named_parameters())  # merged
    ids = torch.tensor([[464, 3290, 318], [40, 1101, 50256]])  # the second row padded with <|endoftext|>
    assert theirs(input_ids=ids).logits.shape == (2, 2)


def test_instruct_with_lora_writes_a_model_both_libraries_load(base_dir, tmp_path, capsys):
    out = tmp_path / "lm"
    status, stdout, err = run_finetune("instruct", "--base", str(base_dir), "--out", str(out), "--steps", "2",
                                       "--lora-rank", "2", "--batch-size", "4", capsys=capsys)
    assert status == 0, err
    assert json.loads(stdout)["test_response_loss"] > 0
    ours = GPT.from_pretrained(out).eval()
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    ids = torch.tensor([[464, 3290, 318, 257]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], theirs(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    base = GPT.from_pretrained(base_dir)
    assert not torch.equal(base.transformer.h[0].attn.c_attn.weight, ours.transformer.h[0].attn.c_attn.weight)


@pytest.mark.parametrize("args, message", [
    (["--lora-rank", "0"], "--lora-rank should be a positive integer"),
    (["--lora-rank", "-3"], "--lora-rank should be a positive integer"),
    (["--lora-rank", "2", "--lora-targets", "q_proj"], "no layer of the model is named 'q_proj'"),
    (["--steps", "0"], "--steps should be at least 1"),
    (["--trainable", "body"], "invalid choice"),
])
def test_bad_options_are_one_line(base_dir, tmp_path, capsys, args, message):
    status, _, err = run_finetune("classify", "--base", str(base_dir), "--out", str(tmp_path / "x"), *args,
                                  capsys=capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert status == 2 and len(errors) == 1 and message in errors[0], err


def test_gpt2_offline_without_the_cache_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("minigpt2.utils.cached_checkpoint", lambda name: None)
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    status, _, err = run_finetune("instruct", "--out", str(tmp_path / "x"), capsys=capsys)
    assert status == 2 and "MINIGPT2_OFFLINE" in err and "--base DIR" in err


def test_a_record_without_output_is_one_line(base_dir, tmp_path, capsys):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"instruction": "Say hi.", "input": ""}]))
    status, _, err = run_finetune("instruct", "--base", str(base_dir), "--data", str(data), "--out",
                                  str(tmp_path / "x"), capsys=capsys)
    assert status == 2 and "record 0 has no 'output'" in err


class FakeTerminal(io.StringIO):
    def isatty(self):
        return False


def test_chat_streams_an_answer_per_line(base_dir):
    stdin, stdout = FakeTerminal("Name a colour.\nSay hi.\n"), io.StringIO()
    assert chat_main([str(base_dir), "--max-new-tokens", "4"], stdin=stdin, stdout=stdout) == 0
    assert stdout.getvalue().count("model> ") == 2


def test_chat_refuses_a_classifier_and_bad_settings(base_dir, tmp_path, capsys):
    GPTClassifier(GPT.from_pretrained(base_dir), ("ham", "spam")).save_pretrained(tmp_path / "clf")
    assert chat_main([str(tmp_path / "clf")], stdin=FakeTerminal("")) == 2
    assert "holds a classifier" in capsys.readouterr().err
    assert chat_main([str(base_dir), "--temperature", "-1"], stdin=FakeTerminal("")) == 2
    assert chat_main([str(tmp_path / "nothing")], stdin=FakeTerminal("")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "nothing" in err
