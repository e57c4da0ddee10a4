"""The pieces of the grade that learner code cannot reach: plain data back from the kernel (wire), the
forbidden calls watched and read in the source (forbid), and the properties the feedback names."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from minigpt2.grading import wire
from minigpt2.grading.core import CheckFailed, TimedOut, call, exercises_for, get_exercise, run_exercise
from minigpt2.grading.feedback import broken_property, expect_tensor
from minigpt2.grading.forbid import Watch, library, parse_cells, resolve, scan_source, scan_tampering


def trip(value):
    return wire.decode(json.loads(wire.dumps(wire.encode(value))))


# --------------------------------------------------------------------------- wire


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool, torch.uint8])
def test_tensors_travel_as_bytes_dtype_and_shape(dtype):
    x = (torch.arange(24).reshape(2, 3, 4) % 3).to(dtype)
    back = trip(x[:, 1:])  # not contiguous
    assert type(back) is torch.Tensor and back.dtype == dtype and torch.equal(back, x[:, 1:])
    assert torch.equal(trip(torch.tensor(2.5)), torch.tensor(2.5)) and trip(torch.empty(0, 3)).shape == (0, 3)


def test_plain_values_keep_their_kinds():
    value = {(1, 2): [3, 4.5, float("nan")], "s": {b"\xff", None}, 2**80: (True, "x", float("-inf"))}
    back = trip(value)
    assert back[(1, 2)][:2] == [3, 4.5] and math.isnan(back[(1, 2)][2])
    assert back["s"] == {b"\xff", None} and back[2**80] == (True, "x", float("-inf"))
    assert trip(range(0, 9, 3)) == [0, 3, 6]


def test_subclasses_lose_their_behaviour_on_the_way():
    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.allclose, torch.equal):
                return True
            return super().__torch_function__(func, types, args, kwargs or {})

    number = trip(Yes(0))
    assert type(number) is int and number != 7
    tensor = trip(torch.zeros(3).as_subclass(Liar))
    assert type(tensor) is torch.Tensor and not torch.allclose(tensor, torch.ones(3))


def test_anything_else_is_an_opaque_stand_in_named_like_its_type():
    back = trip((i for i in range(3)))
    assert isinstance(back, wire.Opaque) and type(back).__name__ == "generator" and back != back.__class__("x", "y")


# --------------------------------------------------------------------------- forbidden calls, while running


@pytest.mark.parametrize("shortcut", [
    lambda x: torch.softmax(x, -1), lambda x: F.softmax(x, -1), lambda x: x.softmax(-1),
    lambda x: torch.nn.Softmax(-1)(x), lambda x: getattr(torch, "soft" + "max")(x, -1),
])
def test_the_watch_sees_functional_method_and_module_forms(shortcut):
    with Watch(get_exercise("00.3").forbid) as watch:
        shortcut(torch.randn(3, 4))
    assert watch.hit is not None and "softmax" in watch.hit


def test_the_watch_sees_the_packages_own_functions_and_leaves_the_rest():
    with Watch(get_exercise("05.1").forbid) as watch:
        x = torch.randn(5)
        0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert watch.hit is None
    from minigpt2.layers import gelu

    with Watch(get_exercise("05.1").forbid) as watch:
        gelu(torch.randn(5))
    assert watch.hit == "minigpt2.layers.gelu"


def test_every_declared_forbidden_path_resolves():
    for lesson in range(12):
        for ex in exercises_for(f"{lesson:02d}"):
            for path in ex.forbid:
                if library(path) is None:  # a whole library ("peft.*") need not be installed
                    resolve(path)


def test_a_whole_library_is_forbidden_in_the_source_and_while_running():
    forbid = get_exercise("11.4").forbid
    source = "from peft.tuners import lora\n\ndef lora_forward(x, W, b, A, B, alpha):\n    return lora.Linear(x)"
    assert scan_source(cells(source), "lora_forward", forbid).what == "peft.*"
    assert scan_source(cells("import sklearn.metrics as m\n\ndef accuracy_over_batches(ls, ys):\n    return "
                             "m.accuracy_score(ls, ys)"),
                       "accuracy_over_batches", get_exercise("11.6").forbid).what == "sklearn.*"
    peft = pytest.importorskip("peft")

    with Watch(forbid) as watch:
        torch.zeros(2) @ torch.ones(2)  # the learner's own tensor code is not peft's
    assert watch.hit is None
    with Watch(forbid) as watch:
        peft.LoraConfig(r=1)  # its __post_init__ runs code in peft's folder
    assert watch.hit == "peft.*"


def test_the_instant_feedback_says_so_too():
    result = run_exercise(get_exercise("00.3"), lambda x: torch.softmax(x, dim=-1))
    assert result.status == "not allowed" and result.earned == 0 and "`torch.softmax`" in result.message


def test_a_class_is_built_and_called_under_the_watch():
    from minigpt2.grading.core import instance_call

    class Mine(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def forward(self, x):
            return torch.softmax(x, -1) if self.n < 0 else x * self.n

    assert torch.equal(call(instance_call, Mine, (3,), torch.ones(2)), torch.full((2,), 3.0))
    from minigpt2.grading.core import _RUNNING

    token = _RUNNING.set(get_exercise("00.3"))
    try:
        with pytest.raises(CheckFailed, match="not allowed"):
            call(instance_call, Mine, (-1,), torch.ones(2))
    finally:
        _RUNNING.reset(token)


def test_a_time_out_is_a_type_not_a_message():
    def spin():
        while True:
            pass

    with pytest.raises(TimedOut):
        call(spin, time_limit_s=0.3)


# --------------------------------------------------------------------------- forbidden calls, in the source


def cells(*sources):
    return parse_cells(list(enumerate(sources)))


@pytest.mark.parametrize("source, found", [
    ("import torch.nn.functional as nnf\ndef softmax(x):\n    return nnf.softmax(x, -1)",
     "torch.nn.functional.softmax"),
    ("from torch import softmax as s\ndef softmax(x):\n    return s(x, -1)", "torch.softmax"),
    ("def helper(x):\n    return x.softmax(-1)\ndef softmax(x):\n    return helper(x)", "torch.Tensor.softmax"),
    ("import torch\ndef softmax(x):\n    return getattr(torch, 'softmax')(x, -1)", "torch.softmax"),
    ("import torch\nsoftmax = torch.softmax", "torch.softmax"),
])
def test_the_source_is_read_through_aliases_helpers_and_getattr(source, found):
    finding = scan_source(cells("%matplotlib inline", source), "softmax", get_exercise("00.3").forbid)
    assert finding is not None and finding.what == found and finding.cell == 1


def test_a_re_exported_class_method_is_the_same_call():
    source = "from minigpt2.model import Block\ndef pre_ln_block(x, block):\n    return Block.forward(block, x)"
    import minigpt2.model  # noqa: F401 -- the grader has it loaded; the scan imports nothing new

    assert scan_source(cells(source), "pre_ln_block",
                       get_exercise("06.2").forbid).what == "minigpt2.layers.Block.forward"


def test_the_solution_and_unrelated_names_are_not_flagged():
    source = ("import torch\ndef gelu(x):\n    return 0.5 * x * (1 + torch.tanh(0.79788 * (x + 0.044715 * x**3)))\n"
              "def mlp_forward(x, mlp):\n    return mlp.c_proj(gelu(mlp.c_fc(x)))")
    assert scan_source(cells(source), "gelu", get_exercise("05.1").forbid) is None
    assert scan_source(cells(source), "mlp_forward", get_exercise("05.2").forbid) is None


@pytest.mark.parametrize("source", [
    "import sys\nsys.setprofile(None)", "import torch\ntorch.overrides._pop_mode()",
    "from minigpt2.grading.core import grade_namespace", "import minigpt2.grading.lesson00 as l\nl._reference_softmax",
    "exec('import torch')",
])
def test_reaching_into_the_graders_machinery_is_found(source):
    assert scan_tampering(cells(source)) is not None
    assert scan_tampering(cells("from minigpt2.grading import check\nimport torch")) is None


# --------------------------------------------------------------------------- properties the feedback names


def _weights(T=4):
    return torch.softmax(torch.randn(T, T, dtype=torch.float64).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(),
                                                                             float("-inf")), -1)


def test_rows_that_do_not_sum_to_one_the_wrong_axis_and_the_whole_tensor():
    w = _weights()
    assert "row" in broken_property(w * 0.5, w) and "adds up to" in broken_property(w * 0.5, w)
    columns = w.T / w.T.sum(-2, keepdim=True)
    assert "COLUMN" in broken_property(columns, w)
    assert "whole tensor" in broken_property(w / w.sum(), w)


def test_a_future_position_with_weight():
    w = _weights()
    leaky = torch.softmax(torch.randn(4, 4, dtype=torch.float64), -1)
    assert "FUTURE" in broken_property(leaky, w)


def test_a_shape_broadcast_by_accident():
    with pytest.raises(CheckFailed, match="broadcast by accident"):
        expect_tensor(torch.zeros(5, 5), torch.zeros(5))


def test_masking_by_multiplication_and_normalising_the_whole_tensor_are_named():
    def masked_by_multiplying(scores, mask):
        return torch.softmax(scores * mask, dim=-1) * mask

    result = run_exercise(get_exercise("03.3"), masked_by_multiplying)
    assert "masked by multiplying" in result.message

    def whole_tensor(x, weight, bias, eps=1e-5):
        return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * weight + bias

    assert "whole tensor" in run_exercise(get_exercise("06.1"), whole_tensor).message
