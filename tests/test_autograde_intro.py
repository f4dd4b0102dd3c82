"""The whole nbgrader cycle on the two introductory assignments, as an instructor runs it.

For each assignment, one temporary course: generate the student version, validate
the source and (inverted) the release, submit the instructor's solution, other
correct styles and the usual mistakes, and autograde them all in ONE
``nbgrader autograde`` call.  Each mistake must lose exactly the cells expected.
Every submission runs the whole notebook (the encoder is loaded each time), so
the list is kept short: the untouched release is not submitted (``validate
--invert`` runs it), and tests/test_intro_checks.py runs more styles and
mistakes against the public checks directly.
"""

from __future__ import annotations

import time

import pytest

from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    SOLUTION_BEGIN,
    SOLUTION_END,
    Course,
    all_sources,
    cell_by_id,
    error_outputs,
    grade_cells,
    secret_lines,
    solution_code,
    with_sources,
    without_cells,
)
from intro_submissions import (
    CORRECT_DISTANCE,
    CORRECT_ENCODING,
    CORRECT_FAR,
    CORRECT_MAX,
    EDGE_MAX,
    WRONG_DISTANCE,
    WRONG_ENCODING,
    WRONG_FAR,
    WRONG_MAX,
)

pytestmark = pytest.mark.slow

# Far above what any cell needs (loading the encoder: ~10 s on a busy CPU).
CELL_TIMEOUT_S = 90

VERIFICATION = "verification_recognition"
FAR_CELL, MAX_CELL = "far_solution", "max_enrolled_solution"
FAR_TESTS = {"far_public", "far_hidden"}
MAX_TESTS = {"max_enrolled_public", "max_enrolled_hidden"}

ENCODER = "pretrained_encoder"
ENC_CELL, DIST_CELL = "img_to_encoding_solution", "distance_solution"
ENC_SHAPE, ENC_REFERENCE, ENC_HIDDEN = (
    "img_to_encoding_shape", "img_to_encoding_reference", "img_to_encoding_hidden")
ENC_TESTS = {ENC_SHAPE, ENC_REFERENCE, ENC_HIDDEN}
DIST_TESTS = {"distance_public", "distance_hidden"}


def _verification_submissions(source, release) -> dict[str, tuple]:
    """``{student: (notebook, failing cells)}``."""
    right_far = solution_code(cell_by_id(source, FAR_CELL).source)
    right_max = solution_code(cell_by_id(source, MAX_CELL).source)

    def filled(far: str, enrolled: str):
        return with_sources(release, {FAR_CELL: far, MAX_CELL: enrolled})

    times_k = filled(WRONG_FAR["times_k"], WRONG_MAX["linear"])
    return {
        "instructor": (filled(right_far, right_max), set()),
        "right-loop-count_up": (filled(CORRECT_FAR["loop"], CORRECT_MAX["count_up"]), set()),
        "right-log1p-np_floor": (filled(CORRECT_FAR["log1p"], CORRECT_MAX["np_floor"]), set()),
        # the linear approximation in both exercises; the learner also deleted a test cell
        "wrong-times_k-linear-deleted": (without_cells(times_k, ["far_public"]), FAR_TESTS | MAX_TESTS),
        "wrong-none_accept-rounded": (filled(WRONG_FAR["none_accept"], WRONG_MAX["rounded"]), FAR_TESTS | MAX_TESTS),
        "wrong-all_accept-ceil": (filled(WRONG_FAR["all_accept"], WRONG_MAX["ceil"]), FAR_TESTS | MAX_TESTS),
        # with "<" against the budget: only the hidden edge cases (1 - (1 - far)^K == budget) see it
        "wrong-off_by_one-strict_budget": (filled(WRONG_FAR["off_by_one"], EDGE_MAX["strict_budget"]),
                                           FAR_TESTS | {"max_enrolled_hidden"}),
    }


def _encoder_submissions(source, release) -> dict[str, tuple]:
    right_enc = solution_code(cell_by_id(source, ENC_CELL).source)
    right_dist = solution_code(cell_by_id(source, DIST_CELL).source)

    def filled(enc: str, dist: str):
        return with_sources(release, {ENC_CELL: enc, DIST_CELL: dist})

    return {
        "instructor": (filled(right_enc, right_dist), set()),
        "right-call-ravel_loop": (filled(CORRECT_ENCODING["call_and_numpy"], CORRECT_DISTANCE["ravel_loop"]), set()),
        "right-predict-sqrt_sum": (filled(CORRECT_ENCODING["predict"], CORRECT_DISTANCE["sqrt_sum"]), set()),
        "wrong-no_standardisation-squared": (
            filled(WRONG_ENCODING["no_standardisation"], WRONG_DISTANCE["squared"]),
            {ENC_REFERENCE, ENC_HIDDEN} | DIST_TESTS),
        "wrong-no_batch_axis-per_row": (
            filled(WRONG_ENCODING["no_batch_axis"], WRONG_DISTANCE["per_row"]), ENC_TESTS | DIST_TESTS),
        # ignores the model argument: only the hidden test (another encoder) sees it
        "wrong-global_model-unit_vectors_only": (
            filled(WRONG_ENCODING["global_model"], WRONG_DISTANCE["unit_vectors_only"]),
            {ENC_HIDDEN} | DIST_TESTS),
    }


