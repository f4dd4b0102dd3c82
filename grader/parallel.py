"""Autograde a class in parallel worker processes, into one gradebook (issue #12).

Run from the course root (the folder of ``nbgrader_config.py``), with the
project's environment first on ``PATH``::

    python -m grader.parallel ASSIGNMENT [--workers 2] [--db-url URL] [--student ID ...] [--force]
                              [--student-timeout SECONDS] [--log-dir DIR] [--NbGraderOption=value ...]

Each submitted student (``submitted/*/ASSIGNMENT``, or those named with
``--student``) is graded by its own ``nbgrader autograde ASSIGNMENT --student ID``
process, at most ``--workers`` at a time.  Every one of them is exactly the
command a serial ``nbgrader autograde ASSIGNMENT`` runs for that student
(same configuration, same sandbox, same hooks), writing into the same gradebook,
so the grades are those of a serial run.  Options this command does not know
(``--Execute.timeout=30``) are passed on to every ``nbgrader autograde``.

The gradebook is nbgrader's ``CourseDirectory.db_url`` (``--db-url`` overrides it):

* SQLite (the default ``gradebook.db``) lets one process write at a time.  Every
  nbgrader process opens it with a busy timeout (``--sqlite-busy-timeout``,
  default 120 s, added to the URL as ``?timeout=``): a writer that finds it locked
  waits for the other's transaction (a few milliseconds; grading one notebook
  takes seconds) instead of failing.  A student whose grading still ends in
  "database is locked" is graded again (``--retries``, default 2).
* PostgreSQL (``postgresql://user@host/db``; needs ``psycopg2``) takes concurrent
  writers as it is.

Each student's outcome is what a serial run gives them: a file that is not the
assignment's notebook gets 0 with one clear line (``grader/submissions.py``),
printed here too, and the rest of the class is graded.  The exit code is 0 when
every student was graded, 1 when one or more failed (they are listed), 2 for a
usage error, 130 when interrupted.

Ctrl-C (or SIGTERM) stops starting students, asks the running ``nbgrader``
processes to stop (SIGINT: nbgrader removes that student's half-written
``autograded/`` folder itself), kills what is left after ``--grace`` seconds
(and removes its ``autograded/`` folder, so that a rerun grades it), and lists
the students not graded.  Every gradebook write is one database transaction, so
a killed process leaves no half-written row: SQLite rolls its journal back,
PostgreSQL the connection's transaction.  Rerun the same command to grade the
rest (``--force`` regrades everyone).

:func:`gradebook_snapshot` reads every stored field of an assignment's
submissions, to compare two gradebooks field by field.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

DEFAULT_BUSY_TIMEOUT_S = 120
LOCKED = "database is locked"
SKIPPED = "Skipping existing assignment"  # nbgrader, for a student already autograded (no --force)


# -- the course -------------------------------------------------------------------


@dataclass
class CourseSettings:
    root: Path
    db_url: str
    course_id: str
    submitted: str  # nbgrader's path pattern pieces
    autograded: str
    coursedir: object = field(repr=False, default=None)

    def submitted_students(self, assignment: str) -> list[str]:
        pattern = self.coursedir.format_path(self.submitted, "*", assignment)
        return sorted(Path(path).parent.name for path in glob(pattern) if os.path.isdir(path))

    def submitted_dir(self, student: str, assignment: str) -> Path:
        return Path(self.coursedir.format_path(self.submitted, student, assignment))

    def autograded_dir(self, student: str, assignment: str) -> Path:
        return Path(self.coursedir.format_path(self.autograded, student, assignment))


def course_settings(root: Path) -> CourseSettings:
    """nbgrader's course directory settings, as ``nbgrader`` run in ``root`` reads them."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (root / "nbgrader_config.py").exists():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(root)
    return CourseSettings(root, coursedir.db_url, coursedir.course_id, coursedir.submitted_directory,
                          coursedir.autograded_directory, coursedir)


