"""The red-team pass against `minigpt2 grade` (issue 14), each attack a notebook built here: a cheat scores
zero for its exercise, a hang ends within the limit plus a few seconds as a row or a note, an exit leaves
the other exercises graded, and the grader's own failures are exit 2 with one line."""

import json
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from minigpt2.grading.grader import grade_notebook, read_notebook

pytestmark = pytest.mark.slow

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
SOLVED_00 = {
    "utf8_length": 'def utf8_length(text):\n    return len(text.encode("utf-8"))',
    "count_linear_params": "def count_linear_params(n_in, n_out, bias=True):\n    return n_in * n_out + (n_out "
                           "if bias else 0)",
    "softmax": ("def softmax(x):\n    e = (x - x.max(dim=-1, keepdim=True).values).exp()\n"
                "    return e / e.sum(dim=-1, keepdim=True)"),
}


def notebook(tmp_path, *cells, name="00_welcome.ipynb", **replace):
    """Lesson 00 solved, with some functions replaced and some cells added (after the imports)."""
    sources = ["import torch\nimport torch.nn.functional as F", *cells]
    sources += [replace.get(n, s) for n, s in SOLVED_00.items()]
    path = tmp_path / name
    nbformat.write(new_notebook(metadata=KERNELSPEC, cells=[new_code_cell(s) for s in sources]), path)
    return path


def rows(report):
    return {r.id: r for r in report.results}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minigpt2", "grade", *args], capture_output=True, text=True,
                          timeout=300)


# --------------------------------------------------------------------------- verdict tampering

WRONG_SOFTMAX = "def softmax(x):\n    return x"


def test_patched_checks_and_comparisons_change_nothing(tmp_path):
    """grade_namespace and the registry replaced, torch.allclose / torch.equal patched, print and
    json.dumps shadowed, an IPython pre_run_cell hook: the wrong softmax still scores 0."""
    imports_the_checks = ("import minigpt2.grading.core as _core\n_core.grade_namespace = lambda lesson, ns: []\n"
                          "_core._REGISTRY.clear()")
    patches = ("torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True",
               "get_ipython().events.register('pre_run_cell', lambda *a: None)",
               "import builtins, json\nbuiltins.print = lambda *a, **k: None\njson.dumps = lambda *a, **k: '[]'")
    for cheats in ([imports_the_checks], patches):
        report = grade_notebook(notebook(tmp_path, *cheats, softmax=WRONG_SOFTMAX), cell_timeout=30)
        assert rows(report)["00.3"].earned == 0, (cheats, rows(report)["00.3"].message)
    assert rows(report)["00.1"].passed  # the patched kernel still grades what is right


def test_an_always_equal_int_and_an_allclose_tensor_arrive_as_plain_data(tmp_path):
    always_equal = ("class Yes(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = "
                    "int.__hash__\n\ndef utf8_length(text):\n    return Yes(0)")
    liar = ("class Liar(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, func, types, args=(), "
            "kwargs=None):\n        if func in (torch.allclose, torch.equal):\n            return True\n        "
            "return super().__torch_function__(func, types, args, kwargs or {})\n\ndef softmax(x):\n    return "
            "torch.zeros_like(x).as_subclass(Liar)")
    stack = ("import inspect\n\ndef count_linear_params(n_in, n_out, bias=True):\n"
             "    for frame in inspect.stack():\n        if 'expected' in frame.frame.f_locals:\n"
             "            return frame.frame.f_locals['expected']\n    return 0")
    report = grade_notebook(notebook(tmp_path, utf8_length=always_equal, softmax=liar), cell_timeout=30)
    assert [r.earned for r in report.results] == [0, 1, 0], [r.message for r in report.results]
    report = grade_notebook(notebook(tmp_path, count_linear_params=stack), cell_timeout=30)
    assert rows(report)["00.2"].earned == 0


# --------------------------------------------------------------------------- build it yourself


@pytest.mark.parametrize("shortcut", [  # the other forms: tests/test_grading_wire_forbid.py
    "def softmax(x):\n    return F.softmax(x, dim=-1)",
    "def softmax(x):\n    return getattr(torch, 'soft' + 'max')(x, -1)",  # only the watch in the kernel sees this one
    "from minigpt2.grading.lesson00 import _reference_softmax\n\ndef softmax(x):\n    return _reference_softmax(x)",
])
def test_softmax_shortcuts_score_zero_and_say_why(tmp_path, shortcut):
    row = rows(grade_notebook(notebook(tmp_path, softmax=shortcut), cell_timeout=30))["00.3"]
    assert row.earned == 0 and row.status == "not allowed", row.message
    assert "not allowed" in row.message or "grader's own machinery" in row.message


