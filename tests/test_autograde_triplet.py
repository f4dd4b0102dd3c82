"""The whole nbgrader cycle on the triplet-loss assignment, as an instructor runs it.

One temporary course: generate the student version, submit ~20 notebooks (the
instructor's solution, the untouched release, the usual mistakes, other correct
styles, endless loops, tampered test cells), autograde them all in ONE
``nbgrader autograde`` call, then generate feedback and export the grades.
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
    html_text,
    marked_lines,
    secret_lines,
    solution_code,
    with_sources,
    without_cells,
)
from triplet_submissions import (
    CORRECT_LOSS,
    CORRECT_SEMI_HARD,
    EDGE_SEMI_HARD,
    ENDLESS_CELL,
    ENDLESS_LOSS,
    WRONG_LOSS,
    WRONG_SEMI_HARD,
)

pytestmark = pytest.mark.slow

ASSIGNMENT = NOTEBOOK = "triplet_loss"
LOSS_CELL, SEMI_CELL = "triplet_loss_solution", "semi_hard_solution"
SINGLE, BATCH, SEEDED, LOSS_HIDDEN = (
    "triplet_loss_single", "triplet_loss_batch", "triplet_loss_seeded", "triplet_loss_hidden",
)
SEMI_PUBLIC, SEMI_HIDDEN = "semi_hard_public", "semi_hard_hidden"
LOSS_TESTS = {SINGLE, BATCH, SEEDED, LOSS_HIDDEN}
SEMI_TESTS = {SEMI_PUBLIC, SEMI_HIDDEN}

# A shorter cell timeout than nbgrader_config.py's, only so that the submission
# whose cell never ends costs 30 s here instead of 120 s.  Still far above what
# any cell of this notebook needs (the set-up cell, importing TensorFlow: ~3 s).
CELL_TIMEOUT_S = 30

# The test cells each mistake must fail (the others it passes).
WRONG_LOSS_FAILS = {
    "mean_not_sum": {BATCH, SEEDED, LOSS_HIDDEN},
    "axis_0": {SINGLE, BATCH, SEEDED, LOSS_HIDDEN},
    "no_axis": {BATCH, SEEDED, LOSS_HIDDEN},
    "no_max": {SINGLE, BATCH, SEEDED, LOSS_HIDDEN},
    "max_of_sum": {BATCH, SEEDED, LOSS_HIDDEN},
    "alpha_forgotten": {SINGLE, BATCH, SEEDED, LOSS_HIDDEN},
    "alpha_subtracted": {SINGLE, BATCH, SEEDED, LOSS_HIDDEN},
    "not_squared": {BATCH, SEEDED, LOSS_HIDDEN},
    "numpy_value": {BATCH, LOSS_HIDDEN},
    "alpha_hard_coded": {SINGLE, BATCH, LOSS_HIDDEN},
    "swapped": {SINGLE, BATCH, SEEDED, LOSS_HIDDEN},
}
assert set(WRONG_LOSS_FAILS) == set(WRONG_LOSS)

# Three of the loss mistakes also carry a semi-hard mistake: the cells are graded
# independently, so each loses its own exercise's points and no others.
SEMI_MISTAKE_PARTNER = {
    "hardest_negative": "mean_not_sum",
    "no_minus_one": "max_of_sum",
    "plain_distances": "not_squared",
    "lower_edge_inclusive": "alpha_forgotten",  # issue #19: only the hidden edge case sees these
    "upper_edge_inclusive": "alpha_subtracted",
}
ALL_WRONG_SEMI_HARD = {**WRONG_SEMI_HARD, **EDGE_SEMI_HARD}
assert set(SEMI_MISTAKE_PARTNER) == set(ALL_WRONG_SEMI_HARD)
SEMI_MISTAKE_FAILS = {name: SEMI_TESTS if name in WRONG_SEMI_HARD else {SEMI_HIDDEN} for name in ALL_WRONG_SEMI_HARD}
SEMI_OF_LOSS = {loss: semi for semi, loss in SEMI_MISTAKE_PARTNER.items()}


def _build_submissions(source, release) -> dict[str, tuple]:
    """``{student: (notebook, failing cells)}``."""
    right_loss = solution_code(cell_by_id(source, LOSS_CELL).source)
    right_semi = solution_code(cell_by_id(source, SEMI_CELL).source)
    semi_styles = list(CORRECT_SEMI_HARD.values())

    def filled(loss: str, semi: str):
        return with_sources(release, {LOSS_CELL: loss, SEMI_CELL: semi})

    subs = {
        "instructor": (filled(right_loss, right_semi), set()),
        "untouched": (release, LOSS_TESTS | SEMI_TESTS),
    }
    for name, loss in WRONG_LOSS.items():
        semi_mistake = SEMI_OF_LOSS.get(name)
        semi = ALL_WRONG_SEMI_HARD[semi_mistake] if semi_mistake else right_semi
        fails = WRONG_LOSS_FAILS[name] | (SEMI_MISTAKE_FAILS[semi_mistake] if semi_mistake else set())
        subs[f"wrong-{name}"] = (filled(loss, semi), fails)
    for index, (name, loss) in enumerate(CORRECT_LOSS.items()):
        subs[f"right-{name}"] = (filled(loss, semi_styles[index % len(semi_styles)]), set())
    subs["endless-function"] = (filled(ENDLESS_LOSS, right_semi), set(LOSS_TESTS))
    subs["endless-cell"] = (filled(ENDLESS_CELL, right_semi), set())

    # Tampering: a learner with the mean-instead-of-sum bug deletes one failing test
    # cell, or rewrites failing ones to print success.  Both must be undone.
    mean_bug = filled(WRONG_LOSS["mean_not_sum"], right_semi)
    subs["deleted-test-cell"] = (without_cells(mean_bug, [BATCH]), WRONG_LOSS_FAILS["mean_not_sum"])
    subs["edited-test-cells"] = (
        with_sources(mean_bug, {BATCH: "print('Batches: all tests passed.')", SEEDED: "pass"}),
        WRONG_LOSS_FAILS["mean_not_sum"],
    )
    return subs


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """Generate, submit, autograde (one call), generate feedback, export."""
    course = Course.create(tmp_path_factory.mktemp("course"), ASSIGNMENT)
    course.generate_assignment()
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    submissions = _build_submissions(source, release)
    for student, (nb, _) in submissions.items():
        course.submit(student, NOTEBOOK, nb)

    started = time.perf_counter()
    course.autograde(f"--Execute.timeout={CELL_TIMEOUT_S}")
    seconds = time.perf_counter() - started
    print(f"\nautograded {len(submissions)} submissions in {seconds:.1f} s "
          f"({seconds / len(submissions):.1f} s each, endless loops included)")

    course.generate_feedback()
    return {
        "course": course,
        "source": source,
        "release": release,
        "submissions": submissions,
        "scores": course.scores(NOTEBOOK),
        "max": course.max_scores(NOTEBOOK),
    }


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with only the generated assignment, for the release checks."""
    course = Course.create(tmp_path_factory.mktemp("release"), ASSIGNMENT)
    course.generate_assignment()
    return course


