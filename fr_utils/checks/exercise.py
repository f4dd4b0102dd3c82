"""``check()``: the one call a new graded exercise needs in its test cells (docs/instructors.md).

In a public test cell, with the expected value and the usual mistakes::

    check(l2_distance, [0, 0], [3, 4], expect=5.0,
          mistakes={25.0: "that is the squared distance: take the square root"})

In a hidden test cell, without them (the grader decides, in its own process)::

    check(l2_distance, [1, 2, 3], [4, 6, 3])

Each call runs the learner's function on the arguments (with the time limit of
:func:`fr_utils.checks.call_with_time_limit`) and, while the notebook is
autograded, records what it returned under the case key :func:`case_key` makes
from the call, e.g. ``l2_distance([0, 0], [3, 4])``. The instructor's
``grader/exercises/<notebook>.py`` lists the same calls with a reference
function (``grader.exercise.calls``); the grader judges each record against the
reference's answer with :func:`same`. With ``expect``, the check also fails at
once in the notebook, naming the mistake when the result is one of ``mistakes``.
Nothing here holds a hidden answer.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from fr_utils.checks._record import record
from fr_utils.checks._runner import call_with_time_limit

__all__ = ["check", "case_key", "same"]

_NOTHING = object()


def case_key(name: str, args: tuple = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """The record key of a call: ``name(arg, ..., key=value)``, each value by its ``repr``."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def same(got: Any, want: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Is ``got`` the answer ``want``? Numbers and arrays: same shape and close
    (``numpy.allclose``, finite); ``True``/``False``, ``None`` and strings: equal, of the
    same kind; lists and tuples: item by item; dicts: the same keys, value by value."""
    if want is None or isinstance(want, (str, bool, np.bool_)):
        if isinstance(want, (bool, np.bool_)):
            return isinstance(got, (bool, np.bool_)) and bool(got) == bool(want)
        return type(got) is type(want) and got == want
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and set(got) == set(want) and all(
            same(got[k], want[k], rtol, atol) for k in want)
    try:
        wanted = np.asarray(want, dtype=np.float64)
    except (TypeError, ValueError):
        wanted = None
    if wanted is not None and wanted.dtype.kind == "f":
        if isinstance(got, (str, bool, np.bool_, Mapping)) or got is None:
            return False
        try:
            value = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return value.shape == wanted.shape and bool(np.all(np.isfinite(value))) and bool(
            np.allclose(value, wanted, rtol=rtol, atol=atol))
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(
            same(g, w, rtol, atol) for g, w in zip(got, want))
    return got == want


def check(function: Callable, *args: Any, expect: Any = _NOTHING, mistakes: Mapping | None = None,
          rtol: float = 1e-6, atol: float = 1e-9, case: str | None = None, **kwargs: Any) -> Any:
    """Call ``function(*args, **kwargs)``, record the result for the grader, and with ``expect``
    fail with a readable message unless it is right.

    Args:
        function: the learner's function.
        args, kwargs: its arguments (the case key shows them by ``repr``: use literals).
        expect: the right answer (public checks only); omit it in hidden tests.
        mistakes: ``{wrong answer: hint}`` (or a list of ``(wrong answer, hint)`` pairs), the
            usual mistakes' results and what to say about them.
        rtol, atol: how close a number must be (:func:`same`).
        case: the record key, by default :func:`case_key` of the function's name and arguments.
    Returns:
        What the function returned.
    Raises:
        AssertionError: the result is not ``expect`` (naming the mistake when it is one), the
            function is not written yet, or it ran past its time limit.
    """
    __tracebackhide__ = True
    name = getattr(function, "__name__", "function")
    key = case or case_key(name, args, kwargs)
    result = call_with_time_limit(function, *args, **kwargs)
    record(key, result)
    if expect is _NOTHING:
        return result
    if not same(result, expect, rtol, atol):
        pairs = mistakes.items() if isinstance(mistakes, Mapping) else (mistakes or ())
        for wrong, hint in pairs:
            if same(result, wrong, rtol, atol):
                raise AssertionError(f"{key} returned {result!r}: {hint}")
        raise AssertionError(f"{key}: expected {expect!r}, got {result!r}")
    return result