BUILDERS = {VERIFICATION: _verification_submissions, ENCODER: _encoder_submissions}
TOTALS = {VERIFICATION: 6, ENCODER: 8}


@pytest.fixture(scope="module", params=[VERIFICATION, ENCODER])
def cycle(request, tmp_path_factory):
    """Generate, validate, submit, autograde (one call per assignment)."""
    name = request.param
    course = Course.create(tmp_path_factory.mktemp(name), name)
    course.generate_assignment()
    source, release = course.read_source(name), course.read_release(name)
    submissions = BUILDERS[name](source, release)
    for student, (nb, _) in submissions.items():
        course.submit(student, name, nb)

    validated = course.validate(course.source_path(name))
    inverted = course.validate(course.release_path(name), invert=True)
    started = time.perf_counter()
    course.autograde(f"--Execute.timeout={CELL_TIMEOUT_S}")
    seconds = time.perf_counter() - started
    print(f"\n{name}: autograded {len(submissions)} submissions in {seconds:.1f} s")
    return {
        "name": name, "course": course, "source": source, "release": release,
        "submissions": submissions, "validated": validated, "inverted": inverted,
        "scores": course.scores(name), "max": course.max_scores(name),
    }


def test_release_has_no_solution_and_no_hidden_test(cycle):
    source, release = cycle["source"], cycle["release"]
    text = all_sources(release)
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END):
        assert marker not in text
    secret = secret_lines(source)
    assert len(secret) > 10
    leaked = [line for line in secret if line in text]
    assert not leaked, f"release leaks: {leaked}"
    solutions = [cell for cell in release.cells if cell.metadata.get("nbgrader", {}).get("solution")]
    assert len(solutions) == 2
    assert all("raise NotImplementedError()" in cell.source for cell in solutions)
    assert grade_cells(release) == grade_cells(source)
    assert all(not cell.get("outputs") for cell in release.cells if cell.cell_type == "code")


def test_validate_passes_on_the_source(cycle):
    assert "Success! Your notebook passes all the tests." in cycle["validated"], cycle["validated"]


def test_validate_invert_passes_on_the_release(cycle):
    assert "Success! The notebook does not pass any tests." in cycle["inverted"], cycle["inverted"]


def test_every_submission_loses_exactly_the_expected_cells(cycle):
    scores, top = cycle["scores"], cycle["max"]
    assert sum(top.values()) == TOTALS[cycle["name"]]
    assert set(scores) == set(cycle["submissions"])
    wrong = {}
    for student, (_, expected) in cycle["submissions"].items():
        assert set(scores[student]) == set(top), f"{student}: graded cells {sorted(scores[student])}"
        failing = {cell for cell, score in scores[student].items() if score < top[cell]}
        assert all(scores[student][cell] == 0 for cell in failing)  # all or nothing per cell
        if failing != expected:
            wrong[student] = (sorted(failing), sorted(expected))
    assert not wrong, f"lost points on (got, expected): {wrong}"
    assert sum(scores["instructor"].values()) == TOTALS[cycle["name"]]


def test_messages_reach_the_learner(cycle):
    course, name = cycle["course"], cycle["name"]
    if name == VERIFICATION:
        graded = course.read_autograded("wrong-times_k-linear-deleted", name)
        restored = cell_by_id(graded, "far_public")
        assert "was missing from the submission" in restored.source
        assert "you multiplied the rate by K" in error_outputs(restored)[0]["evalue"]
        hidden = error_outputs(cell_by_id(graded, "max_enrolled_hidden"))[0]["evalue"]
        assert hidden.startswith("Hidden test:")
    else:
        graded = course.read_autograded("wrong-global_model-unit_vectors_only", name)
        hidden = error_outputs(cell_by_id(graded, ENC_HIDDEN))[0]["evalue"]
        assert "Use the model argument" in hidden
        graded = course.read_autograded("wrong-no_standardisation-squared", name)
        message = error_outputs(cell_by_id(graded, ENC_REFERENCE))[0]["evalue"]
        assert "the raw pixel values, 0 to 255" in message
        assert "SQUARED distance" in error_outputs(cell_by_id(graded, "distance_public"))[0]["evalue"]
