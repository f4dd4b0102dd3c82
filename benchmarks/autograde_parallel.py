"""Submissions per minute with 1 and 2 parallel autograde workers, and peak memory.

    python benchmarks/autograde_parallel.py [--assignments triplet_loss door] [--students 6] [--workers 1 2]

For each assignment, one temporary course (nbgrader_config.py + notebooks/<assignment>)
with a class of ``--students`` submissions, half correct and half with typical
mistakes (tests/triplet_submissions.py, tests/door_submissions.py).  The class is
graded with ``python -m grader.parallel ASSIGNMENT --workers W --force`` for each
W of ``--workers`` (the same class, regraded), and for each run the script prints

  * wall time and submissions per minute;
  * peak memory: the largest sum of resident memory (RSS) over the whole process
    tree of that run (grader.parallel, its nbgrader processes, their sandboxed
    kernels), sampled from /proc every 0.2 s with psutil (shared pages counted
    once per process, so an upper bound);
  * whether the grades equal those of the first run, field by field
    (grader.parallel.gradebook_snapshot);
  * the 1-minute load average before and after (the machine may be shared).

Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import psutil  # noqa: E402
from _machine import machine  # noqa: E402

from grader.parallel import gradebook_snapshot  # noqa: E402
from nbgrader_helpers import Course, cell_by_id, nbgrader_env, solution_code, with_sources  # noqa: E402

COURSE_ID = "facenet"


def triplet_class(course: Course, size: int) -> dict:
    from triplet_submissions import CORRECT_LOSS, CORRECT_SEMI_HARD, WRONG_LOSS, WRONG_SEMI_HARD

    source, release = course.read_source("triplet_loss"), course.read_release("triplet_loss")
    loss, semi = "triplet_loss_solution", "semi_hard_solution"
    right_semi = solution_code(cell_by_id(source, semi).source)
    rights = [(code, semi_code) for code, semi_code in zip(CORRECT_LOSS.values(), _cycle(CORRECT_SEMI_HARD.values()))]
    wrongs = [(code, semi_code) for code, semi_code in
              zip(WRONG_LOSS.values(), _cycle([right_semi, *WRONG_SEMI_HARD.values()]))]
    return {f"student{index:02d}": with_sources(release, {loss: pair[0], semi: pair[1]})
            for index, pair in enumerate(_alternate(rights, wrongs, size))}


def door_class(course: Course, size: int) -> dict:
    from door_submissions import (CORRECT_DATABASE, CORRECT_VERIFY, CORRECT_WHO, WRONG_DATABASE, WRONG_VERIFY,
                                  WRONG_WHO)

    release = course.read_release("door")
    cells = ("build_database_solution", "verify_solution", "who_is_it_solution")
    rights = list(zip(_cycle(CORRECT_DATABASE.values()), _cycle(CORRECT_VERIFY.values()), CORRECT_WHO.values()))
    wrongs = list(zip(_cycle(WRONG_DATABASE.values()), WRONG_VERIFY.values(), _cycle(WRONG_WHO.values())))
    return {f"student{index:02d}": with_sources(release, dict(zip(cells, codes)))
            for index, codes in enumerate(_alternate(rights, wrongs, size))}


def _cycle(values):
    values = list(values)
    while True:
        yield from values


def _alternate(rights: list, wrongs: list, size: int) -> list:
    """right, wrong, right, wrong, ... (reusing each list from its start when it runs out)."""
    right, wrong = _cycle(rights), _cycle(wrongs)
    return [next(right) if index % 2 == 0 else next(wrong) for index in range(size)]


CLASSES = {"triplet_loss": triplet_class, "door": door_class}


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def grade(course: Course, workers: int) -> tuple[float, int, int, str]:
    """(seconds, peak RSS of the process tree in bytes, exit code, last line of output)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "grader.parallel", course.assignment, "--workers", str(workers),
                                "--force"], cwd=course.root, env=nbgrader_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peak, watched, done = 0, psutil.Process(process.pid), threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    lines = [line for line in output.splitlines() if line.strip()]
    return seconds, peak, process.returncode, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assignments", nargs="+", default=["triplet_loss", "door"], choices=sorted(CLASSES))
    parser.add_argument("--students", type=int, default=6, help="class size (default 6)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)")
    args = parser.parse_args()
    if args.students < 1 or any(w < 1 for w in args.workers):
        parser.error("--students and --workers must be at least 1")
    os.environ.pop("FR_DATASETS", None)  # the door notebook's section 4 on the sample cast, as in its autograde test

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="autograde-parallel-") as tmp:
        for assignment in args.assignments:
            course = Course.create(Path(tmp) / assignment, assignment)
            course.generate_assignment()
            for student, notebook in CLASSES[assignment](course, args.students).items():
                course.submit(student, assignment, notebook)
            reference = None
            for workers in args.workers:
                load_before = os.getloadavg()[0]
                seconds, peak, code, last = grade(course, workers)
                snapshot = gradebook_snapshot(course.db_url, assignment, COURSE_ID)
                reference = reference or snapshot
                full = sum(1 for sub in snapshot.values()
                           if all(g["auto_score"] == g["max_score"] for g in sub["notebooks"][assignment]["grades"].values()))
                print(f"{assignment}, {args.students} submissions, {workers} worker{'s' if workers > 1 else ''}: "
                      f"{seconds:6.1f} s = {60 * args.students / seconds:5.1f} submissions/min; "
                      f"peak RSS of the process tree {peak / 2**30:.2f} GiB; full marks {full}/{len(snapshot)}; "
                      f"grades equal to the first run: {'yes' if snapshot == reference else 'NO'}; exit {code}; "
                      f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after", flush=True)
                if code != 0:
                    print(f"    grader.parallel said: {last}")


if __name__ == "__main__":
    main()