# -- the student version ------------------------------------------------------


def test_release_has_no_solution_and_no_hidden_test(course):
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    text = all_sources(release)
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END):
        assert marker not in text
    secret = secret_lines(source)
    assert len(secret) > 20  # the lines we look for really exist in the source
    leaked = [line for line in secret if line in text]
    assert not leaked, f"release leaks: {leaked}"
    for cell_id in (LOSS_CELL, SEMI_CELL):
        assert "raise NotImplementedError()" in cell_by_id(release, cell_id).source
    assert grade_cells(release) == grade_cells(source)
    assert all(not cell.get("outputs") for cell in release.cells if cell.cell_type == "code")


def test_validate_passes_on_the_source(course):
    output = course.validate(course.source_path(NOTEBOOK))
    assert "Success! Your notebook passes all the tests." in output, output


def test_validate_invert_passes_on_the_release(course):
    output = course.validate(course.release_path(NOTEBOOK), invert=True)
    assert "Success! The notebook does not pass any tests." in output, output


# -- autograding ----------------------------------------------------------------


def test_every_submission_was_graded(cycle):
    assert set(cycle["scores"]) == set(cycle["submissions"])
    assert sum(cycle["max"].values()) == 12
    for student in cycle["submissions"]:
        assert cycle["course"].autograded_path(student, NOTEBOOK).exists()


def _failing(cycle, student) -> set[str]:
    got, top = cycle["scores"][student], cycle["max"]
    assert set(got) == set(top), f"{student}: graded cells {sorted(got)}"
    return {cell for cell, score in got.items() if score < top[cell]}