def with_busy_timeout(db_url: str, seconds: float) -> str:
    """``db_url`` with SQLite's busy timeout (``?timeout=``) unless it sets one; other databases unchanged."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or "timeout" in url.query:
        return db_url
    return url.update_query_dict({"timeout": str(seconds)}).render_as_string(hide_password=False)


def shown(db_url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the caller
        return db_url


def check_gradebook(db_url: str, course_id: str, assignment: str) -> str | None:
    """None when the gradebook holds ``assignment``; else what is wrong, in one sentence."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(db_url)
    except Exception as err:
        return f"the gradebook URL {db_url!r} is not a database URL ({err})"
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).exists():
            return (f"no gradebook at {url.database}: run `nbgrader generate_assignment {assignment}` "
                    "first (it records the assignment's cells there)")
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url, course_id) as gradebook:
            gradebook.find_assignment(assignment)
    except MissingEntry:
        return (f"the gradebook {shown(db_url)} has no assignment {assignment!r}: run "
                f"`nbgrader generate_assignment {assignment}` with this gradebook first")
    except ImportError as err:
        return f"cannot open the gradebook {shown(db_url)}: {err} (PostgreSQL needs psycopg2)"
    except Exception as err:  # sqlalchemy's OperationalError and friends: say which database
        return f"cannot open the gradebook {shown(db_url)}: {type(err).__name__}: {str(err).splitlines()[0]}"
    return None


# -- grading ------------------------------------------------------------------------


@dataclass
class Outcome:
    student: str
    status: str  # graded | already graded | failed | timed out | interrupted | not started
    seconds: float = 0.0
    returncode: int | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("graded", "already graded")


def error_lines(log_text: str, limit: int = 12) -> list[str]:
    """The ERROR lines of an nbgrader log (their first line each), the clear messages first."""
    lines = [line.strip() for line in log_text.splitlines() if "| ERROR]" in line or line.startswith("ERROR")]
    return lines[:limit]


