"""Call a learner's function with a wall-clock limit and readable failures."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import threading
import weakref
from importlib import resources
from typing import Any, Callable, Iterator

import numpy as np

from fr_utils.errors import FunctionTimedOut

DEFAULT_TIME_LIMIT_S = 10.0

# Functions that already ran out of time: later checks fail at once instead of
# waiting again.  Redefining the function (running its cell) makes a new object.
_TIMED_OUT: "weakref.WeakSet[Callable[..., Any]]" = weakref.WeakSet()


def one_number(result, name: str, *, if_none: str, if_array: str) -> float:
    """``result`` as a float; AssertionError naming ``name`` on None (``if_none`` is the
    hint), on what is not a number, and on an array (``if_array`` says what to return)."""
    if result is None:
        raise AssertionError(f"{name} returned None: {if_none}")
    try:
        array = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{name} returned {type(result).__name__}, not a number: {error}") from None
    if array.shape != ():
        raise AssertionError(f"{name} returned an array of shape {array.shape}; {if_array}")
    return float(array)


class _Alarm(BaseException):
    """Raised by the SIGALRM handler; a BaseException so that an ``except
    Exception`` inside the learner's loop cannot swallow it."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise ``_Alarm`` in this thread after ``seconds``.

    Uses SIGALRM, so it only works in the main thread of a Unix process (where a
    Jupyter kernel runs your cells).  Anywhere else it sets no limit.  A Python
    loop is interrupted; a single long native call (one huge TensorFlow op)
    finishes first.
    """
    usable = (
        seconds
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        raise _Alarm()

    previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)


def call_with_time_limit(
    function: Callable[..., Any],
    *args: Any,
    seconds: float | None = None,
    **kwargs: Any,
) -> Any:
    """Return ``function(*args, **kwargs)``, failing clearly if it never returns.

    ``seconds`` defaults to :data:`DEFAULT_TIME_LIMIT_S`.

    * more than ``seconds`` of wall time -> :class:`FunctionTimedOut` (an
      ``AssertionError``) naming the function and suggesting an endless loop;
      any later call of the same function object fails the same way at once;
    * ``NotImplementedError`` -> ``AssertionError`` saying the exercise is not
      done yet;
    * any other exception is raised unchanged, with your own traceback.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a learner's own traceback
    if seconds is None:
        seconds = DEFAULT_TIME_LIMIT_S
    name = getattr(function, "__name__", repr(function))
    message = (
        f"{name} did not return within {seconds:g} s. Look for a loop that never "
        "ends (a while loop whose condition never becomes False, an index that is "
        "never incremented)."
    )
    if function in _TIMED_OUT:
        raise FunctionTimedOut(
            f"{name} already ran out of time in an earlier check, so it is not run "
            "again. Fix the endless loop and run its cell again."
        )
    try:
        with _alarm(seconds):
            return function(*args, **kwargs)
    except _Alarm:
        with contextlib.suppress(TypeError):
            _TIMED_OUT.add(function)
        raise FunctionTimedOut(message) from None
    except NotImplementedError as error:
        raise AssertionError(
            f"{name} is not implemented yet: replace `raise NotImplementedError()` "
            "with your code."
        ) from error


@functools.lru_cache(maxsize=1)
def _expected_table() -> dict:
    text = resources.files("fr_utils.checks").joinpath("expected.json").read_text(encoding="utf-8")
    return json.loads(text)


def expected(key: str) -> dict:
    """The stored expected values of one public case (``fr_utils/checks/expected.json``: data
    written by ``python -m grader.expected`` from the grader's references, never the references
    themselves): ``{"expected": ..., "mistakes": {name: value}, ...}``."""
    return _expected_table()[key]
