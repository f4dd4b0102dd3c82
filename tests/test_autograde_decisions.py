"""Grading decisions out of the students' reach, through the real nbgrader cycle.

The decision half of the attack corpus (tests/attack_submissions.py,
DECISION_ATTACKS): numpy's comparisons monkeypatched, an input transformer that
blanks the later test cells, the expected value read from the test's frame,
the checks' reference called, and submissions that print their callers'
source or the instructor's notebook.  One course per assignment, every
submission autograded in ONE ``nbgrader autograde`` call: each attack ends
with its honest score (0 for the cells it tried to cheat), the honest
submissions keep full marks, and no feedback shows a line of a hidden test.
"""

from __future__ import annotations

import pytest

from attack_submissions import DECISION_ATTACKS
from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    Course,
    cell_by_id,
    error_outputs,
    grade_cells,
    html_text,
    marked_lines,
    solution_code,
    with_sources,
)

pytestmark = pytest.mark.slow

CELL_TIMEOUT_S = 60

TRIPLET = "triplet_loss"
LOSS_TESTS = {"triplet_loss_single", "triplet_loss_batch", "triplet_loss_seeded", "triplet_loss_hidden"}
SEMI_TESTS = {"semi_hard_public", "semi_hard_hidden"}
MEAN_FAILS = {"triplet_loss_batch", "triplet_loss_seeded", "triplet_loss_hidden"}  # the mean's honest score

# {attack: the test cells that must score 0}; every other test cell keeps its points.
HONEST_ZEROS = {
    "numpy-comparisons-patched": MEAN_FAILS,
    "input-transformer-blanks-tests": LOSS_TESTS | SEMI_TESTS,  # a blanked test records nothing
    "expected-value-from-frame": LOSS_TESTS,
    "reference-called": SEMI_TESTS,
    "prints-callers-source": set(),
    "prints-instructor-notebook": set(),
}
SOLUTION_CELLS = {
    TRIPLET: ("triplet_loss_solution", "semi_hard_solution"),
    "verification_recognition": ("far_solution", "max_enrolled_solution"),
    "pretrained_encoder": ("img_to_encoding_solution", "distance_solution"),
}
INTRO_ZEROS = {
    "verification_recognition": {
        "far-reference-called": {"far_public", "far_hidden"},
        "max-enrolled-reference-called": {"max_enrolled_public", "max_enrolled_hidden"},
        "far-comparisons-patched": {"far_public", "far_hidden"},
    },
    "pretrained_encoder": {
        "encoder-reference-called": {"img_to_encoding_shape", "img_to_encoding_reference",
                                     "img_to_encoding_hidden"},
    },
}


def _assignment_attacks(solution_cells) -> dict[str, tuple[str, str]]:
    return {name: (cell, code) for name, cell, code in DECISION_ATTACKS if cell in solution_cells}


def test_every_decision_attack_is_graded_here():
    graded = set(HONEST_ZEROS) | {name for zeros in INTRO_ZEROS.values() for name in zeros}
    assert graded == {name for name, _, _ in DECISION_ATTACKS}


def _attack_cycle(root, name: str) -> dict:
    """One nbgrader cycle of assignment ``name``: an honest student and one per decision attack."""
    course = Course.create(root, name)
    course.generate_assignment()
    source, release = course.read_source(name), course.read_release(name)
    solutions = {cell: solution_code(cell_by_id(source, cell).source) for cell in SOLUTION_CELLS[name]}
    attacks = _assignment_attacks(SOLUTION_CELLS[name])
    course.submit("honest", name, with_sources(release, solutions))
    for attack, (cell, code) in attacks.items():
        course.submit(attack, name, with_sources(release, {**solutions, cell: code}))
    course.autograde(f"--Execute.timeout={CELL_TIMEOUT_S}")
    course.generate_feedback()
    return {"name": name, "course": course, "source": source, "scores": course.scores(name),
            "max": grade_cells(source), "students": ["honest", *attacks]}


