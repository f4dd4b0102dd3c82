"""Keep hidden tests out of the feedback that learners receive.

nbgrader's ``generate_feedback`` turns the *autograded* notebooks into HTML, and
those notebooks hold the instructor's test cells in full, hidden tests included:
their source, and the tracebacks of any that failed (an IPython traceback quotes
the lines around the failing assertion).  :class:`HideHiddenTests` runs during
``generate_feedback`` (see ``nbgrader_config.py``) and, in every grade cell

* removes the ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions,
  exactly as ``generate_assignment`` does for the release;
* in cells that had such a region, replaces each error's traceback with its last
  line, ``ErrorName: message``, so the learner reads the test's message but not
  its code.  Hidden tests therefore word their messages for learners.
"""

from __future__ import annotations

from typing import Tuple

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Unicode


class HideHiddenTests(ClearHiddenTests):
    """``ClearHiddenTests`` for feedback: also strips the tracebacks of hidden tests."""

    traceback_note = Unicode(
        "(Traceback not shown: this cell also runs hidden tests.)",
        help="Line shown under the error message of a failed cell with hidden tests.",
    ).tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> Tuple[NotebookNode, ResourcesDict]:
        had_hidden_tests = self._remove_hidden_test_region(cell)
        if had_hidden_tests and cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [
                        f"{output.get('ename', 'Error')}: {output.get('evalue', '')}",
                        self.traceback_note,
                    ]
        return cell, resources
