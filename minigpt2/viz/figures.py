"""A notebook's figures as sharp as the screen: shown at the size they are drawn for, with twice the pixels.

Every lesson's import cell calls :func:`sharp_figures` once. A figure of ``figsize`` inches is then shown
``figsize × dpi`` CSS pixels wide and high (72 per inch: a 9 × 5 inch figure takes 648 × 360 px of the page),
and its PNG holds twice as many pixels each way, so a high-density screen (2 device pixels per CSS pixel) shows
it sharp instead of stretched, and an ordinary screen shows it scaled down, never up.
"""

from __future__ import annotations

SCREEN_DPI = 72  # CSS pixels per inch of figure size: the size the course's figures are drawn for


def sharp_figures(dpi: float = SCREEN_DPI) -> None:
    """Figures drawn at ``dpi`` and shown at that size, their PNGs at twice the pixels ('retina').

    Sets matplotlib's ``figure.dpi`` to ``dpi`` and, in IPython or Jupyter, what
    ``%config InlineBackend.figure_formats = ["retina"]`` sets: the inline backend draws each figure at
    ``2 × dpi`` and puts the size to show it at (half the PNG's pixels) in the output's metadata, which
    JupyterLab honours. The backend's ``bbox_inches="tight"`` stays, so labels outside the axes are never cut off
    at the figure's edge. Outside IPython (a script, a test) only the dpi is set. Calling it again changes nothing.
    """
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = dpi
    try:
        from IPython import get_ipython
    except ImportError:  # matplotlib without IPython: nothing shows figures inline
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib_inline.config import InlineBackend

    # The configurable the backend itself uses (parent=shell: the user's ipython_config still applies). If the backend
    # is already set up, the formatters change at once; if not (pyplot picks its backend at the first figure), the
    # backend reads these formats when it sets itself up.
    InlineBackend.instance(parent=shell).figure_formats = {"retina"}
