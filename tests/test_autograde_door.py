"""The nbgrader cycle on the door assignment, as an instructor runs it.

One temporary course: generate the student version, validate both versions,
submit seven notebooks (three correct styles other than the instructor's, whose
solution ``validate`` runs, two with a typical mistake in each function, and two
with the mistakes only the hidden tests see: a cast shortcut, ``<=`` on the
threshold, the model argument ignored),
autograde them all in ONE ``nbgrader autograde`` call and read the gradebook.  LFW is hidden from the
kernels (FR_DATASETS unset), so section 4 runs on the sample cast and each
notebook takes seconds; the mistakes themselves are covered one by one, with
their messages, in test_door_notebook.py.

A second cycle (when LFW is there) sets ``FR_CAST_DIR`` to six LFW people copied into a
temporary folder: the instructor's solution gets full marks and each typical mistake loses
points, every answer computed from that cast at grading time (issue #14 item 1).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from door_submissions import (
    CORRECT_DATABASE,
    CORRECT_VERIFY,
    CORRECT_WHO,
    HIDDEN_ONLY_DATABASE,
    HIDDEN_ONLY_VERIFY,
    HIDDEN_ONLY_WHO,
    WRONG_DATABASE,
    WRONG_VERIFY,
    WRONG_WHO,
)
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
)

pytestmark = pytest.mark.slow

ASSIGNMENT = NOTEBOOK = "door"
SOLUTIONS = {"build_database": "build_database_solution", "verify": "verify_solution",
             "who_is_it": "who_is_it_solution"}
DATABASE_TESTS = {"database_public", "database_hidden"}
VERIFY_TESTS = {"verify_public", "verify_details", "verify_hidden"}
WHO_TESTS = {"who_is_it_public", "who_is_it_threshold", "who_is_it_hidden"}
TOTAL = 13
HIDDEN_TESTS = {"database_hidden", "verify_hidden", "who_is_it_hidden"}


def _build_submissions(release) -> dict[str, tuple]:
    """``{student: (notebook, the test cells it must fail)}``."""
    def filled(database: str, verify: str, who: str):
        return with_sources(release, {SOLUTIONS["build_database"]: database, SOLUTIONS["verify"]: verify,
                                      SOLUTIONS["who_is_it"]: who})

    return {
        "right-a": (filled(CORRECT_DATABASE["comprehension"], CORRECT_VERIFY["sqrt_sum_if_else"],
                           CORRECT_WHO["vectorised"]), set()),
        "right-b": (filled(CORRECT_DATABASE["batched"], CORRECT_VERIFY["try_keyerror"],
                           CORRECT_WHO["min_with_key"]), set()),
        "wrong-a": (filled(WRONG_DATABASE["last_photo_for_all"], WRONG_VERIFY["greater_than"],
                           WRONG_WHO["identity_always_returned"]),
                    DATABASE_TESTS | VERIFY_TESTS | WHO_TESTS),
        # the badge check on the cast still passes: 2 points; and who_is_it's hard-coded 0.7 decides
        # the sample cast as the check's threshold 1.0 does (the 128-number encoder puts its
        # genuine pair 0.58 apart, its impostors 1.3 and more): 2 more
        "wrong-b": (filled(WRONG_DATABASE["names_from_files"], WRONG_VERIFY["unknown_identity_crashes"],
                           WRONG_WHO["threshold_hard_coded"]),
                    DATABASE_TESTS | {"verify_details", "verify_hidden"} | WHO_TESTS - {"who_is_it_public"}),
        # issue #19: the distance through the cosine, in float32 and float64: exact on the edges too
        "right-c": (filled(CORRECT_DATABASE["loop"], CORRECT_VERIFY["cosine"], CORRECT_WHO["float64"]), set()),
        # what only the hidden tests see: the cast's own photos for its names, "<=" on the threshold...
        "hidden-c": (filled(HIDDEN_ONLY_DATABASE["cast_shortcut"], HIDDEN_ONLY_VERIFY["less_equal"],
                            HIDDEN_ONLY_WHO["less_equal"]), HIDDEN_TESTS),
        # ... and img_to_encoding(path) without the model it is given
        "hidden-d": (filled(HIDDEN_ONLY_DATABASE["model_ignored"], HIDDEN_ONLY_VERIFY["model_ignored"],
                            HIDDEN_ONLY_WHO["model_ignored"]), HIDDEN_TESTS),
    }


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("course"), ASSIGNMENT)
    course.generate_assignment()
    return course


@pytest.fixture(scope="module")
def no_lfw():
    """The kernels nbgrader starts inherit this environment: no LFW, section 4 on the cast."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FR_DATASETS", raising=False)
        yield


@pytest.fixture(scope="module")
def cycle(course, no_lfw):
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    submissions = _build_submissions(release)
    for student, (nb, _) in submissions.items():
        course.submit(student, NOTEBOOK, nb)
    started = time.perf_counter()
    course.autograde()
    seconds = time.perf_counter() - started
    print(f"\nautograded {len(submissions)} door submissions in {seconds:.1f} s "
          f"({seconds / len(submissions):.1f} s each)")
    return {"course": course, "source": source, "release": release, "submissions": submissions,
            "scores": course.scores(NOTEBOOK), "max": course.max_scores(NOTEBOOK)}


