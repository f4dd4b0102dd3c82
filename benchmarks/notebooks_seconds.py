"""Whole-course execution time: every instructor notebook, top to bottom.

    python benchmarks/notebooks_seconds.py [--timeout 1200] [notebooks/<assignment>/<name>.ipynb ...]

Copies each assignment folder ``notebooks/<assignment>/`` to a temporary folder
and executes each of its notebooks (the instructor versions, solutions and
hidden tests included) with nbclient in a fresh kernel, as a student's
"Restart and run all" would. Prints, per notebook, the wall time, the kernel's
peak resident memory (read by a cell appended at the end) and whether it ran
without error, then the total. Picks up whatever notebooks exist. Exit status 1
when a notebook fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _machine import kernel_peak_code, machine

REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, timeout: int) -> tuple[float, float | None, str | None]:
    """(seconds, kernel peak MiB, error or None) for one notebook, run in a temporary copy."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    with tempfile.TemporaryDirectory(prefix="nb-bench-") as tmp:
        folder = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, folder)
        nb = nbformat.read(folder / path.name, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(kernel_peak_code()))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as err:
            error = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        except Exception as err:  # timeouts, dead kernels
            error = f"{type(err).__name__}: {err}"
        seconds = time.perf_counter() - start
        peak = None
        for out in nb.cells[-1].get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("PEAK_MIB"):
                    peak = float(line.split()[1])
        return seconds, peak, error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*/*.ipynb")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.notebooks] or sorted((REPO / "notebooks").glob("*/*.ipynb"))
    if not paths:
        print("no notebooks found under notebooks/*/")
        return 0
    print(f"machine: {machine()}")
    total, failed = 0.0, 0
    for path in paths:
        seconds, peak, error = run_notebook(path, args.timeout)
        total += seconds
        failed += error is not None
        peak_text = f"{peak:7.0f} MiB" if peak is not None else "      ? MiB"
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{str(name):68s} {seconds:7.1f} s  kernel peak {peak_text}  "
              f"{'ok' if error is None else 'FAILED: ' + error}", flush=True)
    print(f"{'total (' + str(len(paths)) + ' notebooks)':68s} {total:7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
