"""Static checks of the course set-up: nbgrader_config.py and the triplet-loss source
notebook (fast: nothing is executed)."""

from __future__ import annotations

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from grader.decide import DecideGrades
from grader.feedback import HideHiddenTests
from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    REPO,
    grade_cells,
    marked_lines,
    leaked_hidden_tests,
    metadata_problems,
    misplaced_test_cells,
    read_notebook,
)

SOURCE = REPO / "notebooks" / "triplet_loss" / "triplet_loss.ipynb"


@pytest.fixture(scope="module")
def config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()


@pytest.fixture(scope="module")
def source():
    return read_notebook(SOURCE)


def test_config_points_nbgrader_at_the_notebooks(config):
    assert config.CourseDirectory.source_directory == "notebooks"
    assert config.Execute.kernel_name == "python3"
    assert config.OverwriteCells.add_missing_cells is True
    assert HideHiddenTests in config.GenerateFeedback.preprocessors
    steps = [step.__name__ for step in config.Autograde.autograde_preprocessors]
    # the sandbox's executor runs the notebook; the grader decides right before the grades are saved
    assert "Execute" not in steps
    assert steps.index("SandboxedExecute") < steps.index("DecideGrades") == steps.index("SaveAutoGrades") - 1


def test_cell_timeout_is_bounded_but_roomy(config):
    assert 60 <= config.Execute.timeout <= 600
    assert config.Execute.interrupt_on_timeout is True


def test_source_notebook_is_valid_and_clean(source):
    nbformat.validate(source)
    assert source.metadata.kernelspec.name == "python3"
    for cell in source.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"


def test_nbgrader_metadata(source):
    assert metadata_problems(source) == []
    assert grade_cells(source) == {
        "triplet_loss_single": 2, "triplet_loss_batch": 2, "triplet_loss_seeded": 1,
        "triplet_loss_hidden": 3, "semi_hard_public": 2, "semi_hard_hidden": 2,
    }



def test_every_test_cell_follows_a_solution_or_test_cell(source):
    assert misplaced_test_cells(source) == []


def test_hidden_tests_are_not_in_the_public_checks(source):
    hidden = marked_lines(source, HIDDEN_BEGIN, HIDDEN_END)
    assert len(hidden) > 10
    assert leaked_hidden_tests(source) == []


def _cell(source: str, traceback: list[str]):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "t", "points": 1, "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError",
                                           evalue="Hidden test: wrong", traceback=traceback)]
    return cell


def test_feedback_preprocessor_hides_hidden_code_and_tracebacks():
    code = f"check(f)\n{HIDDEN_BEGIN}\nassert secret_reference(f) == 42\n{HIDDEN_END}\nprint('ok')"
    cell = _cell(code, ["Traceback ...", "----> 3 assert secret_reference(f) == 42", "AssertionError: Hidden test: wrong"])
    cell, _ = HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert cell.source == "check(f)\nprint('ok')"
    assert cell.outputs[0].ename == "AssertionError"
    assert "its message is not shown" in cell.outputs[0].evalue  # a kernel error's text may quote anything
    assert "secret_reference" not in str(cell)


def test_feedback_shows_the_graders_message_of_a_hidden_cell_and_nothing_else():
    code = f"check(f)\n{HIDDEN_BEGIN}\nchecks.record_cases(f, [(1, 2)])\n{HIDDEN_END}"
    cell = _cell(code, [])
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="checks.record_cases(f, [(1, 2)])\n"),
        nbformat.v4.new_output("error", ename="GradingError", evalue="Hidden test: 3 triplets: wrong",
                               traceback=["GradingError: Hidden test: 3 triplets: wrong"]),
    ]
    cell, _ = HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert [output.output_type for output in cell.outputs] == ["error"]
    assert cell.outputs[0].evalue == "Hidden test: 3 triplets: wrong"
    assert "record_cases" not in str(cell)


def test_feedback_preprocessor_keeps_public_tracebacks():
    traceback = ["Traceback ...", "----> 1 check(f)", "AssertionError: expected 1, got 2"]
    cell, _ = HideHiddenTests().preprocess_cell(_cell("check(f)", list(traceback)), {}, 0)
    assert cell.source == "check(f)"
    assert cell.outputs[0].traceback == traceback


def test_misplaced_test_cells_finds_a_test_cell_after_a_read_only_cell():
    def cell(grade_id, **flags):
        c = nbformat.v4.new_code_cell("pass")
        c.metadata["nbgrader"] = {"grade_id": grade_id, "grade": False, "solution": False, "locked": False, **flags}
        return c

    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("sol", solution=True), cell("t1", grade=True, points=1),
                cell("intro", locked=True), cell("t2", grade=True, points=1)]
    assert misplaced_test_cells(nb) == ["t2"]
    nb.cells = nb.cells[1:2]
    assert misplaced_test_cells(nb) == ["t1"]


def test_metadata_problems_names_each_broken_rule():
    def cell(source, grade_id, **flags):
        c = nbformat.v4.new_code_cell(source)
        c.metadata["nbgrader"] = {"grade_id": grade_id, "grade": False, "solution": False, "locked": False,
                                  "schema_version": 3, **flags}
        return c

    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("x = 1", "sol", solution=True), cell("assert x", "t", grade=True, points=1),
                cell(f"{HIDDEN_BEGIN}\nassert x\n{HIDDEN_END}", "t", schema_version=2)]
    assert metadata_problems(nb) == [
        "grade id 't' is used twice",
        "t: schema_version 2, not 3",
        "sol: solution cell without its SOLUTION markers",
        "t: a test cell must be a locked code cell",
        "t: hidden tests belong in test cells",
    ]
