"""Static checks of the two introductory assignments' source notebooks
(verification_recognition, pretrained_encoder): fast, nothing is executed."""

from __future__ import annotations

import nbformat
import pytest

from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    REPO,
    all_sources,
    grade_cells,
    marked_lines,
    leaked_hidden_tests,
    metadata_problems,
    misplaced_test_cells,
    nbgrader_meta,
    read_notebook,
)

POINTS = {
    "verification_recognition": {
        "far_public": 2, "far_hidden": 1, "max_enrolled_public": 2, "max_enrolled_hidden": 1,
    },
    "pretrained_encoder": {
        "img_to_encoding_shape": 1, "img_to_encoding_reference": 2, "img_to_encoding_hidden": 2,
        "distance_public": 2, "distance_hidden": 1,
    },
}
SOLUTIONS = {
    "verification_recognition": ["far_solution", "max_enrolled_solution"],
    "pretrained_encoder": ["img_to_encoding_solution", "distance_solution"],
}


@pytest.fixture(scope="module", params=sorted(POINTS))
def notebook(request):
    name = request.param
    return name, read_notebook(REPO / "notebooks" / name / f"{name}.ipynb")


def test_one_notebook_per_assignment_folder():
    for name in POINTS:
        assert [p.name for p in (REPO / "notebooks" / name).glob("*.ipynb")] == [f"{name}.ipynb"]


def test_source_notebook_is_valid_and_clean(notebook):
    _, nb = notebook
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"


def test_nbgrader_metadata(notebook):
    name, nb = notebook
    assert metadata_problems(nb) == []
    assert grade_cells(nb) == POINTS[name]
    assert [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("solution")] == SOLUTIONS[name]
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade"):
            assert cell.metadata.get("deletable") is False and cell.metadata.get("editable") is False
            assert "passed" in cell.source or "runs" in cell.source, "every test cell says when it passed"
        if HIDDEN_BEGIN in cell.source:
            assert cell.source.count(HIDDEN_BEGIN) == cell.source.count(HIDDEN_END) == 1


def test_every_test_cell_follows_a_solution_or_test_cell(notebook):
    _, nb = notebook
    assert misplaced_test_cells(nb) == []


def test_every_exercise_has_public_and_hidden_tests(notebook):
    name, nb = notebook
    hidden = {nbgrader_meta(c)["grade_id"] for c in nb.cells if HIDDEN_BEGIN in c.source}
    public = {nbgrader_meta(c)["grade_id"] for c in nb.cells
              if nbgrader_meta(c).get("grade") and HIDDEN_BEGIN not in c.source}
    assert len(hidden) == len(SOLUTIONS[name]) and len(public) >= len(SOLUTIONS[name])


def test_hidden_tests_are_not_in_the_public_checks(notebook):
    _, nb = notebook
    hidden = marked_lines(nb, HIDDEN_BEGIN, HIDDEN_END)
    assert len(hidden) > 10
    assert leaked_hidden_tests(nb) == []


def test_notebooks_are_honest_about_the_models():
    encoder = all_sources(read_notebook(REPO / "notebooks" / "pretrained_encoder" / "pretrained_encoder.ipynb"))
    assert "softmax loss" in encoder and "center loss" in encoder and "MS-Celeb-1M" in encoder
    assert "20170512-110547" in encoder and "**withdrew the data set**" in encoder and "2019" in encoder
    assert "**not** with the triplet loss" in encoder
    assert "trained weights are not shipped" in encoder
    assert "random weights" in encoder
    assert "load_weights" not in encoder  # nothing pretends to load OpenFace weights
    # the real weights it does load are the course's own, made by distillation, and said so
    assert "OpenFace's own weights cannot be obtained here" in encoder and "knowledge distillation" in encoder
    assert "load_student()" in encoder and "docs/distill.md" in encoder
