"""The sandbox's cost per submission, measured in turns so that a busy machine hurts both sides alike.

    python benchmarks/sandbox_overhead.py [--assignment triplet_loss] [--rounds 5] [--whole]

Runs the instructor's notebook (its solutions, hidden tests included) through
grader.execute.SandboxedExecute, the step of ``nbgrader autograde`` that runs a
submission's kernel, alternately in the bubblewrap sandbox and without it
(``FR_GRADER_UNSANDBOXED=1``), ``--rounds`` times each, and prints the median
seconds of each and the overhead.  The rest of autograde (sanitising, saving
grades) is the same with and without the sandbox.  ``--whole`` times whole
``nbgrader autograde`` calls instead (a class of one, in a temporary course,
again in turns).  Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import machine, peak_memory_mib  # noqa: E402

import nbformat  # noqa: E402

from grader.execute import SandboxedExecute  # noqa: E402
from grader.sandbox import UNSANDBOXED_ENV  # noqa: E402


def run_once(notebook: Path, sandboxed: bool) -> tuple[float, int]:
    """Seconds to run the notebook, and the number of cells that ended in an error."""
    if sandboxed:
        os.environ.pop(UNSANDBOXED_ENV, None)
    else:
        os.environ[UNSANDBOXED_ENV] = "1"
    nb = nbformat.read(str(notebook), as_version=4)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as folder:
        shutil.copy(notebook, folder)
        started = time.perf_counter()
        SandboxedExecute(timeout=600).preprocess(nb, {"metadata": {"path": folder}})
        seconds = time.perf_counter() - started
    os.environ.pop(UNSANDBOXED_ENV, None)
    errors = sum(1 for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error")
    return seconds, errors


def autograde_once(assignment: str, sandboxed: bool) -> tuple[float, int]:
    """Seconds of one ``nbgrader autograde`` call grading the instructor's solution, and 1 if it got full marks."""
    from autograde_seconds import instructor_submission
    from nbgrader_helpers import Course

    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as folder:
        course = Course.create(Path(folder), assignment)
        course.generate_assignment()
        notebooks = sorted(p.stem for p in (REPO / "notebooks" / assignment).glob("*.ipynb"))
        for notebook in notebooks:
            course.submit("student", notebook, instructor_submission(course, notebook))
        if not sandboxed:
            os.environ[UNSANDBOXED_ENV] = "1"
        try:
            started = time.perf_counter()
            course.autograde()
            seconds = time.perf_counter() - started
        finally:
            os.environ.pop(UNSANDBOXED_ENV, None)
        scores = course.scores(notebooks[0])["student"]
        return seconds, int(scores == course.max_scores(notebooks[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assignment", default="triplet_loss")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--whole", action="store_true", help="time whole `nbgrader autograde` calls")
    args = parser.parse_args()
    notebooks = sorted((REPO / "notebooks" / args.assignment).glob("*.ipynb"))
    if not notebooks:
        parser.error(f"no notebook in notebooks/{args.assignment}/")
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    times: dict[str, list[float]] = {"sandbox": [], "no sandbox": []}
    if args.whole:
        for _ in range(args.rounds):
            for mode in times:
                seconds, full = autograde_once(args.assignment, sandboxed=(mode == "sandbox"))
                times[mode].append(seconds)
                print(f"  nbgrader autograde [{mode}] {seconds:6.2f} s, full marks: {bool(full)}", flush=True)
        notebooks = []
    for notebook in notebooks:
        run_once(notebook, sandboxed=True)  # warm the file cache and the sandbox check
        for _ in range(args.rounds):
            for mode in times:
                seconds, errors = run_once(notebook, sandboxed=(mode == "sandbox"))
                times[mode].append(seconds)
                print(f"  {notebook.stem} [{mode}] {seconds:6.2f} s, {errors} error outputs", flush=True)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode, values in times.items():
        what = "nbgrader autograde of one submission" if args.whole else "notebook run"
        print(f"{args.assignment} [{mode}]: median {medians[mode]:.2f} s per {what} "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)")
    print(f"sandbox overhead: {100 * (medians['sandbox'] / medians['no sandbox'] - 1):+.1f}% "
          f"({medians['sandbox'] - medians['no sandbox']:+.2f} s per submission); "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"peak memory: largest kernel {peak_memory_mib(children=True):.0f} MiB")


if __name__ == "__main__":
    main()
