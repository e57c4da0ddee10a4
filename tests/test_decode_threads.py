"""minigpt2.sampling.decode_threads: batch-1 generation on a CPU stays on one thread where a second
would only wait (small models, a busy machine), and the caller's thread count is left as it was."""

import pytest
import torch

from minigpt2 import sampling
from minigpt2.model import GPT, GPTConfig


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def small():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=16, vocab_size=65, n_layer=1, n_head=2, n_embd=32)).eval()


def test_a_small_model_decodes_on_one_thread_a_batch_keeps_them_all(two_threads):
    model = small()
    assert sampling.decode_threads(model, batch_size=1) == 1
    assert sampling.decode_threads(model, batch_size=4) == 2


def test_a_big_model_uses_every_thread_unless_the_machine_is_busy(two_threads, monkeypatch):
    model = small()
    monkeypatch.setattr(sampling, "SMALL_MODEL_PARAMS", 0)  # treat it as big
    monkeypatch.setattr(sampling.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(sampling.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert sampling.decode_threads(model, batch_size=1) == 2
    monkeypatch.setattr(sampling.os, "getloadavg", lambda: (6.0, 5.0, 4.0))
    assert sampling.decode_threads(model, batch_size=1) == 1


def test_generation_runs_on_the_chosen_threads_and_restores_the_callers(two_threads, monkeypatch):
    model = small()
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    idx = torch.tensor([[1, 2, 3]])
    out = model.generate(idx, 5, temperature=0)
    assert seen == [1] * 5 and torch.get_num_threads() == 2
    steps = sampling.generate_tokens(model, idx, 3, temperature=0)
    next(steps)
    assert torch.get_num_threads() == 2  # between two tokens the caller's count holds
    torch.testing.assert_close(out, torch.cat([idx, *sampling.generate_tokens(model, idx, 5, temperature=0)], 1))
