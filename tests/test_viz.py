"""minigpt2.viz: heatmaps, head statistics, the attention widget and explorer — all headless."""

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from minigpt2.viz import attention_entropy, attention_grid, attention_heatmap, display_token, head_scores, top_heads  # noqa: E402
from minigpt2.viz.heatmap import MASKED_COLOR, label_ticks  # noqa: E402


def causal_weights(*shape, seed=0):
    """Random causal attention weights of shape (*shape, T, T); rows sum to 1."""
    g = torch.Generator().manual_seed(seed)
    T = shape[-1]
    scores = torch.randn(*shape[:-1], T, T, generator=g)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- token labels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "piece, label",
    [(" the", "·the"), ("\n", "↵"), ("\n\n", "↵↵"), ("\t", "⇥"), ("", "∅"), ("a\x00", "a\\x00"),
     ("Hello", "Hello"), ("antidisestablishment", "antidisesta…")],
)
def test_display_token_makes_hidden_characters_visible(piece, label):
    assert display_token(piece) == label


def test_label_ticks_thin_out_when_labels_would_not_fit():
    ticks, size = label_ticks(8, inches=4.0)
    assert ticks == list(range(8)) and size == 10.0
    ticks, size = label_ticks(200, inches=4.0)
    assert size == 6.0 and 1 < ticks[1] and len(ticks) < 200 and ticks[0] == 0


# --- one head ----------------------------------------------------------------------------


def test_heatmap_puts_queries_on_rows_and_blanks_the_future():
    T = 6
    w = causal_weights(T)
    tokens = ["A", " cat", " sat", "\n", " on", "."]
    ax = attention_heatmap(w, tokens, title="layer 0 · head 0")
    image = ax.images[0]
    data = image.get_array()
    np.testing.assert_allclose(data.data, w.numpy(), rtol=1e-6)  # rows = queries, not transposed
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    np.testing.assert_array_equal(data.mask, future)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "·cat", "·sat", "↵", "·on", "."]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "·cat", "·sat", "↵", "·on", "."]
    assert ax.get_title() == "layer 0 · head 0"
    assert ax.get_ylabel().startswith("query") and ax.get_xlabel().startswith("key")


def test_masked_cells_look_blank_not_like_a_zero_weight():
    w = torch.eye(4)  # hard attention: allowed cells with weight exactly 0 below the diagonal
    image = attention_heatmap(w, list("abcd")).images[0]
    rgba = image.to_rgba(image.get_array())  # (T, T, 4), what is painted
    blank = mcolors.to_rgba(MASKED_COLOR)
    np.testing.assert_allclose(rgba[0, 3], blank)  # future cell
    zero = rgba[3, 0]  # an allowed cell the head ignores
    assert not np.allclose(zero, blank)
    assert not image.get_array().mask[3, 0]


def test_non_finite_cells_are_blank_and_causal_false_shows_everything():
    w = torch.full((3, 3), 1 / 3)
    w[2, 1] = float("nan")
    mask = attention_heatmap(w, None, causal=False).images[0].get_array().mask
    expected = np.zeros((3, 3), dtype=bool)
    expected[2, 1] = True
    np.testing.assert_array_equal(mask, expected)


def test_heatmap_accepts_tensors_with_grad_arrays_and_lists_and_draws_on_a_given_axes():
    fig, ax = plt.subplots()
    w = causal_weights(3).requires_grad_()
    assert attention_heatmap(w, None, ax=ax, colorbar=False) is ax
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    attention_heatmap(w.detach().numpy(), ["a", "b", "c"])
    attention_heatmap(w.tolist(), ["a", "b", "c"])


def test_vmax_none_stretches_the_colours_to_the_head():
    w = causal_weights(5) * 0.5
    assert attention_heatmap(w, None).images[0].norm.vmax == 1.0
    assert attention_heatmap(w, None, vmax=None).images[0].norm.vmax == pytest.approx(w.max().item())


