"""Checks of lesson 02 (embeddings and data): token + position embeddings, sinusoidal
encodings, shifted windows, every window that fits."""

from __future__ import annotations

import torch

from minigpt2.data import num_windows, window
from minigpt2.grading.core import CheckFailed, call, exercise
from minigpt2.grading.feedback import Mistake, expect_equal, expect_tensor
from minigpt2.i18n.messages import _


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- 02.1


@exercise("02.1", "Token and position embeddings", points=1, name="embed")
def check_embed(embed):
    # (B, T, vocab_size, block_size, n_embd); a vocabulary smaller than block_size lets a mix-up of
    # token ids and positions run, so that it can be named instead of crashing
    for seed, (B, T, V, block_size, C) in enumerate([(2, 5, 10, 16, 4), (1, 7, 65, 8, 6), (3, 3, 12, 20, 5)]):
        g = _generator(seed)
        ids = torch.randint(V, (B, T), generator=g)
        wte, wpe = torch.randn(V, C, generator=g), torch.randn(block_size, C, generator=g)
        got = call(embed, ids.clone(), wte.clone(), wpe.clone())
        tokens, positions = wte[ids], wpe[:T]  # (B, T, C), (T, C)
        mistakes = [
            Mistake(tokens, _("you return the token embeddings only: add the position embeddings wpe[:T].")),
            Mistake(torch.cat([tokens, positions.expand(B, T, C)], dim=-1), _("you concatenated token and position "
                    "vectors; GPT-2 ADDS them, so the result keeps n_embd channels.")),
        ]
        if V <= block_size:
            mistakes.append(Mistake(tokens + wpe[ids], _("you looked up the position table with the token ids; the "
                    "position of a token is its index in the sequence: wpe[torch.arange(T)].")))
        expect_tensor(
            got,
            tokens + positions,
            what=_("embed(ids of shape {shape}, wte {wte_shape}, wpe {wpe_shape})").format(
                shape=(B, T), wte_shape=tuple(wte.shape), wpe_shape=tuple(wpe.shape)),
            mistakes=mistakes,
        )


# --------------------------------------------------------------------------- 02.2


def _sinusoids(T: int, C: int, exponent_step: int = 2, swap: bool = False) -> torch.Tensor:
    pos = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    i = torch.arange(C // 2, dtype=torch.float64)
    angle = pos / 10000.0 ** (exponent_step * i / C)  # (T, C/2)
    first, second = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    return torch.stack([first, second], dim=-1).reshape(T, C)  # channels 2i, 2i+1 interleaved


@exercise("02.2", "Sinusoidal position encodings", points=2, name="sinusoidal_positions")
def check_sinusoidal_positions(sinusoidal_positions):
    for T, C in [(10, 8), (33, 16), (5, 64)]:
        expected = _sinusoids(T, C)
        got = call(sinusoidal_positions, T, C)
        if isinstance(got, torch.Tensor) and got.is_floating_point():
            got = got.double()
        sin_half, cos_half = expected[:, 0::2], expected[:, 1::2]
        expect_tensor(
            got,
            expected,
            what=f"sinusoidal_positions({T}, {C})",
            atol=1e-5,
            mistakes=[
                Mistake(_sinusoids(T, C, swap=True), _("sin and cos are swapped: even channels (0, 2, 4, …) take the "
                        "sine, odd channels the cosine.")),
                Mistake(_sinusoids(T, C, exponent_step=1), _("the frequencies are off: channel pair i uses 10000 ** "
                        "(2i / C) — the exponent steps by 2/C per pair, i.e. torch.arange(0, C, 2) / C.")),
                Mistake(torch.cat([sin_half, cos_half], dim=-1), _("you put all the sines first, then all the "
                        "cosines; interleave them: pe[:, 0::2] = sin, pe[:, 1::2] = cos.")),
                Mistake(expected.T, _("the result is transposed: one ROW per position, shape (T, C).")),
            ],
        )


# --------------------------------------------------------------------------- 02.3


def _stream(seed: int, n: int) -> torch.Tensor:
    return torch.randperm(1000, generator=_generator(seed))[:n]  # distinct ids: every slice is recognisable


@exercise("02.3", "Shifted windows", points=1, name="make_window", forbid=("minigpt2.data.window",
                                                                           "minigpt2.data.get_batch"))
def check_make_window(make_window):
    for seed, (n, start, T) in enumerate([(50, 3, 8), (20, 11, 8), (9, 1, 4), (30, 0, 5)]):
        tokens = _stream(seed, n)
        got = call(make_window, tokens.clone(), start, T)
        what = f"make_window(tokens, start={start}, block_size={T})"
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(_("{what} should return a pair (x, y); it returns {got_type}.").format(
                what=what, got_type=type(got).__name__))
        x, y = got
        ref_x, ref_y = window(tokens, start, T)
        x_mistakes = [
            Mistake(tokens[start : start + T + 1], _("x has block_size + 1 tokens; the input is the first block_size "
                    "of the window, tokens[start : start + block_size].")),
            Mistake(ref_y, _("x and y are swapped: x is the input, tokens[start : start + block_size]; y is the same "
                    "window one token later.")),
        ]
        expect_tensor(x, ref_x, what=_("x of {what}").format(what=what), mistakes=x_mistakes)
        y_mistakes = [
            Mistake(ref_x, _("targets not shifted: y equals x, so the model would learn to copy its input. y[t] must "
                    "be the token AFTER x[t]: tokens[start + 1 : start + block_size + 1].")),
            Mistake(tokens[start + 2 : start + T + 2], _("targets shifted by two: y starts at start + 1.")),
            Mistake(tokens[start + 1 : start + T + 2], _("y has block_size + 1 tokens; it should have block_size, "
                    "like x.")),
        ]
        if start >= 1:
            y_mistakes.append(Mistake(tokens[start - 1 : start - 1 + T], _("targets shifted the wrong way: y must be "
                    "the window one token LATER (start + 1), not earlier.")))
        expect_tensor(y, ref_y, what=_("y of {what}").format(what=what), mistakes=y_mistakes)


# --------------------------------------------------------------------------- 02.4


@exercise("02.4", "Every window that fits", points=2, name="window_starts", forbid=("minigpt2.data.num_windows",))
def check_window_starts(window_starts):
    for n, T, stride in [(20, 4, 4), (21, 4, 4), (10, 3, 1), (100, 8, 8), (13, 5, 3), (6, 5, 2)]:
        expected = list(range(0, num_windows(n, T), stride))
        got = call(window_starts, n, T, stride)
        if not isinstance(got, list) and hasattr(got, "__iter__"):
            got = list(got)
        mistakes = [
            Mistake(list(range(0, n - T + 1, stride)), _("your last window crosses the end: a window starting at "
                    "n_tokens - block_size needs a target token at index n_tokens, one past the end. The last "
                    "start is n_tokens - block_size - 1.")),
            Mistake(list(range(0, n - T - 1, stride)), _("you miss the last window: a start of n_tokens - block_size "
                    "- 1 still fits (its target ends on the last token).")),
            Mistake(list(range(0, n - T)), _("you ignored the stride: consecutive starts are `stride` apart.")),
            Mistake(list(range(0, n, stride)), _("windows must end inside the stream: a start must leave room for "
                    "block_size + 1 tokens.")),
        ]
        expect_equal(got, expected, what=f"window_starts(n_tokens={n}, block_size={T}, stride={stride})",
                     mistakes=[m for m in mistakes if m.output != expected])