def _lesson(tmp_path, root, notebook_name, replace: dict):
    """A lesson's solutions notebook with some functions' cells replaced."""
    nb = read_notebook(root / "solutions" / notebook_name)
    for cell in nb.cells:
        for name, source in replace.items():
            if cell.cell_type == "code" and f"def {name}(" in cell.source:
                cell.source = source
    path = tmp_path / notebook_name
    nbformat.write(nb, path)
    return path


def test_library_and_package_shortcuts_in_later_lessons(root, tmp_path):
    sdpa = ("import torch.nn.functional as F\n\ndef causal_attention(q, k, v):\n"
            "    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
            "    return out, masked_softmax(attention_scores(q, k), make_causal_mask(q.size(-2)))")
    report = grade_notebook(_lesson(tmp_path, root, "03_attention.ipynb", {"causal_attention": sdpa}))
    assert [r.earned > 0 for r in report.results] == [True, True, True, False], [r.message for r in report.results]
    assert "scaled_dot_product_attention" in report.results[3].message

    package = ("from minigpt2.attention import scaled_dot_product_attention, causal_mask\n\ndef causal_attention(q, "
               "k, v):\n    return scaled_dot_product_attention(q, k, v, causal_mask(q.size(-2)))")
    assert rows(grade_notebook(_lesson(tmp_path, root, "03_attention.ipynb",
                                       {"causal_attention": package})))["03.4"].earned == 0

    gelu = "import torch.nn.functional as F\n\ndef gelu(x):\n    return F.gelu(x, approximate='tanh')"
    mlp = "from minigpt2.layers import MLP\n\ndef mlp_forward(x, mlp):\n    return MLP.forward(mlp, x)"
    report = rows(grade_notebook(_lesson(tmp_path, root, "05_feed_forward.ipynb", {"gelu": gelu, "mlp_forward": mlp})))
    assert report["05.1"].earned == 0 and "gelu" in report["05.1"].message
    assert report["05.2"].earned == 0 and "MLP" in report["05.2"].message
    assert report["05.3"].passed

    layer_norm = ("import torch.nn.functional as F\n\ndef layer_norm(x, weight, bias, eps=1e-5):\n    return "
                  "F.layer_norm(x, x.shape[-1:], weight, bias, eps)")
    block = "from minigpt2.layers import Block\n\ndef pre_ln_block(x, block):\n    return Block.forward(block, x)"
    report = rows(grade_notebook(_lesson(tmp_path, root, "06_residual_layernorm.ipynb",
                                         {"layer_norm": layer_norm, "pre_ln_block": block})))
    assert report["06.1"].earned == 0 and "layer_norm" in report["06.1"].message
    assert report["06.2"].earned == 0 and "Block.forward" in report["06.2"].message
    assert report["06.3"].passed


def test_lesson_11_shortcuts_through_the_package_and_peft_score_zero(root, tmp_path):
    pooling = ("from minigpt2.finetune.classify import pool_last\n\n"
               "def last_token_logits(logits, lengths):\n    return pool_last(logits, lengths)")
    collate = ("from minigpt2.finetune.instruct import collate_instructions\n\n"
               "def collate_masked(examples, pad_id, end_id):\n"
               "    batch = collate_instructions(examples, pad_id=pad_id, end_id=end_id, max_length=10_000)\n"
               "    return batch.inputs, batch.targets")
    lora = ("import torch\nfrom minigpt2.lora import LoRALinear\n\ndef lora_forward(x, W, b, A, B, alpha):\n    layer "
            "= LoRALinear(torch.nn.Linear(W.size(1), W.size(0), dtype=W.dtype), A.size(0), alpha)\n    with "
            "torch.no_grad():\n        layer.base.weight.copy_(W); layer.base.bias.copy_(b); layer.lora_A.copy_(A); "
            "layer.lora_B.copy_(B)\n    return layer(x).detach()")
    merge = ("import importlib\nimport torch\n\n"  # no forbidden name in the source: only the watch sees it
             "def merge_lora_weight(W, A, B, alpha):\n"
             "    lora = importlib.import_module('minigpt2.' + 'lora')\n"
             "    model = torch.nn.Sequential(lora.LoRALinear(torch.nn.Linear(W.size(1), W.size(0), dtype=W.dtype),"
             " A.size(0), alpha))\n"
             "    with torch.no_grad():\n"
             "        model[0].base.weight.copy_(W); model[0].lora_A.copy_(A); model[0].lora_B.copy_(B)\n"
             "    return getattr(lora, 'merge_' + 'lora')(model)[0].weight.detach()")
    accuracy = ("def accuracy_over_batches(logit_batches, label_batches):\n"
                "    from sklearn.metrics import accuracy_score\n"
                "    return accuracy_score(torch.cat(label_batches), torch.cat(logit_batches).argmax(-1))")
    report = rows(grade_notebook(_lesson(tmp_path, root, "11_finetuning.ipynb", {
        "last_token_logits": pooling, "collate_masked": collate, "lora_forward": lora, "merge_lora_weight": merge,
        "accuracy_over_batches": accuracy})))
    for exercise_id, named in [("11.1", "pool_last"), ("11.2", "collate_instructions"), ("11.4", "LoRALinear"),
                               ("11.5", "minigpt2.lora"), ("11.6", "sklearn")]:
        row = report[exercise_id]
        assert row.earned == 0 and row.status == "not allowed" and "not allowed" in row.message, row.message
        assert named in row.message, row.message
    assert report["11.3"].passed


