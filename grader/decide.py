"""Grading decisions made in nbgrader's process, where the learner's code cannot reach.

nbgrader gives a test cell its points when the cell raised nothing in the
kernel, and the kernel runs the learner's code: a monkeypatched ``np.isclose``,
an input transformer that blanks later cells or a look into the hidden test's
frame could turn a wrong answer into marks.  Here the kernel only *reports*:
the checks record what the learner's function returned on each case
(fr_utils/checks/_record.py), and the grader judges those records.

* The checks write records when ``NBGRADER_EXECUTION=autograde``, which
  ``nbgrader autograde`` sets for the kernels it starts.
* :class:`DecideGrades` (after ``Execute``) judges every graded cell of the
  notebooks that grader.cases knows: the cell keeps its points only if it
  raised nothing AND it holds exactly one well-formed record of each of its
  cases, each judged right with the grader's own inputs and references.
  Otherwise it gets an error output saying why (a missing, repeated, unknown
  or malformed record, or a wrong value), so ``SaveAutoGrades`` gives it 0.
  ``execute_result`` outputs of those cells become ``display_data``, so a
  number printed as a cell's value cannot claim partial credit.
"""

from __future__ import annotations

from typing import Any, Tuple

from nbconvert.exporters.exporter import ResourcesDict
from nbgrader.preprocessors import NbGraderPreprocessor
from nbformat.notebooknode import NotebookNode, from_dict

from grader.cases import Case, graded_cells
from grader.records import Malformed, decode, records_in

GRADING_ERROR = "GradingError"
"""The ``ename`` of the error outputs the grader adds."""


def _is_grade_cell(cell: NotebookNode) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and cell.get("cell_type") == "code"


def judge_cell(cases: list[Case], outputs: list) -> list[str]:
    """What is wrong with a cell's records (empty: every case recorded once and right)."""
    problems: list[str] = []
    expected = {case.key: case for case in cases}
    seen: dict[str, Any] = {}
    for key, payload in records_in(outputs):
        if key is None or isinstance(payload, Malformed):
            problems.append("Grading: this cell holds a malformed grading record.")
            continue
        if key not in expected:
            problems.append(f"Grading: this cell holds a record of an unknown case ({key[:60]!r}).")
            continue
        if key in seen:
            problems.append(f"Grading: {expected[key].what}: recorded more than once.")
            continue
        seen[key] = payload
    for case in cases:
        if case.key not in seen:
            problems.append(
                f"{case.what}: no result was recorded, so this test did not run to its end "
                "(the cell's checks were skipped, cut short or changed).")
            continue
        try:
            value = decode(seen[case.key])
        except Malformed as error:
            problems.append(f"Grading: {case.what}: malformed record ({error}).")
            continue
        try:
            verdict = case.judge(value)
        except Exception as error:  # a judge must never crash the grading  # noqa: BLE001
            verdict = f"the result could not be judged ({type(error).__name__})"
        if verdict:
            problems.append(f"{case.what}: {verdict}.")
    return problems


def _error_output(problems: list[str]) -> NotebookNode:
    message = problems[0] if len(problems) == 1 else "\n".join(problems)
    return from_dict({
        "output_type": "error",
        "ename": GRADING_ERROR,
        "evalue": message,
        "traceback": [f"{GRADING_ERROR}: {message}"],
    })


class DecideGrades(NbGraderPreprocessor):
    """Judge the graded cells from their records (see the module's docstring)."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> Tuple[NotebookNode, ResourcesDict]:
        notebook = resources.get("nbgrader", {}).get("notebook")
        cells = graded_cells(notebook) if notebook else None
        if cells is None:
            return nb, resources
        found = set()
        for cell in nb.cells:
            if not _is_grade_cell(cell):
                continue
            grade_id = cell.metadata.nbgrader.get("grade_id")
            found.add(grade_id)
            outputs = cell.get("outputs", [])
            for output in outputs:
                if output.get("output_type") == "execute_result":
                    output["output_type"] = "display_data"
                    output.pop("execution_count", None)
            cases = cells.get(grade_id)
            if cases is None:
                problems = [f"Grading: the grader has no cases for the cell {grade_id!r}; "
                            "ask your instructor."]
            else:
                problems = judge_cell(cases, outputs)
            already_failed = any(output.get("output_type") == "error" for output in outputs)
            if problems and not already_failed:
                outputs.append(_error_output(problems))
                cell["outputs"] = outputs
                self.log.info("%s: %s", grade_id, problems[0])
        missing = set(cells) - found
        if missing:
            self.log.warning("graded cells the notebook lacks: %s", sorted(missing))
        return nb, resources