@pytest.fixture(scope="module")
def triplet_cycle(tmp_path_factory):
    return _attack_cycle(tmp_path_factory.mktemp("decisions"), TRIPLET)


def _zeros(cycle, student) -> set[str]:
    scores, top = cycle["scores"][student], cycle["max"]
    assert set(scores) == set(top)
    partial = {cell for cell in top if 0 < scores[cell] < top[cell]}
    assert not partial, f"{student}: partial credit on {partial}"
    return {cell for cell in top if scores[cell] == 0}


def test_honest_submission_keeps_full_marks(triplet_cycle):
    assert _zeros(triplet_cycle, "honest") == set()
    assert sum(triplet_cycle["scores"]["honest"].values()) == 12


@pytest.mark.parametrize("attack", sorted(HONEST_ZEROS))
def test_attack_ends_with_its_honest_score(triplet_cycle, attack):
    assert _zeros(triplet_cycle, attack) == HONEST_ZEROS[attack]


def test_the_grader_says_why_a_cell_failed(triplet_cycle):
    course = triplet_cycle["course"]
    framed = course.read_autograded("expected-value-from-frame", TRIPLET)
    hidden = error_outputs(cell_by_id(framed, "triplet_loss_hidden"))
    assert hidden and hidden[0]["ename"] == "GradingError"
    assert hidden[0]["evalue"].startswith("Hidden test: 1 random triplets of dimension 7")
    assert "expected" not in hidden[0]["evalue"]  # a hidden case never shows its answer
    blanked = course.read_autograded("input-transformer-blanks-tests", TRIPLET)
    assert "no result was recorded" in error_outputs(cell_by_id(blanked, "semi_hard_public"))[0]["evalue"]
    called = course.read_autograded("reference-called", TRIPLET)
    assert "_semi_hard_reference" in error_outputs(cell_by_id(called, "semi_hard_public"))[0]["evalue"]


def test_no_feedback_shows_a_hidden_line(triplet_cycle):
    course, source = triplet_cycle["course"], triplet_cycle["source"]
    hidden = marked_lines(source, HIDDEN_BEGIN, HIDDEN_END)
    assert len(hidden) > 10
    for student in triplet_cycle["students"]:
        text = html_text(course.feedback_path(student, TRIPLET))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{student}'s feedback shows hidden lines: {leaked[:3]}"
    # the caller's-source attack really printed them into the graded notebook (the kernel runs
    # the hidden tests, so it can see them); the sandbox hides the instructor notebook itself
    def printed(student):
        graded = course.read_autograded(student, TRIPLET)
        return "\n".join(str(cell.get("outputs", "")) for cell in graded.cells)

    assert any(line in printed("prints-callers-source") for line in hidden)
    assert not any(line in printed("prints-instructor-notebook") for line in hidden)


@pytest.fixture(scope="module", params=sorted(INTRO_ZEROS))
def intro_cycle(request, tmp_path_factory):
    return _attack_cycle(tmp_path_factory.mktemp(request.param), request.param)


def test_intro_attacks_end_with_their_honest_score(intro_cycle):
    assert _zeros(intro_cycle, "honest") == set()
    for attack, zeros in INTRO_ZEROS[intro_cycle["name"]].items():
        assert _zeros(intro_cycle, attack) == zeros, attack
    course, name, source = intro_cycle["course"], intro_cycle["name"], intro_cycle["source"]
    hidden = marked_lines(source, HIDDEN_BEGIN, HIDDEN_END)
    for student in intro_cycle["students"]:
        text = html_text(course.feedback_path(student, name))
        assert not [line for line in hidden if line in text], student
    if name == "pretrained_encoder":
        graded = course.read_autograded("encoder-reference-called", name)
        message = error_outputs(cell_by_id(graded, "img_to_encoding_hidden"))[0]["evalue"]
        assert "called fr_utils.img_to_encoding" in message
        text = html_text(course.feedback_path("encoder-reference-called", name))
        assert "called fr_utils.img_to_encoding" in text  # the reason reaches the student
