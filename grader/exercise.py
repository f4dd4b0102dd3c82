"""The grader's side of a new graded exercise, in a few lines (docs/instructors.md).

An instructor who adds ``notebooks/<assignment>/<notebook>.ipynb`` writes
``grader/exercises/<notebook>.py`` holding a reference function and ``CELLS``,
the calls each graded test cell makes with ``fr_utils.checks.exercise.check``::

    from grader.exercise import calls

    def l2_distance(a, b):                       # the reference: it never reaches the learners
        return float(np.linalg.norm(np.subtract(a, b, dtype=float)))

    CELLS = {                                    # grade_id of each test cell -> its cases
        "l2_distance_public": calls(l2_distance, [([0, 0], [3, 4])]),
        "l2_distance_hidden": calls(l2_distance, [([1, 2, 3], [4, 6, 3]), ([0.5], [-0.5])], hidden=True,
                                    mistakes={"that is the squared distance": lambda a, b: 25.0}),
    }

:func:`exercise_cells` finds that module by the notebook's name when
``grader.cases`` has no cases of its own for it, so ``DecideGrades`` judges the
new notebook's cells like the course's: a cell keeps its points only if each of
its calls recorded exactly once a result :func:`fr_utils.checks.exercise.same`
finds equal to the reference's, computed here, in nbgrader's process.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Mapping, Optional, Sequence

from fr_utils.checks.exercise import case_key, same
from grader.cases import Case, shown
from grader.records import Array, Opaque

__all__ = ["calls", "exercise_cells"]


class _Unjudgeable:
    """A recorded value that cannot equal any answer (an object, an array too large to record)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def plain(value: Any) -> Any:
    """A decoded record (grader.records) as plain Python: arrays as NumPy arrays."""
    if isinstance(value, Array):
        return value.values if value.values is not None else _Unjudgeable(shown(value))
    if isinstance(value, Opaque):
        return _Unjudgeable(shown(value))
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _as_args(item: Any) -> tuple:
    return item if isinstance(item, tuple) else (item,)


def calls(reference: Callable, arguments: Sequence, *, hidden: bool = False,
          mistakes: Optional[Mapping[str, Callable]] = None, name: Optional[str] = None,
          rtol: float = 1e-6, atol: float = 1e-9) -> list[Case]:
    """The cases of one test cell: ``reference(*args)`` for each ``args`` of ``arguments``.

    Args:
        reference: the right function; its name is the learners' function's (or pass ``name``).
        arguments: one tuple of positional arguments per call (a value that is not a tuple
            is the only argument), written as in the notebook's ``check(...)`` calls.
        hidden: a hidden test: its messages never show the expected value.
        mistakes: ``{hint: wrong_function}``: when the learner's result is what
            ``wrong_function(*args)`` returns, the message gives the hint.
        rtol, atol: how close a number must be.
    Returns:
        One :class:`grader.cases.Case` per call, keyed as ``check`` keys its record.
    """
    name = name or reference.__name__
    cases = []
    for item in arguments:
        args = _as_args(item)
        key = case_key(name, args)
        want = reference(*args)
        wrong = [(hint, wrong_function(*args)) for hint, wrong_function in (mistakes or {}).items()]
        cases.append(Case(key, f"Hidden test: {key}" if hidden else key, hidden,
                          _judge(want, wrong, hidden, rtol, atol)))
    return cases


def _judge(want: Any, wrong: list[tuple[str, Any]], hidden: bool, rtol: float, atol: float):
    def judge(value: Any) -> Optional[str]:
        got = plain(value)
        if same(got, want, rtol, atol):
            return None
        hints = [hint for hint, answer in wrong if same(got, answer, rtol, atol)]
        said = f"your function returned {shown(value)}"
        if hints:
            return f"{said}: {hints[0]}"
        return f"{said}, which is not the right answer" if hidden else f"expected {want!r}, got {shown(value)}"

    return judge


def exercise_cells(notebook: str) -> Optional[dict[str, list[Case]]]:
    """``CELLS`` of ``grader/exercises/<notebook>.py``, or None when there is no such module."""
    if not notebook.isidentifier():
        return None
    module_name = f"grader.exercises.{notebook}"
    if importlib.util.find_spec(module_name) is None:
        return None
    return dict(importlib.import_module(module_name).CELLS)