class ParallelAutograde:
    """Grades students with at most ``workers`` ``nbgrader autograde`` processes at a time."""

    def __init__(self, settings: CourseSettings, assignment: str, db_url: str, workers: int, log_dir: Path,
                 force: bool = False, nbgrader_args: list[str] | None = None, student_timeout: float | None = None,
                 retries: int = 2, grace: float = 20.0, out=sys.stdout):
        self.settings, self.assignment, self.db_url = settings, assignment, db_url
        self.workers, self.log_dir, self.force = workers, log_dir, force
        self.nbgrader_args = list(nbgrader_args or [])
        self.student_timeout, self.retries, self.grace, self.out = student_timeout, retries, grace, out
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen] = {}
        self._killed: set[str] = set()
        self._stopping = threading.Event()

    def command(self, student: str) -> list[str]:
        return [sys.executable, "-m", "nbgrader", "autograde", self.assignment, "--student", student,
                f"--CourseDirectory.db_url={self.db_url}", *(["--force"] if self.force else []),
                *self.nbgrader_args]

    @staticmethod
    def environment() -> dict[str, str]:
        """This interpreter's bin/ first on PATH (nbgrader shells out to ``alembic``), quiet TensorFlow."""
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return env

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def _signal_group(self, proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_process(self, student: str, proc: subprocess.Popen) -> None:
        """SIGINT (nbgrader cleans up), then SIGKILL after the grace period."""
        self._signal_group(proc, signal.SIGINT)
        try:
            proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            with self._lock:
                self._killed.add(student)
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()

    def grade(self, student: str) -> Outcome:
        log = self.log_dir / f"{student}.log"
        outcome = Outcome(student, "not started", log=log)
        started = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            with self._lock:
                if self._stopping.is_set():
                    break
                with open(log, "a", encoding="utf-8") as handle:
                    if attempt > 1:
                        handle.write(f"\n--- attempt {attempt} (the last one ended with {LOCKED!r}) ---\n")
                    handle.flush()
                    proc = subprocess.Popen(self.command(student), cwd=self.settings.root, env=self.environment(),
                                            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                self._running[student] = proc
            outcome.attempts = attempt
            timed_out = False
            try:
                returncode = proc.wait(timeout=self.student_timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._stop_process(student, proc)
                returncode = proc.returncode
            finally:
                with self._lock:
                    self._running.pop(student, None)
            outcome.returncode = returncode
            outcome.seconds = time.perf_counter() - started
            text = log.read_text(encoding="utf-8", errors="replace")
            outcome.errors = error_lines(text)
            if timed_out:
                outcome.status = "timed out"
                outcome.errors.insert(0, f"nbgrader still running after --student-timeout {self.student_timeout:g} s: stopped")
                self._remove_if_killed(student)
                return outcome
            if self._stopping.is_set() and returncode != 0:
                outcome.status = "interrupted"
                self._remove_if_killed(student)
                return outcome
            if returncode == 0:
                outcome.status = "already graded" if SKIPPED in text else "graded"
                return outcome
            outcome.status = "failed"
            if LOCKED not in text.rsplit("--- attempt", 1)[-1]:
                return outcome
        if self._stopping.is_set() and outcome.status == "not started":
            outcome.seconds = 0.0
        return outcome

    def _remove_if_killed(self, student: str) -> None:
        """A killed nbgrader could not remove its half-written autograded/ folder: remove it, so a rerun grades it."""
        if student in self._killed:
            shutil.rmtree(self.settings.autograded_dir(student, self.assignment), ignore_errors=True)

    def stop(self) -> None:
        """Start no more students; stop the running ones (in parallel, each with its grace period).
        A second Ctrl-C meanwhile is ignored: leaving now would orphan the running nbgraders."""
        self._stopping.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        with self._lock:
            running = list(self._running.items())
        stoppers = [threading.Thread(target=self._stop_process, args=item, daemon=True) for item in running]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    def run(self, students: list[str]) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="autograde")
        futures = {pool.submit(self.grade, student): student for student in students}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                outcome = future.result()
                outcomes[outcome.student] = outcome
                self._report(done, len(students), outcome)
        except KeyboardInterrupt:
            self._say("interrupted: starting no more students, stopping the running ones "
                      f"(SIGINT, SIGKILL after {self.grace:g} s)")
            self.stop()
            for future, student in futures.items():
                future.cancel()
            pool.shutdown(wait=True)
            for future, student in futures.items():
                if student in outcomes:
                    continue
                if future.cancelled() or not future.done():
                    outcomes[student] = Outcome(student, "not started")
                else:
                    outcomes[student] = future.result()
            raise Interrupted([outcomes[s] for s in students])
        pool.shutdown(wait=True)
        return [outcomes[s] for s in students]

    def _report(self, done: int, total: int, outcome: Outcome) -> None:
        head = f"[{done}/{total}] {outcome.student}: "
        if outcome.status == "already graded":
            self._say(head + "already autograded, left as it is (--force regrades)")
            return
        if outcome.ok:
            self._say(head + f"graded in {outcome.seconds:.1f} s")
            return
        lines = [head + f"{outcome.status.upper()} (nbgrader exit {outcome.returncode}) after {outcome.seconds:.1f} s"]
        lines += [f"    {line}" for line in outcome.errors] or ["    (no ERROR line in its log)"]
        lines.append(f"    log: {outcome.log}")
        self._say("\n".join(lines))


class Interrupted(Exception):
    def __init__(self, outcomes: list[Outcome]):
        super().__init__("interrupted")
        self.outcomes = outcomes


# -- the gradebook, field by field -------------------------------------------------------


def _fields(row) -> dict:
    """Every stored column of a gradebook row but its own and foreign ids (random per gradebook)."""
    from sqlalchemy import inspect

    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs
            if attr.key != "id" and not attr.key.endswith("_id")}


def gradebook_snapshot(db_url: str, assignment: str, course_id: str) -> dict:
    """``{student: {"student": ..., "submission": ..., "notebooks": {name: {"fields", "grades", "comments"}}}}``:
    every stored field of every submission of ``assignment`` (scores per cell, comments,
    flags, timestamps, penalties), keyed by names, not by the gradebook's random ids."""
    from nbgrader.api import Gradebook

    snapshot = {}
    with Gradebook(db_url, course_id) as gradebook:
        for submission in gradebook.find_assignment(assignment).submissions:
            notebooks = {}
            for notebook in submission.notebooks:
                notebooks[notebook.name] = {
                    "fields": _fields(notebook),
                    "grades": {grade.name: _fields(grade) for grade in notebook.grades},
                    "comments": {comment.name: _fields(comment) for comment in notebook.comments},
                }
            snapshot[submission.student.id] = {
                "student": _fields(submission.student),
                "submission": _fields(submission),
                "notebooks": notebooks,
            }
    return snapshot


# -- the command ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader.parallel",
        description="Autograde the submissions of one assignment in parallel nbgrader processes, "
                    "into one gradebook (the grades of a serial `nbgrader autograde`).",
        epilog="Other --Option=value arguments are passed on to every `nbgrader autograde`.")
    parser.add_argument("assignment")
    parser.add_argument("--workers", type=int, default=2,
                        help="nbgrader processes at a time (default 2; each grades one student and runs its kernel)")
    parser.add_argument("--db-url", help="the gradebook (default: nbgrader's CourseDirectory.db_url, gradebook.db); "
                                         "e.g. postgresql://grader@dbhost/facenet")
    parser.add_argument("--student", action="append", metavar="ID",
                        help="grade only this student (repeatable; default: every submitted/*/ASSIGNMENT)")
    parser.add_argument("--force", action="store_true", help="regrade students already autograded (nbgrader --force)")
    parser.add_argument("--course-dir", type=Path, default=Path.cwd(),
                        help="the course root, holding nbgrader_config.py (default: the current folder)")
    parser.add_argument("--student-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop a student's nbgrader after this long (default: none; cells have their own "
                             "Execute.timeout)")
    parser.add_argument("--sqlite-busy-timeout", type=float, default=DEFAULT_BUSY_TIMEOUT_S, metavar="SECONDS",
                        help=f"how long a writer waits for SQLite's lock (default {DEFAULT_BUSY_TIMEOUT_S})")
    parser.add_argument("--retries", type=int, default=2,
                        help=f"grade a student again when nbgrader ended with {LOCKED!r} (default 2)")
    parser.add_argument("--grace", type=float, default=20.0, metavar="SECONDS",
                        help="after Ctrl-C, seconds the running nbgrader processes get to stop before SIGKILL")
    parser.add_argument("--log-dir", type=Path, help="keep each student's full nbgrader log here as <student>.log "
                                                     "(default: a temporary folder, removed at the end)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if not (arg.startswith("--") and "=" in arg)]
    if unknown:
        parser.error(f"unrecognised arguments {' '.join(unknown)} (nbgrader options are passed on as --Class.option=value)")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    if args.retries < 0:
        parser.error(f"--retries must be 0 or more, not {args.retries}")
    root = args.course_dir.resolve()
    if not root.is_dir():
        parser.error(f"--course-dir {args.course_dir}: no such folder")

    settings = course_settings(root)
    db_url = with_busy_timeout(args.db_url or settings.db_url, args.sqlite_busy_timeout)
    problem = check_gradebook(db_url, settings.course_id, args.assignment)
    if problem:
        print(f"grader.parallel: {problem}", file=sys.stderr)
        return 2
    if args.student:
        students = list(dict.fromkeys(args.student))
        missing = [s for s in students if not settings.submitted_dir(s, args.assignment).is_dir()]
        if missing:
            print(f"grader.parallel: no submission of {args.assignment!r} for "
                  f"{', '.join(map(repr, missing))} (looked for {settings.submitted_dir(missing[0], args.assignment)})",
                  file=sys.stderr)
            return 2
    else:
        students = settings.submitted_students(args.assignment)
        if not students:
            print(f"grader.parallel: no submissions of {args.assignment!r} in "
                  f"{settings.coursedir.format_path(settings.submitted, '*', args.assignment)}", file=sys.stderr)
            return 2

    workers = min(args.workers, len(students))
    print(f"grading {len(students)} submissions of {args.assignment!r} with {workers} worker"
          f"{'s' if workers > 1 else ''} into {shown(db_url)}", flush=True)
    temporary = None
    if args.log_dir:
        log_dir = args.log_dir.resolve()
        log_dir.mkdir(parents=True, exist_ok=True)
        for student in students:  # logs of this run only
            (log_dir / f"{student}.log").unlink(missing_ok=True)
    else:
        temporary = tempfile.TemporaryDirectory(prefix=f"autograde-{args.assignment}-")
        log_dir = Path(temporary.name)

    grader = ParallelAutograde(settings, args.assignment, db_url, workers, log_dir, force=args.force,
                               nbgrader_args=extra, student_timeout=args.student_timeout, retries=args.retries,
                               grace=args.grace)
    # Ctrl-C and SIGTERM stop the class cleanly, even where SIGINT came in ignored (a background job)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        outcomes = grader.run(students)
        interrupted = False
    except Interrupted as stop:
        outcomes, interrupted = stop.outcomes, True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    seconds = time.perf_counter() - started

    graded = [o.student for o in outcomes if o.ok]
    failed = [o.student for o in outcomes if o.status in ("failed", "timed out")]
    left = [o.student for o in outcomes if o.status in ("interrupted", "not started")]
    print(f"{len(graded)} of {len(students)} graded in {seconds:.1f} s "
          f"({60 * len(graded) / seconds if seconds else 0:.1f} per minute)"
          + (f"; failed (0 for them, see above): {', '.join(failed)}" if failed else "")
          + (f"; not graded (interrupted: run the same command again): {', '.join(left)}" if left else ""),
          flush=True)
    if args.log_dir:
        print(f"logs: {log_dir}/<student>.log")
    if temporary is not None:
        temporary.cleanup()
    if interrupted:
        return 130
    return 0 if not failed else 1


def _terminate(signum, frame):  # SIGINT, SIGTERM: stop as on Ctrl-C
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