# --------------------------------------------------------------------------- hangs


@pytest.mark.parametrize("handler", ["except BaseException:", "except:"])
def test_a_loop_that_swallows_everything_is_ended_by_killing_the_kernel(tmp_path, handler):
    stubborn = (f"def softmax(x):\n    while True:\n        try:\n            sum(range(10**6))\n        {handler}\n "
                "           pass")
    start = time.perf_counter()
    report = grade_notebook(notebook(tmp_path, softmax=stubborn), cell_timeout=4)
    elapsed = time.perf_counter() - start
    row = rows(report)["00.3"]
    assert row.status == "timed out" and "4 s" in row.message
    assert rows(report)["00.1"].passed and rows(report)["00.2"].passed
    assert elapsed < 4 + 60, elapsed  # the limit, plus two kernel starts on a loaded machine


def test_a_top_level_loop_that_catches_keyboard_interrupt_is_a_note(tmp_path):
    loop = "while True:\n    try:\n        sum(range(10**6))\n    except KeyboardInterrupt:\n        pass"
    report = grade_notebook(notebook(tmp_path, loop), cell_timeout=4)
    assert report.score == report.max_score
    assert any("cell 1 (`while True:`) ran for more than 4 s" in note for note in report.notes), report.notes


@pytest.mark.parametrize("timeout", ["0", "-1"])
def test_a_time_limit_must_be_positive(tmp_path, timeout):
    done = run_cli(str(notebook(tmp_path)), "--timeout", timeout)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "positive" in done.stderr, done.stderr


# --------------------------------------------------------------------------- exits and memory


def test_exits_and_kills_leave_the_other_exercises_graded(tmp_path):
    exits = "import sys\n\ndef utf8_length(text):\n    sys.exit(0)"
    dies = "import os\n\ndef count_linear_params(n_in, n_out, bias=True):\n    os._exit(3)"
    bomb = "def softmax(x):\n    return torch.ones(2 * 1024**3 // 4)"  # 2 GiB, over the 1 GiB allowed
    kill = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    report = grade_notebook(notebook(tmp_path, kill, utf8_length=exits, count_linear_params=dies, softmax=bomb),
                            cell_timeout=30, memory_limit=1024**3)
    by_id = rows(report)
    assert by_id["00.1"].earned == 0 and "`utf8_length` raised SystemExit" in by_id["00.1"].message
    assert by_id["00.2"].earned == 0 and "`count_linear_params` ended the Python process" in by_id["00.2"].message
    assert by_id["00.3"].earned == 0 and "can't allocate memory" in by_id["00.3"].message, by_id["00.3"].message
    assert any(note.startswith("cell 1 (`import os, signal`) ended the kernel") for note in report.notes), report.notes


def test_an_exit_in_one_function_does_not_stop_the_others(tmp_path):
    dies = "import os\n\ndef utf8_length(text):\n    os.kill(os.getpid(), 9)"
    report = grade_notebook(notebook(tmp_path, utf8_length=dies), cell_timeout=30)
    assert [r.passed for r in report.results] == [False, True, True]


# --------------------------------------------------------------------------- the grader's own failures


def test_a_folder_and_bad_metadata_are_one_line_and_exit_2(tmp_path):
    done = run_cli(str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "folder" in done.stderr
    for meta in ({"lesson": "three"}, "not a dict", {"lesson": True}):
        path = tmp_path / "homework.ipynb"
        nbformat.write(new_notebook(metadata={**KERNELSPEC, "minigpt2": meta}), path)
        done = run_cli(str(path), "--json")
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert json.loads(done.stdout)["error"]


# --------------------------------------------------------------------------- names


def test_a_renamed_function_and_another_lessons_notebook_say_so(tmp_path, root):
    renamed = "def soft_max(x):\n    return x"
    row = rows(grade_notebook(notebook(tmp_path, softmax=renamed), cell_timeout=30))["00.3"]
    assert row.status == "missing" and "soft_max" in row.message and "rename" in row.message
    wrong = tmp_path / "03_attention.ipynb"
    wrong.write_bytes((root / "solutions" / "05_feed_forward.ipynb").read_bytes())
    done = run_cli(str(wrong))
    assert done.returncode == 2 and "lesson 05" in done.stderr, done.stderr
