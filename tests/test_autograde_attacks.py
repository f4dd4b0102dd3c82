"""The attack corpus, isolation half, through the real nbgrader cycle (issue #13 items 1, 3, 5).

One temporary triplet_loss course: an honest student, then one student per entry of
``attack_submissions.ISOLATION_ATTACKS`` (the gradebook, the config, the course root,
the instructor notebook, the grader's process, a fork bomb, a memory hog, a huge file,
an endless loop in a bare ``except``, 500,000 lines, a 50 MB line), all autograded in
ONE ``nbgrader autograde`` call under the sandbox, then feedback generated.  Each must
end with its honest score, every student graded, the course files byte-identical and
the gradebook's definitions untouched, and no hidden-test line in any graded notebook
or feedback.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from attack_submissions import ISOLATION_ATTACKS
from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    Course,
    cell_by_id,
    html_text,
    marked_lines,
    solution_code,
    unmarked_text,
    with_sources,
)
from grader.sandbox import sandbox_problem

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}"),
]

ASSIGNMENT = NOTEBOOK = "triplet_loss"
LOSS_CELL, SEMI_CELL = "triplet_loss_solution", "semi_hard_solution"
LOSS_TESTS = {"triplet_loss_single", "triplet_loss_batch", "triplet_loss_seeded", "triplet_loss_hidden"}
# Short limits, only to keep this test quick; far above what an honest cell of this notebook needs.
CELL_TIMEOUT_S = 30
LIMITS = [
    f"--Execute.timeout={CELL_TIMEOUT_S}",
    "--SandboxedExecute.interrupt_grace=3",
    f"--SandboxKernelManager.memory_bytes={4 << 30}",
    f"--SandboxKernelManager.file_bytes={64 << 20}",
    "--SandboxKernelManager.processes=256",
]
# The cells an attack honestly loses: the endless loop never finishes its cell, so the
# function it defines is gone when the kernel is restarted; everything else is right.
LOSES = {"endless-bare-except": LOSS_TESTS}
# What nbgrader itself writes during autograde / generate_feedback.
WRITTEN_BY_NBGRADER = ("autograded/", "feedback/", "gradebook.db", ".nbgrader.log")
# ...and Python, importing grader/ (copied into the course) from there.
CACHES = "__pycache__"
DEFINITION_TABLES = ("assignment", "notebook", "base_cell", "grade_cells", "solution_cells", "task_cells",
                     "source_cell", "course")


def _files(root: Path) -> dict[str, str]:
    return {
        rel: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and CACHES not in path.parts
        and not (rel := str(path.relative_to(root))).startswith(WRITTEN_BY_NBGRADER)
    }


def _tables(db: Path, tables) -> dict[str, list]:
    with sqlite3.connect(db) as connection:
        return {table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in tables}


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("attacks"), ASSIGNMENT)
    course.generate_assignment()
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    right = {cell: solution_code(cell_by_id(source, cell).source) for cell in (LOSS_CELL, SEMI_CELL)}
    students = {"honest": with_sources(release, right)}
    for name, grade_id, code in ISOLATION_ATTACKS:
        students[name] = with_sources(release, {**right, grade_id: code})
    for student, nb in students.items():
        course.submit(student, NOTEBOOK, nb)
    files_before = _files(course.root)
    db = course.root / "gradebook.db"
    tables_before = _tables(db, DEFINITION_TABLES)

    started = time.perf_counter()
    process = course.autograde(*LIMITS)
    seconds = time.perf_counter() - started
    print(f"\nautograded {len(students)} submissions (attacks) in {seconds:.1f} s")
    course.generate_feedback()
    return {
        "course": course,
        "source": source,
        "students": students,
        "log": process.stdout + process.stderr,
        "scores": course.scores(NOTEBOOK),
        "max": course.max_scores(NOTEBOOK),
        "files_before": files_before,
        "files_after": _files(course.root),
        "tables_before": tables_before,
        "tables_after": _tables(db, DEFINITION_TABLES),
        "extra_credit": _tables(db, ["grade"])["grade"],
    }


def test_every_student_is_graded_and_gets_feedback(cycle):
    assert set(cycle["scores"]) == set(cycle["students"]), cycle["log"][-3000:]
    for student in cycle["students"]:
        assert cycle["course"].feedback_path(student, NOTEBOOK).is_file(), student


@pytest.mark.parametrize("attack", [name for name, _, _ in ISOLATION_ATTACKS] + ["honest"])
def test_each_submission_gets_its_honest_score(cycle, attack):
    expected = {cell: (0.0 if cell in LOSES.get(attack, ()) else points) for cell, points in cycle["max"].items()}
    assert cycle["scores"][attack] == expected


def test_course_files_are_byte_identical(cycle):
    before, after = cycle["files_before"], cycle["files_after"]
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}
    assert not Path("/tmp/owned-by-a-student").exists()


def test_gradebook_definitions_untouched_and_no_extra_credit(cycle):
    assert cycle["tables_after"] == cycle["tables_before"]
    # grade rows: (id, notebook_id, cell_id, auto_score, manual_score, extra_credit, needs_manual_grade)
    assert all(row[5] in (None, 0) for row in cycle["extra_credit"])


def test_no_hidden_test_line_in_any_output_or_feedback(cycle):
    source = cycle["source"]
    public = unmarked_text(source, HIDDEN_BEGIN, HIDDEN_END)
    secrets = [line for line in marked_lines(source, HIDDEN_BEGIN, HIDDEN_END) if line not in public]
    assert secrets
    course = cycle["course"]
    for student in cycle["students"]:
        outputs = "".join(
            out.get("text", "") for cell in course.read_autograded(student, NOTEBOOK).cells
            for out in cell.get("outputs", [])
        )
        feedback = html_text(course.feedback_path(student, NOTEBOOK))
        assert "BEGIN HIDDEN TESTS" not in outputs, student
        leaked = [line for line in secrets if line in outputs or line in feedback]
        assert not leaked, (student, leaked[:5])


@pytest.mark.parametrize("attack", ["500k-lines", "50mb-line"])
def test_output_floods_are_bounded_with_a_note(cycle, attack):
    # At most the 1 MB output bound (JSON/HTML-escaped) more than the honest submission's files,
    # whose feedback embeds MathJax (about 2 MB).
    course = cycle["course"]
    for path in (course.autograded_path, course.feedback_path):
        extra = path(attack, NOTEBOOK).stat().st_size - path("honest", NOTEBOOK).stat().st_size
        assert extra < 1_500_000, (path(attack, NOTEBOOK), extra)
    graded = course.read_autograded(attack, NOTEBOOK)
    text = "".join(out.get("text", "") for out in cell_by_id(graded, LOSS_CELL).outputs)
    # our note, or nbgrader's LimitOutput's (1000 lines) after it: visible either way
    assert "output truncated" in text.lower()


def test_endless_loop_is_stopped_from_outside_and_the_rest_graded(cycle):
    graded = cycle["course"].read_autograded("endless-bare-except", NOTEBOOK)
    errors = [out.evalue for out in cell_by_id(graded, LOSS_CELL).outputs if out.output_type == "error"]
    assert any("ignored the interrupt" in error for error in errors), errors
