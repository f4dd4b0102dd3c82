"""Restoring locked cells without false alarms (issue #12, item 7).

nbgrader records a test cell's checksum with its hidden tests in it, and the
student version leaves them out; so ``OverwriteCells`` found every honest
submission's hidden-test cells "changed" and logged ``Attribute 'checksum' for
cell ... has changed!`` for each, burying the warnings that matter (a student who
edited a locked cell) among false ones.

:class:`HonestOverwriteCells` first puts the hidden tests back, silently, into a
locked cell whose source is exactly the released one (the recorded source with
its hidden-test regions removed, as ``ClearHiddenTests`` does); every other
difference is still reported and restored by nbgrader as before.
"""

from __future__ import annotations

from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells


def released_source(source: str, begin: str = "### BEGIN HIDDEN TESTS", end: str = "### END HIDDEN TESTS") -> str:
    """``source`` as the student version shows it: the hidden-test regions removed."""
    clear = ClearHiddenTests(begin_test_delimeter=begin, end_test_delimeter=end)
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(source)
    clear._remove_hidden_test_region(cell)
    return cell.source


class HonestOverwriteCells(OverwriteCells):
    """``OverwriteCells`` that does not report the hidden tests the release removed."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if (source_cell is not None and source_cell.locked and cell.source != source_cell.source
                    and cell.source.strip() == released_source(source_cell.source).strip()):
                cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)