def _check(cycle, student):
    expected = cycle["submissions"][student][1]
    failing = _failing(cycle, student)
    assert failing == expected, f"{student}: lost points on {sorted(failing)}, expected {sorted(expected)}"
    # nbgrader gives all or nothing per cell: a failing cell scores 0
    assert all(cycle["scores"][student][cell] == 0 for cell in failing)


def test_instructor_solution_gets_full_marks(cycle):
    _check(cycle, "instructor")


def test_untouched_release_scores_zero(cycle):
    _check(cycle, "untouched")
    assert sum(cycle["scores"]["untouched"].values()) == 0
    graded = cycle["course"].read_autograded("untouched", NOTEBOOK)
    message = error_outputs(cell_by_id(graded, SINGLE))[0]["evalue"]
    assert "triplet_loss is not implemented yet" in message


@pytest.mark.parametrize("mistake", sorted(WRONG_LOSS))
def test_each_mistake_loses_points(cycle, mistake):
    student = f"wrong-{mistake}"
    _check(cycle, student)
    assert sum(cycle["scores"][student].values()) < sum(cycle["max"].values())


@pytest.mark.parametrize("style", sorted(CORRECT_LOSS))
def test_other_correct_styles_get_full_marks(cycle, style):
    _check(cycle, f"right-{style}")


def test_function_that_never_returns_is_stopped_by_the_checks(cycle):
    _check(cycle, "endless-function")
    graded = cycle["course"].read_autograded("endless-function", NOTEBOOK)
    first = error_outputs(cell_by_id(graded, SINGLE))[0]
    assert first["ename"] == "FunctionTimedOut"
    assert "did not return within" in first["evalue"]
    later = error_outputs(cell_by_id(graded, BATCH))[0]
    assert "already ran out of time" in later["evalue"]


def test_cell_that_never_ends_is_interrupted_and_the_rest_graded(cycle):
    _check(cycle, "endless-cell")  # the function above the loop is right: full marks
    graded = cycle["course"].read_autograded("endless-cell", NOTEBOOK)
    errors = error_outputs(cell_by_id(graded, LOSS_CELL))
    assert errors and errors[0]["ename"] in {"KeyboardInterrupt", "CellTimeoutError"}


def test_deleted_test_cell_is_restored_and_graded(cycle):
    _check(cycle, "deleted-test-cell")
    graded = cycle["course"].read_autograded("deleted-test-cell", NOTEBOOK)
    restored = cell_by_id(graded, BATCH)
    assert "was missing from the submission" in restored.source
    assert "check_batch_sum" in restored.source
    assert error_outputs(restored)


def test_edited_test_cells_are_restored_and_graded(cycle):
    _check(cycle, "edited-test-cells")
    graded = cycle["course"].read_autograded("edited-test-cells", NOTEBOOK)
    for cell_id in (BATCH, SEEDED):
        assert cell_by_id(graded, cell_id).source == cell_by_id(cycle["release"], cell_id).source


def test_hidden_tests_ran_during_grading(cycle):
    graded = cycle["course"].read_autograded("wrong-mean_not_sum", NOTEBOOK)
    hidden = cell_by_id(graded, LOSS_HIDDEN)
    assert HIDDEN_BEGIN in hidden.source
    assert error_outputs(hidden)[0]["evalue"].startswith("Hidden test:")


# -- feedback and grades --------------------------------------------------------


def test_feedback_shows_messages_but_never_hidden_tests(cycle):
    course = cycle["course"]
    hidden = marked_lines(cycle["source"], HIDDEN_BEGIN, HIDDEN_END)
    assert len(hidden) > 10
    for student in cycle["submissions"]:
        text = html_text(course.feedback_path(student, NOTEBOOK))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{student}'s feedback shows hidden tests: {leaked[:3]}"
        assert HIDDEN_BEGIN not in text

    text = html_text(course.feedback_path("wrong-mean_not_sum", NOTEBOOK))
    assert "tf.reduce_sum, not tf.reduce_mean" in text  # the public test's hint
    assert "Hidden test: 5 random triplets of dimension 2" in text  # the hidden test's message
    assert "Traceback not shown" in text


def test_export_writes_every_students_total(cycle):
    rows = cycle["course"].export()
    totals = {row["student_id"]: float(row["raw_score"]) for row in rows}
    assert totals == {student: sum(cells.values()) for student, cells in cycle["scores"].items()}
    assert totals["instructor"] == 12 and totals["untouched"] == 0
