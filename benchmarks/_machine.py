"""What every benchmark prints beside its figures: the machine, and peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> str:
    """One line: CPU model, logical cores usable here, RAM, OS, Python."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram = _ram_gib()
    ram_text = f"{ram:.1f} GiB RAM" if ram is not None else "RAM unknown"
    return (f"{_cpu_model()}, {cores} cores, {ram_text}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _mib(maxrss: int) -> float:
    """ru_maxrss is in KiB on Linux, in bytes on macOS."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def peak_memory_mib(children: bool = False) -> float:
    """Peak resident memory, MiB, of this process (or of its largest finished child process)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return _mib(resource.getrusage(who).ru_maxrss)


def kernel_peak_code() -> str:
    """Python source that prints its own process's peak memory in MiB (run it in a kernel)."""
    return ("import resource as _r, sys as _s\n"
            "print('PEAK_MIB', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / (2**20 if _s.platform == 'darwin' else 1024))")


def shared_dataset(*parts: str, given=None, flag: str | None = None):
    """``fr_utils.datasets.dataset_path(*parts, given=given)``, or None after printing why
    the benchmark is skipped (``$FR_DATASETS`` unset, or the folder missing; ``flag``: the
    option that names the folder instead)."""
    from fr_utils.datasets import dataset_path
    from fr_utils.errors import DatasetsNotFound

    try:
        return dataset_path(*parts, given=given)
    except DatasetsNotFound as err:
        print(f"skipped: {err}" + (f" (or pass {flag})" if flag and given is None else ""))
        return None
