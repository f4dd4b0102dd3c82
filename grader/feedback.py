"""Feedback HTML that renders its maths offline (issue #12, item 7).

nbgrader's feedback template loads MathJax 2 from a CDN, so a student without
internet (or behind a hub's firewall) sees raw ``$d(a, p)$``. The course's
template (``grader/templates/facenet_feedback``: nbgrader's ``feedback`` with
its ``mathjax.html.j2`` replaced) embeds MathJax 3 (SVG output: no font files to
fetch) from the PyPI package ``django-static-mathjax`` (pinned in
requirements.txt), as a ``data:`` URL: each feedback file works alone, opened
from the Assignment List, from a download or from a USB stick.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "facenet_feedback"
MATHJAX_PACKAGE = "django-static-mathjax"
MATHJAX_FILE = ("static", "mathjax", "es5", "tex-svg.js")

#: MathJax 3's configuration: the notebooks' $...$ and $$...$$ delimiters.
MATHJAX_CONFIG = (
    "window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
    "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, processEnvironments: true}, "
    "svg: {fontCache: 'global'}};\n"
)


def mathjax_script() -> Path:
    """MathJax 3's single-file TeX-to-SVG component, from the installed package.

    Raises:
        FileNotFoundError: the package is missing (names it and how to install it).
    """
    try:
        path = importlib.resources.files("mathjax").joinpath(*MATHJAX_FILE)
    except ModuleNotFoundError:
        path = None
    if path is None or not Path(str(path)).is_file():
        raise FileNotFoundError(
            f"MathJax for offline feedback not found ({'/'.join(MATHJAX_FILE)} of the package "
            f"{MATHJAX_PACKAGE}): install it with `pip install -r requirements.txt` (make course does)"
        )
    return Path(str(path))


@functools.lru_cache(maxsize=1)
def offline_mathjax_url(_ignored: str = "") -> str:
    """A ``data:`` URL holding the configuration and MathJax itself (a Jinja filter of the template)."""
    code = MATHJAX_CONFIG.encode() + mathjax_script().read_bytes()
    return "data:text/javascript;base64," + base64.b64encode(code).decode("ascii")