# -- the release and validation -----------------------------------------------------------


def test_release_has_no_solutions_and_no_hidden_tests(course):
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    text = all_sources(release)
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END):
        assert marker not in text
    secret = secret_lines(source)
    assert len(secret) > 30
    assert [line for line in secret if line in text] == []
    for cell_id in SOLUTIONS.values():
        assert "raise NotImplementedError()" in cell_by_id(release, cell_id).source
    assert grade_cells(release) == grade_cells(source)
    assert sum(grade_cells(release).values()) == TOTAL


def test_validate_passes_on_the_source(course, no_lfw):
    output = course.validate(course.source_path(NOTEBOOK))
    assert "Success! Your notebook passes all the tests." in output, output


def test_validate_invert_passes_on_the_release(course, no_lfw):
    output = course.validate(course.release_path(NOTEBOOK), invert=True)
    assert "Success! The notebook does not pass any tests." in output, output


# -- autograding ------------------------------------------------------------------------


def _check(cycle, student):
    expected = cycle["submissions"][student][1]
    got, top = cycle["scores"][student], cycle["max"]
    assert set(got) == set(top), f"{student}: graded cells {sorted(got)}"
    failing = {cell for cell, score in got.items() if score < top[cell]}
    assert failing == expected, f"{student}: lost points on {sorted(failing)}, expected {sorted(expected)}"
    assert all(got[cell] == 0 for cell in failing)


def test_every_submission_was_graded(cycle):
    assert set(cycle["scores"]) == set(cycle["submissions"])
    assert sum(cycle["max"].values()) == TOTAL


@pytest.mark.parametrize("student", ["right-a", "right-b", "right-c"])
def test_correct_solutions_get_full_marks(cycle, student):
    _check(cycle, student)
    assert sum(cycle["scores"][student].values()) == TOTAL


@pytest.mark.parametrize("student", ["wrong-a", "wrong-b", "hidden-c", "hidden-d"])
def test_mistakes_lose_exactly_their_cells(cycle, student):
    _check(cycle, student)


def test_hidden_tests_say_what_only_they_catch(cycle):
    def hidden_error(student, cell_id):
        graded = cycle["course"].read_autograded(student, NOTEBOOK)
        return error_outputs(cell_by_id(graded, cell_id))[0]["evalue"]

    shortcut = hidden_error("hidden-c", "database_hidden")
    assert "the cast's names, each with another photo than its own" in shortcut
    for cell_id in ("verify_hidden", "who_is_it_hidden"):
        assert "exactly at the threshold" in hidden_error("hidden-c", cell_id)
    for cell_id in HIDDEN_TESTS:
        assert "the model argument was ignored" in hidden_error("hidden-d", cell_id), cell_id


def test_graded_notebooks_hold_the_hints(cycle):
    course = cycle["course"]
    wrong_a = course.read_autograded("wrong-a", NOTEBOOK)
    assert "wrong way round" in error_outputs(cell_by_id(wrong_a, "verify_public"))[0]["evalue"]
    assert "Encode each person's own path" in error_outputs(cell_by_id(wrong_a, "database_public"))[0]["evalue"]
    wrong_b = course.read_autograded("wrong-b", NOTEBOOK)
    assert "raised KeyError" in error_outputs(cell_by_id(wrong_b, "verify_details"))[0]["evalue"]
    hidden = cell_by_id(wrong_b, "verify_hidden")
    assert HIDDEN_BEGIN in hidden.source  # the hidden tests ran during grading
    assert error_outputs(hidden)[0]["evalue"].startswith("Hidden test: ")


# -- another cast: six LFW people configured with FR_CAST_DIR (issue #14 item 1) ------------------

LFW_CAST = {"Colin_Powell": 2, "Tony_Blair": 2, "Donald_Rumsfeld": 1, "Gerhard_Schroeder": 1,
            "Ariel_Sharon": 1, "Hugo_Chavez": 1}
"""People with several photos in LFW, each photo with one face (their first photos, sorted):
none of them is in the shipped cast, and the names sort in another order."""

# (student: (build_database, verify, who_is_it) sources; None: the instructor's own solution):
# every typical mistake of door_submissions.py, one per function and submission, except three
# that only the hidden tests' stub encoder catches, whatever the cast: they are graded in the
# cycle above (hidden-c, hidden-d); seven notebooks, as many as that cycle.
LFW_MISTAKES = {
    "lfw-1": (WRONG_DATABASE["last_photo_for_all"], WRONG_VERIFY["greater_than"], WRONG_WHO["last_person"]),
    "lfw-2": (WRONG_DATABASE["flattened"], WRONG_VERIFY["squared"], WRONG_WHO["largest"]),
    "lfw-3": (WRONG_DATABASE["names_from_files"], WRONG_VERIFY["closest_person"],
              WRONG_WHO["identity_always_returned"]),
    "lfw-4": (HIDDEN_ONLY_DATABASE["cast_shortcut"], WRONG_VERIFY["threshold_hard_coded"],
              WRONG_WHO["threshold_hard_coded"]),
    "lfw-5": (HIDDEN_ONLY_DATABASE["model_ignored"], WRONG_VERIFY["unknown_identity_crashes"], WRONG_WHO["squared"]),
    "lfw-6": (None, WRONG_VERIFY["door_open_as_string"], HIDDEN_ONLY_WHO["less_equal"]),
}
CAST_INDEPENDENT = [HIDDEN_ONLY_VERIFY["less_equal"], HIDDEN_ONLY_VERIFY["model_ignored"],
                    HIDDEN_ONLY_WHO["model_ignored"]]
