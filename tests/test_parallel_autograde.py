"""Grading a class in parallel (``python -m grader.parallel``, issue #12 item 6).

One small class of the cheapest assignment, ``triplet_loss``: the instructor's
solution, a typical mistake in each exercise, and a file that is not a notebook.
The same class is graded twice: serially (``nbgrader autograde triplet_loss``,
one call) and with 2 workers after a first parallel run was interrupted halfway
(Ctrl-C, workers killed).  The two gradebooks must agree field by field; where
``postgres``/``initdb`` and ``psycopg2`` are installed, the class is also graded
into a throw-away PostgreSQL cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grader.parallel import check_gradebook, gradebook_snapshot, main as parallel_main, with_busy_timeout
from nbgrader_helpers import Course, cell_by_id, nbgrader_env, solution_code, with_sources
from triplet_submissions import WRONG_LOSS, WRONG_SEMI_HARD

ASSIGNMENT = NOTEBOOK = "triplet_loss"
COURSE_ID = "facenet"
LOSS_CELL, SEMI_CELL = "triplet_loss_solution", "semi_hard_solution"
NOT_JSON = '{"cells": [{"cell_type": "code", '  # a notebook cut off mid-file


def _submit_class(course: Course, students=("right", "wrong", "broken")) -> None:
    source, release = course.read_source(NOTEBOOK), course.read_release(NOTEBOOK)
    right_loss = solution_code(cell_by_id(source, LOSS_CELL).source)
    right_semi = solution_code(cell_by_id(source, SEMI_CELL).source)
    notebooks = {
        "right": with_sources(release, {LOSS_CELL: right_loss, SEMI_CELL: right_semi}),
        "wrong": with_sources(release, {LOSS_CELL: WRONG_LOSS["mean_not_sum"],
                                        SEMI_CELL: WRONG_SEMI_HARD["hardest_negative"]}),
    }
    for student in students:
        if student == "broken":
            path = course.submitted_path(student, NOTEBOOK)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(NOT_JSON, encoding="utf-8")
        else:
            course.submit(student, NOTEBOOK, notebooks[student])


def _parallel(course: Course, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.parallel", ASSIGNMENT, *args], cwd=course.root,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def _graded_outputs(course: Course, student: str) -> dict[str, list[str]]:
    """What each graded cell of the autograded notebook shows (errors by name and message, printed text)."""
    from nbgrader_helpers import grade_id, nbgrader_meta

    shown = {}
    for cell in course.read_autograded(student, NOTEBOOK).cells:
        if nbgrader_meta(cell).get("grade"):
            shown[grade_id(cell)] = [
                f"{out.get('ename')}: {out.get('evalue')}" if out.get("output_type") == "error"
                else str(out.get("text", out.get("data", {}).get("text/plain", "")))
                for out in cell.get("outputs", [])
            ]
    return shown


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("serial"), ASSIGNMENT)
    course.generate_assignment()
    _submit_class(course)
    process = course.nbgrader("autograde", ASSIGNMENT, "--force", check=False)
    return {"course": course, "process": process,
            "snapshot": gradebook_snapshot(course.db_url, ASSIGNMENT, COURSE_ID)}


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:  # it ended meanwhile
        return []


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """Interrupted once while both workers grade (1 s of grace, then SIGKILL), then run to the end."""
    import psutil

    course = Course.create(tmp_path_factory.mktemp("parallel"), ASSIGNMENT)
    course.generate_assignment()
    _submit_class(course)

    first = subprocess.Popen([sys.executable, "-m", "grader.parallel", ASSIGNMENT, "--workers", "2", "--grace", "1"],
                             cwd=course.root, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    parent, deadline, busy_since = psutil.Process(first.pid), time.monotonic() + 300, None
    while time.monotonic() < deadline and first.poll() is None:
        nbgraders = [p for p in parent.children() if "nbgrader" in " ".join(_cmdline(p))]
        if len(nbgraders) == 2 and busy_since is None:
            busy_since = time.monotonic()
        if busy_since is not None and time.monotonic() - busy_since > 6:  # both well into grading
            break
        time.sleep(0.2)
    assert busy_since is not None, "two nbgrader workers never ran at once"
    first.send_signal(signal.SIGINT)
    interrupted_output, _ = first.communicate(timeout=120)
    interrupted = {"returncode": first.returncode, "output": interrupted_output,
                   "integrity": sqlite3.connect(course.root / "gradebook.db").execute("PRAGMA integrity_check").fetchall()}

    process = _parallel(course, "--workers", "2", "--force")
    return {"course": course, "process": process, "interrupted": interrupted,
            "snapshot": gradebook_snapshot(course.db_url, ASSIGNMENT, COURSE_ID)}


# -- the grades ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_class_is_graded_as_expected_serially(serial):
    scores = {student: {cell: fields["auto_score"] for cell, fields in sub["notebooks"][NOTEBOOK]["grades"].items()}
              for student, sub in serial["snapshot"].items()}
    assert set(scores) == {"right", "wrong", "broken"}
    assert sum(scores["right"].values()) == 12
    assert 0 < sum(scores["wrong"].values()) < 12
    assert not any(scores["broken"].values())  # never run: no score (0 in nbgrader export)
    assert serial["process"].returncode == 1  # nbgrader says a student failed


@pytest.mark.slow
def test_parallel_grades_equal_serial_field_by_field(serial, parallel):
    got, want = parallel["snapshot"], serial["snapshot"]
    assert set(got) == set(want) == {"right", "wrong", "broken"}
    for student in want:
        assert got[student]["student"] == want[student]["student"], student
        assert got[student]["submission"] == want[student]["submission"], student
        mine, theirs = got[student]["notebooks"], want[student]["notebooks"]
        assert set(mine) == set(theirs) == {NOTEBOOK}
        for part in ("fields", "grades", "comments"):
            assert mine[NOTEBOOK][part] == theirs[NOTEBOOK][part], f"{student}: {part} differ"
        assert len(mine[NOTEBOOK]["grades"]) == 6  # six graded cells, each with its own fields
    assert got == want


@pytest.mark.slow
def test_parallel_feedback_shows_what_serial_shows(serial, parallel):
    for student in ("right", "wrong"):
        assert _graded_outputs(parallel["course"], student) == _graded_outputs(serial["course"], student), student
    for course in (serial["course"], parallel["course"]):  # a failed student leaves no autograded notebook
        assert not course.autograded_path("broken", NOTEBOOK).exists()


@pytest.mark.slow
def test_a_file_that_is_no_notebook_fails_that_student_only_with_a_clear_line(parallel):
    process = parallel["process"]
    assert process.returncode == 1, process.stdout + process.stderr
    out = process.stdout
    assert "broken: FAILED (nbgrader exit 1)" in out
    assert "student 'broken', assignment 'triplet_loss'" in out and "not a notebook: invalid JSON" in out
    assert "right: graded in" in out and "wrong: graded in" in out
    assert "2 of 3 graded" in out and "failed (0 for them, see above): broken" in out


@pytest.mark.slow
def test_an_interrupted_run_leaves_the_gradebook_whole(parallel):
    interrupted = parallel["interrupted"]
    assert interrupted["returncode"] == 130, interrupted["output"]
    assert "interrupted: starting no more students" in interrupted["output"]
    assert "not graded (interrupted: run the same command again)" in interrupted["output"]
    assert interrupted["integrity"] == [("ok",)]
    # and the rerun after it graded everyone (the grades are compared with serial above)
    assert "right: graded in" in parallel["process"].stdout


# -- PostgreSQL -----------------------------------------------------------------------------


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL cluster on a Unix socket in a temporary folder; its URL."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install -r requirements.txt)")
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl not found (Debian: apt-get install postgresql; "
                    "`make test` installs it as root)")
    folder = Path(tempfile.mkdtemp(prefix="fr-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to nobody
        runuser = shutil.which("runuser")
        if not runuser:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(folder, user="nobody")
        as_owner = [runuser, "-u", "nobody", "--"]
    data, log = folder / "data", folder / "server.log"
    subprocess.run([*as_owner, initdb, "-D", str(data), "-U", "grader", "--auth=trust", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*as_owner, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
                    "-o", f"-k {folder} -c listen_addresses='' -p 5432 -c fsync=off"],
                   check=True, capture_output=True, timeout=120)
    try:
        import psycopg2

        connection = psycopg2.connect(dbname="postgres", user="grader", host=str(folder), port=5432)
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE gradebook")
        connection.close()
        yield f"postgresql+psycopg2://grader@/gradebook?host={folder}&port=5432"
    finally:
        subprocess.run([*as_owner, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_grading_into_postgresql_gives_the_serial_grades(serial, postgres_url, tmp_path):
    course = Course.create(tmp_path / "postgres", ASSIGNMENT)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", f"--CourseDirectory.db_url={postgres_url}")
    _submit_class(course, students=("right", "broken"))
    process = _parallel(course, "--workers", "2", "--db-url", postgres_url)
    assert process.returncode == 1, process.stdout + process.stderr
    assert "into postgresql+psycopg2://grader@/gradebook" in process.stdout
    assert "1 of 2 graded" in process.stdout and "failed (0 for them, see above): broken" in process.stdout
    assert not (course.root / "gradebook.db").exists()  # nothing went to SQLite
    got = gradebook_snapshot(postgres_url, ASSIGNMENT, COURSE_ID)
    assert got == {student: serial["snapshot"][student] for student in ("right", "broken")}


# -- the command's own checks (no grading) -----------------------------------------------------


def test_busy_timeout_is_added_to_sqlite_urls_only():
    assert with_busy_timeout("sqlite:////course/gradebook.db", 120) == "sqlite:////course/gradebook.db?timeout=120"
    assert with_busy_timeout("sqlite:////g.db?timeout=5", 120) == "sqlite:////g.db?timeout=5"
    assert with_busy_timeout("postgresql://grader@db/facenet", 120) == "postgresql://grader@db/facenet"


def test_missing_gradebook_or_assignment_is_named(tmp_path, capsys):
    from nbgrader.api import Gradebook

    missing = tmp_path / "gradebook.db"
    problem = check_gradebook(f"sqlite:///{missing}", COURSE_ID, ASSIGNMENT)
    assert str(missing) in problem and "nbgrader generate_assignment triplet_loss" in problem
    assert not missing.exists()  # looking did not create it
    with Gradebook(f"sqlite:///{missing}", COURSE_ID):
        pass  # an empty gradebook
    problem = check_gradebook(f"sqlite:///{missing}", COURSE_ID, ASSIGNMENT)
    assert "has no assignment 'triplet_loss'" in problem
    assert "not a database URL" in check_gradebook("no-such-url", COURSE_ID, ASSIGNMENT)

    assert parallel_main([ASSIGNMENT, "--course-dir", str(tmp_path), "--db-url", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no gradebook at" in capsys.readouterr().err


def test_no_submissions_and_bad_options_are_usage_errors(tmp_path, capsys):
    from nbgrader.api import Gradebook

    (tmp_path / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\n")
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(db, COURSE_ID) as gradebook:
        gradebook.add_assignment(ASSIGNMENT)
    assert parallel_main([ASSIGNMENT, "--course-dir", str(tmp_path), "--db-url", db]) == 2
    assert "no submissions of 'triplet_loss'" in capsys.readouterr().err
    assert parallel_main([ASSIGNMENT, "--course-dir", str(tmp_path), "--db-url", db, "--student", "alice"]) == 2
    assert "no submission of 'triplet_loss' for 'alice'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parallel_main([ASSIGNMENT, "--workers", "0"])
    assert "--workers must be at least 1, not 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parallel_main([ASSIGNMENT, "stray"])
    assert "unrecognised arguments stray" in capsys.readouterr().err


# -- the worker pool itself, on scripted stand-ins for nbgrader (seconds) ----------------------


class _Scripted:
    """ParallelAutograde whose 'nbgrader' for each student is a small Python script."""

    def __new__(cls, root: Path, scripts: dict[str, str], **options):
        import io

        from grader.parallel import ParallelAutograde, course_settings

        class Scripted(ParallelAutograde):
            def command(self, student):
                return [sys.executable, "-c", scripts[student]]

        (root / "logs").mkdir()
        return Scripted(course_settings(root), ASSIGNMENT, "sqlite:///unused.db", options.pop("workers", 2),
                        root / "logs", out=io.StringIO(), **options)


def test_the_pool_retries_a_locked_gradebook_and_reports_failures_and_skips(tmp_path):
    counter = tmp_path / "attempts"
    locked_once = (f"import pathlib, sys\np = pathlib.Path({str(counter)!r})\n"
                   "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
                   "if n == 0:\n    print('[AutogradeApp | ERROR] (sqlite3.OperationalError) database is locked')\n"
                   "    sys.exit(1)\n")
    grader = _Scripted(tmp_path, {
        "locked-once": locked_once,
        "broken": "import sys; print('[AutogradeApp | ERROR] student broken: not a notebook'); sys.exit(1)",
        "done-before": "print('[AutogradeApp | INFO] Skipping existing assignment: autograded/done-before')",
    })
    outcomes = {o.student: o for o in grader.run(["locked-once", "broken", "done-before"])}
    assert (outcomes["locked-once"].status, outcomes["locked-once"].attempts) == ("graded", 2)
    assert (outcomes["broken"].status, outcomes["broken"].attempts) == ("failed", 1)  # not retried
    assert outcomes["broken"].errors == ["[AutogradeApp | ERROR] student broken: not a notebook"]
    assert outcomes["done-before"].status == "already graded" and outcomes["done-before"].ok
    report = grader.out.getvalue()
    assert "broken: FAILED (nbgrader exit 1)" in report and "student broken: not a notebook" in report
    assert "done-before: already autograded, left as it is (--force regrades)" in report


def test_a_student_past_its_timeout_is_killed_and_its_folder_removed(tmp_path):
    from grader.parallel import course_settings

    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('started', flush=True); time.sleep(120)"
    half_written = course_settings(tmp_path).autograded_dir("stubborn", ASSIGNMENT)
    half_written.mkdir(parents=True)
    grader = _Scripted(tmp_path, {"stubborn": stubborn}, student_timeout=1, grace=1)
    started = time.monotonic()
    [outcome] = grader.run(["stubborn"])
    assert time.monotonic() - started < 30  # SIGINT ignored: SIGKILL after the grace period
    assert outcome.status == "timed out" and not outcome.ok
    assert "--student-timeout 1 s" in outcome.errors[0]
    assert not half_written.exists()  # a rerun grades it again
