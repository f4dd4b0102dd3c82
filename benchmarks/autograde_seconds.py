"""Seconds per autograded submission: the real nbgrader cycle on this machine.

    python benchmarks/autograde_seconds.py [--assignment triplet_loss] [--students 10] [--sandbox both|on|off]

In a temporary course directory (nbgrader_config.py + notebooks/<assignment>):
``nbgrader generate_assignment``, then the instructor's solution submitted by
``--students`` students, then

  * ``nbgrader autograde`` of a class of 1 (start-up cost + one notebook);
  * ``nbgrader autograde`` of the whole class in one call;

and prints the wall time of each, the seconds per submission, the peak memory, and the marginal
cost of one more submission ((class - single) / (students - 1)), which is what
grading a large class costs per student.  Each submission starts its own kernel
and imports TensorFlow, so that dominates.  Asserts nothing.

``--sandbox both`` (the default) measures the same class twice: with each kernel in
the bubblewrap sandbox (grader/sandbox.py) and without it (``FR_GRADER_UNSANDBOXED=1``:
nbgrader's plain kernel), then prints the sandbox's overhead per submission.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _machine import machine, peak_memory_mib  # noqa: E402

from nbgrader_helpers import SOLUTION_BEGIN, SOLUTION_END, Course  # noqa: E402


def instructor_submission(course: Course, notebook: str):
    """The release with every solution cell replaced by the source's (markers removed)."""
    source = course.read_source(notebook)
    solutions = {
        cell.metadata["nbgrader"]["grade_id"]: "\n".join(
            line for line in cell.source.splitlines() if SOLUTION_BEGIN not in line and SOLUTION_END not in line
        )
        for cell in source.cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    release = course.read_release(notebook)
    for cell in release.cells:
        cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell_id in solutions:
            cell.source = solutions[cell_id]
    return release


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assignment", default="triplet_loss")
    parser.add_argument("--students", type=int, default=10, help="class size (default 10)")
    parser.add_argument("--sandbox", choices=["both", "on", "off"], default="both",
                        help="grade in the bubblewrap sandbox, without it, or both and compare (default)")
    args = parser.parse_args()
    if args.students < 2:
        parser.error("--students must be at least 2")

    notebooks = sorted(p.stem for p in (REPO / "notebooks" / args.assignment).glob("*.ipynb"))
    print(f"machine: {machine()}")
    print(f"assignment: {args.assignment} ({', '.join(notebooks)}), class of {args.students}")

    results = {}
    modes = {"both": ["sandbox", "no sandbox"], "on": ["sandbox"], "off": ["no sandbox"]}[args.sandbox]
    for mode in modes:
        results[mode] = measure(args.assignment, notebooks, args.students, sandboxed=(mode == "sandbox"))
        one, many, graded_full = results[mode]
        marginal = (many - one) / (args.students - 1)
        print(f"[{mode}] nbgrader autograde, 1 submission:            {one:6.1f} s")
        print(f"[{mode}] nbgrader autograde, {args.students:3d} submissions (1 call): {many:6.1f} s"
              f"  = {many / args.students:.2f} s per submission")
        print(f"[{mode}] marginal cost of one more submission:        {marginal:6.2f} s")
        print(f"[{mode}] full marks: {graded_full}/{args.students} submissions")
    if len(results) == 2:
        (one_s, many_s, _), (one_n, many_n, _) = results["sandbox"], results["no sandbox"]
        print(f"sandbox overhead: {100 * (many_s / many_n - 1):+.1f}% per submission in a class of {args.students} "
              f"({many_s / args.students:.2f} s vs {many_n / args.students:.2f} s), "
              f"{100 * (one_s / one_n - 1):+.1f}% for a class of 1")
    print(f"peak memory: largest child process (nbgrader or a kernel) {peak_memory_mib(children=True):.0f} MiB, "
          f"this script {peak_memory_mib():.0f} MiB")


def measure(assignment: str, notebooks: list[str], students: int, sandboxed: bool) -> tuple[float, float, int]:
    """(seconds for a class of 1, seconds for the class, submissions with full marks)."""
    if sandboxed:
        os.environ.pop("FR_GRADER_UNSANDBOXED", None)
    else:
        os.environ["FR_GRADER_UNSANDBOXED"] = "1"
    try:
        with tempfile.TemporaryDirectory(prefix="autograde-bench-") as tmp:
            single = Course.create(Path(tmp) / "single", assignment)
            whole = Course.create(Path(tmp) / "class", assignment)
            for course, size in ((single, 1), (whole, students)):
                course.generate_assignment()
                for notebook in notebooks:
                    submission = instructor_submission(course, notebook)
                    for index in range(size):
                        course.submit(f"student{index:03d}", notebook, submission)

            one = timed(single.autograde)
            many = timed(whole.autograde)
            scores = whole.scores(notebooks[0])
            full = sum(whole.max_scores(notebooks[0]).values())
            graded_full = sum(1 for cells in scores.values() if sum(cells.values()) == full)
    finally:
        os.environ.pop("FR_GRADER_UNSANDBOXED", None)
    return one, many, graded_full

if __name__ == "__main__":
    main()
