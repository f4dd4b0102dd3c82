"""A failing public check, shown in a notebook as its message first (issue #12, item 7).

IPython shows an ``AssertionError`` raised inside ``fr_utils/checks/`` as a
traceback ending in the library's own source, the message last, after 20 lines
a learner has no use for. :func:`install` (run when ``fr_utils.checks`` is
imported in IPython or a Jupyter kernel) registers a handler for
``AssertionError``: when the innermost frame is a check's, the cell's output is
the message, then one line saying which check raised it and from which line of
the cell. Every other error, including a learner's own ``AssertionError`` or an
exception from inside the learner's function, keeps IPython's full traceback.
The cell still fails (nbgrader grades it as failed).
"""

from __future__ import annotations

import linecache
from pathlib import Path

CHECKS_DIR = Path(__file__).resolve().parent


def _in_checks(filename: str) -> bool:
    try:
        return Path(filename).resolve().parent == CHECKS_DIR
    except (OSError, ValueError):
        return False


def check_failure_lines(etype, value, tb) -> list[str] | None:
    """The short display of a check's failure, or None when the error is not one."""
    if not (isinstance(etype, type) and issubclass(etype, AssertionError)) or tb is None:
        return None
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        last_lineno = tb.tb_lineno
        tb = tb.tb_next
    innermost = frames[-1]
    if not _in_checks(innermost.f_code.co_filename):
        return None
    check = next((f for f in frames if _in_checks(f.f_code.co_filename)), innermost)
    caller = next((f for f in reversed(frames[: frames.index(check)])), None)
    where = f"fr_utils/checks/{Path(check.f_code.co_filename).name}, {check.f_code.co_name}()"
    lines = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}", ""]
    if caller is not None:
        code = linecache.getline(caller.f_code.co_filename, caller.f_lineno).strip()
        lines.append(f"(a public check failed: {where}, called by line {caller.f_lineno} of this cell: {code})")
    else:
        lines.append(f"(a public check failed: {where}, line {last_lineno})")
    return lines


def _handler(shell, etype, value, tb, tb_offset=None):
    lines = check_failure_lines(etype, value, tb)
    if lines is None:  # not a check's failure: IPython's usual traceback
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, lines)
    return lines


def install() -> bool:
    """Register the handler in the running IPython shell; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "_fr_utils_check_display", False):
        return shell is not None
    if shell.custom_exceptions:  # someone else's handler: leave it alone
        return False
    shell.set_custom_exc((AssertionError,), _handler)
    shell._fr_utils_check_display = True
    return True
