"""Plots show Chinese where a CJK font exists (matplotlib's font fallback), and `minigpt2 doctor` says how to get
one where it does not."""

import warnings

import matplotlib
import pytest
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minigpt2 import doctor, utils


def missing_glyphs() -> list[str]:
    """The warnings matplotlib gives for the characters it cannot draw, drawing a Chinese title."""
    fig = Figure(figsize=(3, 1))
    fig.suptitle("注意力 attention")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FigureCanvasAgg(fig).draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_with_a_cjk_font_plots_draw_chinese_and_keep_the_usual_font_first():
    if utils.cjk_font() is None:
        pytest.skip("no CJK font on this machine (Debian: apt-get install fonts-noto-cjk)")
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):  # matplotlib's default, before the package sets it
        assert missing_glyphs(), "the default font alone should lack Chinese glyphs"
        font = utils.use_cjk_font()
        assert matplotlib.rcParams["font.family"] == ["sans-serif", font]
        assert missing_glyphs() == []
        assert utils.use_cjk_font() == font and matplotlib.rcParams["font.family"] == ["sans-serif", font]  # once


def test_without_a_cjk_font_nothing_changes(monkeypatch):
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [f for f in font_manager.fontManager.ttflist if f.name not in utils.CJK_FONTS])
    with matplotlib.rc_context():
        before = list(matplotlib.rcParams["font.family"])
        assert utils.use_cjk_font() is None
        assert matplotlib.rcParams["font.family"] == before


def test_the_attention_pictures_set_the_fallback():
    if utils.cjk_font() is None:
        pytest.skip("no CJK font on this machine")
    import minigpt2.viz  # noqa: F401  (imported by the time the lessons draw their heatmaps)

    assert matplotlib.rcParams["font.family"][-1] == utils.cjk_font()


def test_doctor_names_the_font_it_found(monkeypatch):
    monkeypatch.setattr(utils, "cjk_font", lambda: "WenQuanYi Zen Hei")
    finding = doctor._cjk_font()
    assert finding.ok and finding.detail.startswith("WenQuanYi Zen Hei") and finding.advice == ""


@pytest.mark.parametrize("lang, ok, boxes", [("zh", False, "图中的中文会显示成空白方框"),
                                             ("", True, "shows as empty boxes")])
def test_doctor_without_a_cjk_font_says_how_to_install_one(monkeypatch, capsys, lang, ok, boxes):
    monkeypatch.setattr(utils, "cjk_font", lambda: None)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"])
    monkeypatch.setattr(doctor.sys, "platform", "linux")
    monkeypatch.setenv("MINIGPT2_LANG", lang)
    finding = doctor._cjk_font()
    assert finding.ok is ok  # a must for the Chinese course only, which is told in Chinese
    assert boxes in finding.detail and "`sudo apt-get install fonts-noto-cjk`" in finding.advice
    monkeypatch.setattr(doctor, "diagnose", lambda: [finding])
    assert doctor.run_doctor() == (0 if ok else 1)
    assert f"→ {finding.advice}" in capsys.readouterr().out


def test_doctor_on_macos_or_windows_points_to_the_system_font(monkeypatch):
    monkeypatch.setattr(utils, "cjk_font", lambda: None)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [])
    monkeypatch.setattr(doctor.sys, "platform", "darwin")
    assert "PingFang SC" in doctor._cjk_font().advice


def test_doctor_spots_a_font_installed_after_matplotlib_listed_its_fonts(monkeypatch):
    monkeypatch.setattr(utils, "cjk_font", lambda: None)
    monkeypatch.setattr(font_manager, "findSystemFonts",
                        lambda: ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"])
    monkeypatch.setenv("MINIGPT2_LANG", "zh")
    finding = doctor._cjk_font()
    assert not finding.ok and finding.detail.startswith("NotoSansCJK-Regular.ttc ")
    assert "fontlist-*.json" in finding.advice
