"""The sandbox's cost per submission, measured in turns so that a busy machine hurts both sides alike.

    python benchmarks/sandbox_overhead.py [--assignment triplet_loss] [--rounds 5]

Runs the instructor's notebook (its solutions, hidden tests included) through
grader.execute.SandboxedExecute, the step of ``nbgrader autograde`` that runs a
submission's kernel, alternately in the bubblewrap sandbox and without it
(``FR_GRADER_UNSANDBOXED=1``), ``--rounds`` times each, and prints the median
seconds of each and the overhead.  The rest of autograde (sanitising, saving
grades) is the same with and without the sandbox.  Asserts nothing.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assignment", default="triplet_loss")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    notebooks = sorted((REPO / "notebooks" / args.assignment).glob("*.ipynb"))
    if not notebooks:
        parser.error(f"no notebook in notebooks/{args.assignment}/")
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    times: dict[str, list[float]] = {"sandbox": [], "no sandbox": []}
    for notebook in notebooks:
        run_once(notebook, sandboxed=True)  # warm the file cache and the sandbox check
        for _ in range(args.rounds):
            for mode in times:
                seconds, errors = run_once(notebook, sandboxed=(mode == "sandbox"))
                times[mode].append(seconds)
                print(f"  {notebook.stem} [{mode}] {seconds:6.2f} s, {errors} error outputs", flush=True)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode, values in times.items():
        print(f"{args.assignment} [{mode}]: median {medians[mode]:.2f} s per notebook run "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)")
    print(f"sandbox overhead: {100 * (medians['sandbox'] / medians['no sandbox'] - 1):+.1f}% "
          f"({medians['sandbox'] - medians['no sandbox']:+.2f} s per submission); "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"peak memory: largest kernel {peak_memory_mib(children=True):.0f} MiB")


if __name__ == "__main__":
    main()
