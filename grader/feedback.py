"""The feedback HTML that learners receive (``nbgrader generate_feedback``).

1. Hidden tests stay out of it (issue #13).

nbgrader's ``generate_feedback`` turns the *autograded* notebooks into HTML, and
those notebooks hold the instructor's test cells in full, hidden tests included,
and whatever the submission printed (a function can print its caller's source,
the hidden test's, with ``linecache`` and ``sys._getframe``).
:class:`HideHiddenTests` runs during ``generate_feedback`` (see
``nbgrader_config.py``) and

* removes the ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions,
  exactly as ``generate_assignment`` does for the release;
* replaces ALL outputs of a cell that had such a region by its pass/fail message
  only: the grader's own message (grader/decide.py words hidden cases without
  expected values), or, for an error raised in the kernel, only its name
  (its message may quote anything the submission put there);
* removes the grading records (grader/records.py) from every cell;
* in every other output, replaces any line of a hidden test by a note, so a
  hidden line saved by the submission and printed later does not show either.

2. Feedback HTML that renders its maths offline (issue #12, item 7).

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
import html
import importlib.resources
import json
import re
from pathlib import Path
from typing import Tuple

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Unicode

from grader.decide import GRADING_ERROR
from grader.records import is_record

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


# -- hidden tests out of the feedback (issue #13) ----------------------------------------

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
REDACTED = "[a line of a hidden test, not shown]"
_MIN_REDACTED_LENGTH = 6


def hidden_lines(nb: NotebookNode) -> list[str]:
    """The stripped lines inside the notebook's hidden-test regions, longest first, also as
    they read once escaped in JSON (a printed .ipynb file) and in HTML."""
    lines: set[str] = set()
    for cell in nb.cells:
        inside = False
        for line in cell.get("source", "").splitlines():
            if HIDDEN_BEGIN in line:
                inside = True
            elif HIDDEN_END in line:
                inside = False
            elif inside and len(line.strip()) >= _MIN_REDACTED_LENGTH:
                line = line.strip()
                lines.update({line, json.dumps(line)[1:-1], html.escape(line), html.escape(line, quote=False)})
    return sorted(lines, key=len, reverse=True)


def _redact(text: str, secret: list[str]) -> str:
    for line in secret:
        if line in text:
            text = text.replace(line, REDACTED)
    return text


def _redact_output(output: NotebookNode, secret: list[str]) -> None:
    if "text" in output:
        text = output["text"]
        output["text"] = _redact("".join(text) if isinstance(text, list) else text, secret)
    for mime, value in list(output.get("data", {}).items()):
        if isinstance(value, list):
            value = "".join(value)
        if isinstance(value, str) and (mime.startswith("text/") or mime.endswith(("json", "javascript"))):
            output["data"][mime] = _redact(value, secret)
    if output.get("output_type") == "error":
        output["evalue"] = _redact(str(output.get("evalue", "")), secret)
        output["traceback"] = [_redact(str(line), secret) for line in output.get("traceback", [])]


def _safe_name(name: str) -> str:
    name = str(name)
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,40}", name) else "Error"


class HideHiddenTests(ClearHiddenTests):
    """Hidden tests, their outputs and any copy of their lines out of the feedback."""

    traceback_note = Unicode(
        "(Traceback not shown: this cell also runs hidden tests.)",
        help="Line shown under the error message of a failed cell with hidden tests.",
    ).tag(config=True)

    passed_note = Unicode(
        "Hidden tests: passed.",
        help="What a cell with hidden tests shows when it kept its points.",
    ).tag(config=True)

    _secret: list[str] = []

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> Tuple[NotebookNode, ResourcesDict]:
        self._secret = hidden_lines(nb)
        return super().preprocess(nb, resources)

    def _hidden_cell_outputs(self, outputs: list) -> list:
        errors = [output for output in outputs if output.get("output_type") == "error"]
        if not errors:
            return [from_dict({"output_type": "stream", "name": "stdout", "text": self.passed_note + "\n"})]
        error = errors[0]
        name = _safe_name(error.get("ename", "Error"))
        if name == GRADING_ERROR:
            message = _redact(str(error.get("evalue", "")), self._secret)
        elif name == "FunctionTimedOut":
            message = "your function did not return within its time limit (an endless loop?)."
        else:
            message = (f"the test stopped with {name}, raised while running your code; its message "
                       "is not shown because this cell runs hidden tests.")
        return [from_dict({
            "output_type": "error",
            "ename": name,
            "evalue": message,
            "traceback": [f"{name}: {message}", self.traceback_note],
        })]

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> Tuple[NotebookNode, ResourcesDict]:
        had_hidden_tests = self._remove_hidden_test_region(cell)
        if cell.cell_type != "code":
            return cell, resources
        outputs = [output for output in cell.get("outputs", []) if not is_record(output)]
        if had_hidden_tests:
            outputs = self._hidden_cell_outputs(outputs)
        else:
            for output in outputs:
                _redact_output(output, self._secret)
        cell["outputs"] = outputs
        return cell, resources