CELLS = {"build_database": DATABASE_TESTS, "verify": VERIFY_TESTS, "who_is_it": WHO_TESTS}


def test_every_typical_mistake_is_in_the_lfw_cycle_or_cast_independent(course):
    used = {source for sources in LFW_MISTAKES.values() for source in sources if source is not None}
    groups = (WRONG_DATABASE, WRONG_VERIFY, WRONG_WHO, HIDDEN_ONLY_DATABASE, HIDDEN_ONLY_VERIFY, HIDDEN_ONLY_WHO)
    everything = {source for group in groups for source in group.values()}
    assert everything - used == set(CAST_INDEPENDENT)
    shipped = {cell_by_id(nb, cell_id).source for nb, _ in _build_submissions(course.read_release(NOTEBOOK)).values()
               for cell_id in SOLUTIONS.values()}
    assert set(CAST_INDEPENDENT) <= shipped


@pytest.fixture(scope="module")
def lfw_cast(lfw_dir, tmp_path_factory):
    """The six people's photos copied into a temporary cast folder, readable by the sandbox's user."""
    from fr_utils.castcheck import check_cast

    root = tmp_path_factory.mktemp("lfw_cast") / "cast"
    for name, count in LFW_CAST.items():
        photos = sorted((lfw_dir / name).glob("*.jpg"))[:count]
        assert len(photos) == count, f"{lfw_dir / name}: fewer than {count} photos"
        (root / name).mkdir(parents=True)
        for photo in photos:
            shutil.copyfile(photo, root / name / photo.name)
            os.chmod(root / name / photo.name, 0o644)
        os.chmod(root / name, 0o755)
    os.chmod(root, 0o755)
    report = check_cast(root, distances=False)
    assert report.problems == [], report.problems
    return root


@pytest.fixture(scope="module")
def lfw_cycle(lfw_cast, tmp_path_factory):
    """ONE course and ONE autograde call with FR_CAST_DIR set: the instructor's solution and the
    mistakes; nbgrader, its sandboxed kernels and the grader's references all see that cast."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FR_DATASETS", raising=False)
        patch.setenv("FR_CAST_DIR", str(lfw_cast))
        course = Course.create(tmp_path_factory.mktemp("lfw_course"), ASSIGNMENT)
        course.generate_assignment()
        source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
        own = {name: solution_code(cell_by_id(source, cell_id).source) for name, cell_id in SOLUTIONS.items()}
        submissions = {"lfw-solution": (None, None, None), **LFW_MISTAKES}
        for student, functions in submissions.items():
            filled = {SOLUTIONS[name]: code if code is not None else own[name]
                      for name, code in zip(SOLUTIONS, functions)}
            course.submit(student, NOTEBOOK, with_sources(release, filled))
        started = time.perf_counter()
        course.autograde()
        seconds = time.perf_counter() - started
    print(f"\nautograded {len(submissions)} door submissions on six LFW people in {seconds:.1f} s")
    return {"course": course, "submissions": submissions, "scores": course.scores(NOTEBOOK),
            "max": course.max_scores(NOTEBOOK)}


def test_on_another_cast_the_solution_gets_full_marks_and_each_mistake_loses_points(lfw_cycle):
    scores, top = lfw_cycle["scores"], lfw_cycle["max"]
    assert set(scores) == set(lfw_cycle["submissions"])
    assert scores["lfw-solution"] == top and sum(top.values()) == TOTAL
    for student, functions in LFW_MISTAKES.items():
        for name, code in zip(SOLUTIONS, functions):
            lost = {cell for cell in CELLS[name] if scores[student][cell] < top[cell]}
            if code is None:
                assert lost == set(), f"{student}: a correct {name} lost points on {sorted(lost)}"
            else:
                assert lost, f"{student}: the mistake in {name} lost no points on the LFW cast"


def test_on_another_cast_the_notebook_shows_its_people_not_the_shipped_ones(lfw_cycle, lfw_cast):
    graded = lfw_cycle["course"].read_autograded("lfw-solution", NOTEBOOK)
    printed = "".join(output.get("text", "") for cell in graded.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "Colin_Powell_0001.jpg, Colin_Powell_0002.jpg" in printed  # the listing of the first cell
    assert "Barack_Obama" not in printed and "Joseph_Biden" not in printed
    shortcut = error_outputs(cell_by_id(lfw_cycle["course"].read_autograded("lfw-4", NOTEBOOK), "database_hidden"))
    assert "the cast's names, each with another photo than its own" in shortcut[0]["evalue"]