def test_heatmap_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match=r"attention_grid"):
        attention_heatmap(causal_weights(2, 4), list("abcd"))
    with pytest.raises(ValueError, match=r"one token per position"):
        attention_heatmap(causal_weights(4), list("abc"))
    with pytest.raises(TypeError, match=r"list of token pieces"):
        attention_heatmap(causal_weights(4), "abcd")


def test_labels_with_dollars_and_arrows_render_without_math_or_missing_glyphs():
    ax = attention_heatmap(causal_weights(4), ["$x", "$", "\n\t", " y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph … missing from font" or a mathtext error would raise
        ax.figure.canvas.draw()
    assert ax.get_xticklabels()[0].get_text() == r"\$x"


# --- a grid of heads ---------------------------------------------------------------------------


def test_grid_draws_every_head_of_the_chosen_layer():
    layers = [causal_weights(6, 5, seed=s) for s in range(3)]  # 3 layers of (n_head=6, T=5, T)
    fig = attention_grid(layers, list("abcde"), layer=2)
    heads = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heads] == [f"head {h}" for h in range(6)]
    for h, ax in enumerate(heads):
        np.testing.assert_allclose(ax.images[0].get_array().data, layers[2][h].numpy(), rtol=1e-6)
    assert fig._suptitle.get_text() == "layer 2"


def test_grid_takes_one_layer_a_stacked_tensor_or_the_models_batch_of_one():
    w = causal_weights(2, 4, 7)  # (n_layer, n_head, T, T)
    for weights, layer in [(w[1], None), (w, 1), ([x[None] for x in w], 1)]:
        fig = attention_grid(weights, None, layer=layer)
        np.testing.assert_allclose(fig.axes[3].images[0].get_array().data, w[1, 3].numpy(), rtol=1e-6)
        plt.close(fig)


def test_grid_hides_spare_cells_and_drops_labels_for_long_texts():
    fig = attention_grid(causal_weights(7, 20), None)  # 7 heads → 2 rows of 4, one spare
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert len(visible) == 7
    assert all(not ax.get_xticks().size for ax in visible)


def test_grid_bad_input_says_what_to_do():
    layers = [causal_weights(2, 4) for _ in range(2)]
    with pytest.raises(ValueError, match=r"pass layer=0…1"):
        attention_grid(layers, None)
    with pytest.raises(IndexError, match=r"layer 5 is out of range"):
        attention_grid(layers, None, layer=5)
    with pytest.raises(ValueError, match=r"batch of 3 sequences"):
        attention_grid([causal_weights(3, 2, 4)], None, layer=0)
    with pytest.raises(ValueError, match=r"\(n_head, T, T\)"):
        attention_grid(causal_weights(4), None)


# --- numbers per head ---------------------------------------------------------------------------


def test_entropy_matches_torch_categorical_row_by_row():
    w = causal_weights(3, 4, 9)  # (n_layer, n_head, T, T)
    expected = torch.distributions.Categorical(probs=w.double()).entropy().mean(-1)  # (3, 4)
    torch.testing.assert_close(attention_entropy(w), expected)
    torch.testing.assert_close(attention_entropy(list(w)), expected)  # a list over layers
    torch.testing.assert_close(attention_entropy(w[0, 0]), expected[0, 0])


def test_entropy_of_focused_and_uniform_heads():
    T = 5
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    assert attention_entropy(torch.eye(T)).item() == 0.0
    assert attention_entropy(uniform).item() == pytest.approx(sum(math.log(i + 1) for i in range(T)) / T)


def shifted_head(T, offset):
    """A head that puts all weight on key i - offset (or on key 0 when that is before the start)."""
    w = torch.zeros(T, T)
    for i in range(T):
        w[i, max(i - offset, 0)] = 1.0
    return w


def test_head_scores_recognise_previous_first_and_current_token_heads():
    T = 6
    first = torch.zeros(T, T)
    first[:, 0] = 1.0
    heads = torch.stack([shifted_head(T, 1), first, torch.eye(T)])  # (3, T, T)
    s = head_scores(heads)
    torch.testing.assert_close(s["previous_token"], torch.tensor([1.0, 1 / (T - 1), 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["first_token"], torch.tensor([1 / (T - 1), 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["current_token"], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert "induction" not in s


def test_head_scores_find_induction_and_duplicate_token_heads_on_a_repeated_sequence():
    ids = [7, 3, 9, 5, 7, 3, 9, 5]  # A B C D A B C D
    T = len(ids)
    induction = shifted_head(T, 3)  # second A (i=4) looks at B (i=1): the token after the first A
    duplicate = shifted_head(T, 4)  # second A looks at the first A
    s = head_scores(torch.stack([induction, duplicate]), ids=ids)
    torch.testing.assert_close(s["induction"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["duplicate_token"], torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_repeat_scores_are_nan_without_repeats_and_bad_ids_are_named():
    s = head_scores(causal_weights(2, 4), ids=[1, 2, 3, 4])
    assert torch.isnan(s["induction"]).all() and torch.isnan(s["duplicate_token"]).all()
    with pytest.raises(ValueError, match=r"one token id per position"):
        head_scores(causal_weights(4), ids=[1, 2])
    with pytest.raises(ValueError, match=r"T >= 2"):
        head_scores(torch.ones(1, 1))


def test_top_heads_ranks_best_first_and_skips_nan():
    score = torch.tensor([[0.1, 0.9, float("nan")], [0.5, 0.2, 0.95]])
    assert top_heads(score, k=3) == [(1, 2, pytest.approx(0.95)), (0, 1, pytest.approx(0.9)),
                                     (1, 0, pytest.approx(0.5))]
    with pytest.raises(ValueError, match=r"\(n_layer, n_head\)"):
        top_heads(torch.zeros(3))


# --- the widget ----------------------------------------------------------------------------------

from types import SimpleNamespace  # noqa: E402

from minigpt2.chartokenizer import CharTokenizer  # noqa: E402
from minigpt2.viz import AttentionWidget  # noqa: E402
from minigpt2.viz.sources import FixedAttention, ModelAttention  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz ,.:\n"


class FakeGPT(torch.nn.Module):
    """Speaks minigpt2.GPT's attention API with weights that are easy to tell apart:
    in layer l, head h, query i puts 0.75 on key max(i - h - l, 0) and spreads the rest evenly."""

    def __init__(self, n_layer=2, n_head=3, block_size=16):
        super().__init__()
        self.config = SimpleNamespace(n_layer=n_layer, n_head=n_head, block_size=block_size)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def attention_weights(self, idx):
        self.calls.append((idx.clone(), self.training, torch.is_grad_enabled()))
        B, T = idx.shape
        return [torch.stack([self.head(T, h + layer) for h in range(self.config.n_head)]).expand(B, -1, -1, -1)
                for layer in range(self.config.n_layer)]  # n_layer × (B, n_head, T, T)

    @staticmethod
    def head(T, offset):
        allowed = torch.tril(torch.ones(T, T))
        w = 0.25 * allowed / allowed.sum(-1, keepdim=True)
        w[torch.arange(T), (torch.arange(T) - offset).clamp(min=0)] += 0.75
        return w


def fake_widget(text="hello world", cls=AttentionWidget, **kwargs):
    model = FakeGPT(**kwargs)
    return cls.from_model(model, CharTokenizer(ALPHABET), text=text), model


def is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def test_widget_draws_the_first_head_of_the_text_with_stable_control_names():
    w, _ = fake_widget("hello world")
    assert [c.description for c in (w.layer, w.head, w.text, w.view)] == ["layer", "head", "text", "view"]
    assert list(w.layer.options) == [0, 1] and list(w.head.options) == [0, 1, 2]
    assert is_png(w.image.value) and w.error is None
    assert w.current_tokens == list("hello world")
    np.testing.assert_allclose(w.current_weights, FakeGPT.head(11, 0).numpy(), rtol=1e-6)
    assert "11 tokens" in w.message.value


def test_changing_the_head_or_the_layer_changes_the_picture_and_its_data():
    w, _ = fake_widget("hello world")
    before_png, before = w.image.value, w.current_weights
    w.head.value = 2
    assert w.image.value != before_png
    assert not np.allclose(w.current_weights, before)
    np.testing.assert_allclose(w.current_weights, FakeGPT.head(11, 2).numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.figure.axes[0].images[0].get_array().data, w.current_weights)
    assert w.figure.axes[0].get_title() == "layer 0, head 2"
    head_png = w.image.value
    w.layer.value = 1
    assert w.image.value != head_png
    np.testing.assert_allclose(w.current_weights, FakeGPT.head(11, 3).numpy(), rtol=1e-6)


def test_typing_a_new_text_recomputes_and_relabels():
    w, model = fake_widget("hello world")
    w.text.value = "to be\nor not"
    assert w.current_tokens == list("to be\nor not")
    assert w.current_weights.shape == (12, 12)
    labels = [t.get_text() for t in w.figure.axes[0].get_yticklabels()]
    assert labels == [display_token(c) for c in "to be\nor not"]
    assert model.calls[-1][0].tolist() == [CharTokenizer(ALPHABET).encode("to be\nor not")]


def test_the_all_heads_view_draws_the_layer_and_disables_the_head_selector():
    w, _ = fake_widget("abcdef")
    w.view.value = "all heads"
    assert w.head.disabled and w.current_weights.shape == (3, 6, 6)
    grid_png = w.image.value
    w.layer.value = 1
    assert w.image.value != grid_png
    np.testing.assert_allclose(w.current_weights[0], FakeGPT.head(6, 1).numpy(), rtol=1e-6)
    heads = [ax for ax in w.figure.axes if ax.get_title().startswith("head")]
    assert len(heads) == 3 and w.figure._suptitle.get_text() == "layer 1"
    w.view.value = "one head"
    assert not w.head.disabled and w.current_weights.shape == (6, 6)


def test_a_text_longer_than_the_context_gives_a_message_not_a_traceback():
    w, model = fake_widget("short", block_size=8)
    w.text.value = "much too long for it"
    assert "20 tokens" in w.error and "at most 8" in w.error and "block_size" in w.error
    assert "Shorten it by 12 tokens" in w.message.value
    assert w.image.layout.display == "none" and w.current_weights is None and w.figure is None
    assert model.calls[-1][0].shape == (1, 5)  # the model never saw the long text
    w.text.value = "fits"
    assert w.error is None and w.image.layout.display is None and w.current_tokens == list("fits")


def test_empty_text_and_untokenizable_text_give_messages():
    w, _ = fake_widget("ok")
    w.text.value = ""
    assert "Type some text" in w.message.value
    w.text.value = "ÉCLAIR"  # not in the CharTokenizer's alphabet
    assert "Could not tokenize" in w.error and "not in this tokenizer" in w.error
    w.text.value = "ok again"
    assert w.error is None


def test_a_model_that_fails_gives_a_message():
    class Broken(FakeGPT):
        def attention_weights(self, idx):
            raise RuntimeError("out of memory")

    w = AttentionWidget.from_model(Broken(), CharTokenizer(ALPHABET), text="abc")
    assert "RuntimeError: out of memory" in w.error and w.current_weights is None


def test_a_source_whose_weights_do_not_fit_the_tokens_gets_a_message():
    class Mismatched:
        def tokenize(self, text):
            return list(text), list(range(len(text)))

        def attention(self, ids):
            return [causal_weights(2, len(ids) + 1)]

    w = AttentionWidget(Mismatched(), text="abc")
    assert "(n_head, 3, 3)" in w.error and w.current_weights is None


def test_the_model_source_uses_eval_mode_without_grad_and_restores_training():
    source = ModelAttention(FakeGPT(), CharTokenizer(ALPHABET))
    source.model.train()
    source.attention([1, 2, 3])
    _, training, grad = source.model.calls[-1]
    assert (training, grad) == (False, False) and source.model.training


def test_fixed_weights_widget_switches_heads_and_keeps_its_text():
    layers = [causal_weights(4, 5, seed=s) for s in range(3)]
    tokens = ["The", " cat", " sat", " on", "."]
    w = AttentionWidget(layers, tokens=tokens, layer=2, head=1)
    assert w.text.disabled and w.text.value == "The cat sat on."
    assert (w.layer.value, w.head.value) == (2, 1)
    np.testing.assert_allclose(w.current_weights, layers[2][1].numpy(), rtol=1e-6)
    png = w.image.value
    w.head.value = 3
    assert w.image.value != png
    np.testing.assert_allclose(w.current_weights, layers[2][3].numpy(), rtol=1e-6)
    assert w.current_tokens == tokens


def test_any_object_with_tokenize_and_attention_is_a_source():
    class Words:
        max_tokens = None

        def tokenize(self, text):
            pieces = text.split()
            return pieces, list(range(len(pieces)))

        def attention(self, ids):
            return [causal_weights(2, len(ids))]

    w = AttentionWidget(Words(), text="one two three")
    assert w.current_tokens == ["one", "two", "three"] and list(w.head.options) == [0, 1]
    w.text.value = "one two"
    assert w.current_weights.shape == (2, 2)


def test_bad_sources_say_what_to_do():
    with pytest.raises(TypeError, match=r"from_model"):
        AttentionWidget(FakeGPT())
    with pytest.raises(ValueError, match=r"need their tokens"):
        AttentionWidget([causal_weights(2, 3)])
    with pytest.raises(ValueError, match=r"3 token pieces"):
        FixedAttention([causal_weights(2, 3)], ["a", "b"])
    with pytest.raises(TypeError, match=r"attention_weights"):
        ModelAttention(object(), CharTokenizer(ALPHABET))


def test_the_widget_displays_as_an_ipywidget_with_a_short_text_form():
    w, _ = fake_widget("abc")
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == "AttentionWidget(3 tokens, layer 0, head 0)"


# --- the explorer --------------------------------------------------------------------------------

from minigpt2.viz import AttentionExplorer  # noqa: E402


def explorer(text="hello world", **kwargs):
    return fake_widget(text, cls=AttentionExplorer, **kwargs)[0]


def outlines(e, head=0):
    """(x, y, width, height) of the row and column outlines on a heatmap of the explorer's figure."""
    row, column = e.figure.axes[head].patches[:2]
    return [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in (row, column)]


def test_explorer_starts_on_the_grid_with_the_last_token_selected():
    e = explorer("hello world")
    assert [c.description for c in (e.layer, e.head, e.view, e.token, e.text)] == ["layer", "head", "view", "token",
                                                                                   "text"]
    assert e.view.value == "all heads" and not e.head.disabled  # the head picks the bar charts
    assert e.current_weights.shape == (3, 11, 11)
    assert [label for label, _ in e.token.options][:2] == ["0: h", "1: e"] and e.token.options[5] == ("5: ·", 5)
    assert e.token.value == 10 and is_png(e.bars.value)
    np.testing.assert_allclose(e.attends_to, FakeGPT.head(11, 0)[10].numpy(), rtol=1e-6)
    np.testing.assert_allclose(e.attended_by, FakeGPT.head(11, 0)[10:, 10].numpy(), rtol=1e-6)


def test_selecting_a_token_moves_its_outlines_and_redraws_its_bars():
    e = explorer("hello world")
    image, bars = e.image.value, e.bars.value
    e.token.value = 4
    assert e.image.value != image and e.bars.value != bars
    w = FakeGPT.head(11, 0).numpy()
    np.testing.assert_allclose(e.attends_to, w[4, :5], rtol=1e-6)  # query 4 over keys 0…4
    np.testing.assert_allclose(e.attended_by, w[4:, 4], rtol=1e-6)  # queries 4…10 on key 4
    assert outlines(e, head=2) == [(-0.5, 3.5, 5, 1), (3.5, 3.5, 1, 7)]
    top, bottom = e._bar_axes
    np.testing.assert_allclose([b.get_height() for b in top.patches], [*w[4, :5], 0, 0, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose([b.get_height() for b in bottom.patches], [0, 0, 0, 0, *w[4:, 4]], rtol=1e-6)
    assert "token 4 'o'" in e.message.value.replace("&#x27;", "'")


def test_the_widgets_pictures_have_twice_the_pixels_they_are_shown_at():
    import io

    import PIL.Image

    e = explorer("hello world")
    for image, fig in ((e.image, e.figure), (e.bars, e._bar_axes[0].figure)):
        width, height = PIL.Image.open(io.BytesIO(image.value)).size
        assert int(image.width) == round(fig.get_figwidth() * 80)  # shown at the figure's inches × 80 CSS px
        assert width == 2 * int(image.width) and height == round(2 * 80 * fig.get_figheight())


def test_the_head_and_layer_pick_the_bars_and_the_framed_grid_cell():
    e = explorer("hello world", n_head=4)
    bars = e.bars.value
    e.head.value = 3
    assert e.bars.value != bars
    np.testing.assert_allclose(e.attends_to, FakeGPT.head(11, 3)[10].numpy(), rtol=1e-6)
    widths = [e.figure.axes[h].spines["left"].get_linewidth() for h in range(4)]
    assert widths[3] > widths[0] == widths[1] == widths[2]
    e.layer.value = 1
    np.testing.assert_allclose(e.attends_to, FakeGPT.head(11, 4)[10].numpy(), rtol=1e-6)
    assert "(layer 1, head 3)" in e._bar_axes[0].get_title()


def test_the_one_head_view_outlines_the_token_on_the_big_heatmap():
    e = explorer("abcdef")
    e.view.value = "one head"
    e.token.value = 2
    assert e.current_weights.shape == (6, 6) and outlines(e) == [(-0.5, 1.5, 3, 1), (1.5, 1.5, 1, 4)]


def test_a_new_text_brings_its_own_tokens_and_keeps_the_selection_when_it_can():
    e = explorer("hello world")
    e.token.value = 3
    e.text.value = "to be or not"
    assert [label for label, _ in e.token.options] == [f"{i}: {display_token(c)}" for i, c in enumerate("to be or not")]
    assert e.token.value == 3 and e.current_tokens == list("to be or not")
    e.text.value = "ab"
    assert e.token.value == 1 and e.attends_to.shape == (2,) and e.attended_by.shape == (1,)


def test_explorer_errors_hide_both_pictures():
    e = explorer("fits", block_size=6)
    e.text.value = "far too long"
    assert "at most 6" in e.message.value
    assert e.image.layout.display == "none" and e.bars.layout.display == "none" and e.attends_to is None
    e.text.value = "ok"
    assert e.bars.layout.display is None and e.attended_by.shape == (1,)


def test_explorer_on_fixed_weights_starts_at_the_token_asked_for():
    layers = [causal_weights(2, 4, seed=1)]
    e = AttentionExplorer(layers, tokens=["a", "b", "c", "d"], token=1, view="one head")
    np.testing.assert_allclose(e.attends_to, layers[0][0, 1, :2].numpy(), rtol=1e-6)


# --- real BPE pieces and the package's model ----------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_tok():
    from minigpt2.tokenizer import gpt2_tokenizer

    return gpt2_tokenizer()


def test_pieces_are_gpt2_tokens_decoded_one_by_one_with_split_characters_escaped(gpt2_tok):
    from minigpt2.tokenizer.gpt2 import tiktoken_gpt2

    reference = tiktoken_gpt2()
    text = "The cat sat.\n\n文 héllo<|endoftext|>"
    source = ModelAttention(FakeGPT(block_size=64), gpt2_tok)
    pieces, ids = source.tokenize(text)
    assert ids == reference.encode(text, allowed_special="all")
    assert pieces == [reference.decode_single_token_bytes(i).decode("utf-8", errors="backslashreplace") for i in ids]
    assert pieces[:4] == ["The", " cat", " sat", "."] and pieces[-1] == "<|endoftext|>"
    assert any(p.startswith("\\x") for p in pieces)  # 文 is cut between two tokens


def test_explorer_on_the_package_model_shows_its_attention(gpt2_tok):
    model_module = pytest.importorskip("minigpt2.model")
    torch.manual_seed(0)
    config = model_module.GPTConfig(block_size=16, vocab_size=50257, n_layer=2, n_head=4, n_embd=32)
    model = model_module.GPT(config)
    e = AttentionExplorer.from_model(model, gpt2_tok, text="To be, or not to be: that is")
    ids = gpt2_tok.encode("To be, or not to be: that is")
    expected = model.attention_weights(torch.tensor([ids]))[1][0]  # (n_head, T, T)
    e.layer.value, e.head.value = 1, 2
    np.testing.assert_allclose(e.current_weights, expected.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(e.attends_to.sum(), 1.0, rtol=1e-5)
    assert e.current_tokens[:3] == ["To", " be", ","]
    e.text.value = "word " * 20  # 20 tokens against a context of 16
    assert "at most 16" in e.error and e.bars.layout.display == "none"


# --- sharp figures in a notebook -------------------------------------------------------------

from minigpt2.viz import sharp_figures  # noqa: E402


def test_sharp_figures_outside_ipython_only_sets_the_dpi():
    with matplotlib.rc_context():
        sharp_figures()
        assert matplotlib.rcParams["figure.dpi"] == 72
        sharp_figures(dpi=96)
        assert matplotlib.rcParams["figure.dpi"] == 96
        assert plt.figure(figsize=(2, 1)).canvas.get_width_height() == (192, 96)


@pytest.mark.slow
def test_in_a_kernel_inline_figures_get_twice_the_pixels_of_the_size_they_are_shown_at():
    """In a real kernel (the one nbconvert and JupyterLab run): before the call a figure's PNG has the pixels of its
    size in inches × dpi and no size to be shown at; after it, twice the pixels each way, shown at inches × 72."""
    import base64
    import io

    import nbformat
    import PIL.Image
    from nbclient import NotebookClient

    figure = ("import matplotlib.pyplot as plt\n"
              "from matplotlib.patches import Rectangle\n"
              "fig, ax = plt.subplots(figsize=(4, 2))\n"
              "ax.plot([0, 1])\n"
              "fig.add_artist(Rectangle((0, 0), 1, 1, transform=fig.transFigure))  # the tight box is the figure\n"
              "plt.show()")
    cells = ["import matplotlib\nmatplotlib.rcParams['figure.dpi'] = 72\n" + figure,
             "from minigpt2.viz import sharp_figures\nsharp_figures()\n" + figure,
             "sharp_figures()\n" + figure]  # a second call changes nothing
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()

    pictures = []
    for cell in nb.cells:
        [output] = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        png = PIL.Image.open(io.BytesIO(base64.b64decode(output.data["image/png"])))
        shown = output.metadata.get("image/png", {})
        pictures.append((png.size, (shown.get("width"), shown.get("height")), output.data["text/plain"]))

    pad = 2 * 0.1 * 72  # bbox_inches="tight" adds savefig.pad_inches (0.1) on each side
    size = (4 * 72 + pad, 2 * 72 + pad)  # inches × dpi, in pixels
    (before, shown_before, text_before), (after, shown_after, text_after), again = pictures
    assert shown_before == (None, None) and before == pytest.approx(size, abs=3)
    assert shown_after == pytest.approx(size, abs=3)
    assert after == pytest.approx((2 * size[0], 2 * size[1]), abs=3)
    assert (after[0] // 2, after[1] // 2) == shown_after  # what IPython says to show it at: half its pixels
    assert text_before == text_after == "<Figure size 288x144 with 1 Axes>"  # the figure itself is unchanged
    assert again == pictures[1]
