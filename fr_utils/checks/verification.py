"""Public checks for ``notebooks/verification_recognition/verification_recognition.ipynb``.

Exercise 1, ``false_accept_rate_1_to_k(far_1_to_1, k)``::

    check_far_one_person       K = 1: the system's FAR is the per-comparison FAR
    check_far_two_people       K = 2, FAR 0.1: 0.19, where every usual mistake differs
    check_far_many_people      K = 10,000 at FAR 1e-4: about 0.632, never above 1
    check_far_edge_cases       nobody enrolled, a perfect and a useless comparison

Exercise 2, ``max_enrolled(far_1_to_1, budget)``::

    check_max_enrolled_small   FAR 0.1, budget 0.2 and 0.27: K = 2
    check_max_enrolled_door    FAR 1e-3, budget 0.1: K = 105 (106 already exceeds it),
                               and two more doors
    check_max_enrolled_budget_below_far   the budget is below one comparison's FAR: 0

Each check raises ``AssertionError`` saying what was expected, what your
function returned and, when the result matches a usual mistake, which one.  The
``*_runs`` functions only check that your function can be called; the notebook
uses them in front of the hidden tests.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from fr_utils.checks._record import record
from fr_utils.checks._runner import call_with_time_limit, expected, one_number

# --------------------------------------------------------------------------
# Exercise 1: false_accept_rate_1_to_k
# --------------------------------------------------------------------------


FAR_CASES = {
    "far/one_person/0.01": (0.01, 1),
    "far/one_person/0.25": (0.25, 1),
    "far/two_people": (0.1, 2),
    "far/many/1e-4": (1e-4, 10_000),
    "far/many/1e-3": (1e-3, 50),
    "far/nobody": (0.05, 0),
    "far/never_accepts": (0.0, 1000),
    "far/always_accepts": (1.0, 3),
}
"""The public inputs of the false-accept checks, by record key: (far_1_to_1, k).  Their
expected values and the values of the usual mistakes are in fr_utils/checks/expected.json."""


_expected = expected


_FAR_HINTS = {
    "times_k": (
        "you multiplied the rate by K. That is only a first approximation, fine while "
        "far * K is small, but it grows without bound (above 1 for large K) and counts "
        "twice a stranger who matches two people. Compute the chance that NO comparison "
        "accepts, (1 - far)^K, and take its complement."
    ),
    "none_accept": (
        "this is (1 - far)^K, the chance that every one of the K comparisons REJECTS "
        "the stranger. The door opens when at least one accepts: take 1 minus it."
    ),
    "all_accept": (
        "this is far^K, the chance that ALL K comparisons accept the stranger. The door "
        "opens as soon as ONE of them does: 1 - (1 - far)^K."
    ),
    "k_minus_1": (
        "the exponent is off by one (K - 1): with K people enrolled, the probe photo is "
        "compared K times, once with each of them."
    ),
    "k_plus_1": (
        "the exponent is off by one (K + 1): with K people enrolled, the probe photo is "
        "compared K times, once with each of them."
    ),
    "one_minus_far_k": (
        "this is 1 - far^K: the complement of 'every comparison accepts'. The door stays "
        "shut only if every comparison rejects, which happens with probability (1 - far)^K."
    ),
    "percent": (
        "the result looks like a percentage. Return a probability between 0 and 1."
    ),
}


def _close(got: float, want: float, rtol: float = 1e-6, atol: float = 1e-12) -> bool:
    return abs(got - want) <= atol + rtol * abs(want)


def _number(result, name: str) -> float:
    """A single finite number; fail clearly on None, arrays and non-numbers."""
    value = one_number(result, name, if_none="did you forget the return statement?",
                       if_array="return a single number.")
    if not math.isfinite(value):
        raise AssertionError(f"{name} returned {value}; expected a finite number.")
    return value


def _run_case(function: Callable, cases: dict, key: str, convert: Callable):
    """Call ``function`` on the public case ``key`` of ``cases`` and record what it returned:
    ``(arguments, convert(result), stored expected data)``."""
    arguments = cases[key]
    result = call_with_time_limit(function, *arguments)
    record(key, result)
    return arguments, convert(result), _expected(key)


def _expect_far(function: Callable, key: str, situation: str) -> None:
    (far, k), got, data = _run_case(function, FAR_CASES, key,
                                    lambda result: _number(result, "false_accept_rate_1_to_k"))
    want = data["expected"]
    if _close(got, want):
        return
    lines = [f"{situation} (far_1_to_1={far:g}, k={k}): expected {want:.6g}, got {got:.6g}."]
    if got > 1.0 or got < 0.0:
        lines.append("A rate is a probability: it lies between 0 and 1.")
    hints = [_FAR_HINTS[name] for name, value in data["mistakes"].items()
             if _close(got, value) and not _close(value, want)]
    if len(hints) == 1:
        lines.append("Likely cause: " + hints[0])
    elif hints:
        lines.append("Likely cause, one of:\n" + "\n".join(f"  - {hint}" for hint in hints))
    raise AssertionError("\n".join(lines))


def check_far_one_person(false_accept_rate_1_to_k: Callable) -> None:
    """One person enrolled: the system's false-accept rate is the comparison's."""
    for key in ("far/one_person/0.01", "far/one_person/0.25"):
        _expect_far(false_accept_rate_1_to_k, key,
                    "One person enrolled: one comparison, so the rate is unchanged")


def check_far_two_people(false_accept_rate_1_to_k: Callable) -> None:
    """Two people, FAR 0.1 each: 1 - 0.9 * 0.9 = 0.19."""
    _expect_far(false_accept_rate_1_to_k, "far/two_people",
                "Two people enrolled, each comparison falsely accepts 10% of strangers: "
                "the stranger gets in unless both comparisons reject, 1 - 0.9 * 0.9")


def check_far_many_people(false_accept_rate_1_to_k: Callable) -> None:
    """FAR 1e-4 per comparison and 10,000 people: about 63% of strangers get in."""
    _expect_far(false_accept_rate_1_to_k, "far/many/1e-4",
                "10,000 people enrolled at a per-comparison rate of 1 in 10,000")
    _expect_far(false_accept_rate_1_to_k, "far/many/1e-3",
                "50 people enrolled at a per-comparison rate of 1 in 1,000")


def check_far_edge_cases(false_accept_rate_1_to_k: Callable) -> None:
    """Nobody enrolled (K = 0), a comparison that never and one that always accepts."""
    _expect_far(false_accept_rate_1_to_k, "far/nobody",
                "Nobody enrolled (K = 0): there is nobody to be mistaken for")
    _expect_far(false_accept_rate_1_to_k, "far/never_accepts",
                "A comparison that never accepts a stranger")
    _expect_far(false_accept_rate_1_to_k, "far/always_accepts",
                "A comparison that accepts everyone")


def check_far_runs(false_accept_rate_1_to_k: Callable) -> None:
    """Only that the function can be called and returns a number."""
    _number(call_with_time_limit(false_accept_rate_1_to_k, 0.01, 10), "false_accept_rate_1_to_k")


# --------------------------------------------------------------------------
# Exercise 2: max_enrolled
# --------------------------------------------------------------------------


MAX_ENROLLED_CASES = {
    "max_enrolled/small/0.2": (0.1, 0.2),
    "max_enrolled/small/0.27": (0.1, 0.27),
    "max_enrolled/office": (1e-3, 0.1),
    "max_enrolled/cheaper_camera": (2e-3, 0.1),
    "max_enrolled/stricter": (1e-5, 0.01),
    "max_enrolled/below_far": (0.05, 0.01),
}
"""The public inputs of the max_enrolled checks, by record key: (far_1_to_1, budget)."""


def _integer(result, name: str) -> int:
    value = _number(result, name)
    if not float(value).is_integer():
        raise AssertionError(
            f"{name} returned {value:g}, not a whole number. K counts people: round the "
            "ratio DOWN to an integer (math.floor), since one more person would exceed the budget."
        )
    return int(value)


def _expect_max(function: Callable, key: str, situation: str) -> None:
    (far, budget), got, data = _run_case(function, MAX_ENROLLED_CASES, key,
                                         lambda result: _integer(result, "max_enrolled"))
    want, far_at = data["expected"], data["far_at"]
    if got == want:
        return
    lines = [f"{situation} (far_1_to_1={far:g}, budget={budget:g}): expected {want}, got {got}."]
    if got > want and str(got) in far_at:
        lines.append(
            f"With {got} people the system's FAR is 1 - (1 - {far:g})^{got} = "
            f"{far_at[str(got)]:.6g}, above the budget {budget:g}."
        )
    elif got > want:
        lines.append(f"With {got} people the system's FAR is above the budget {budget:g}.")
    elif got >= 0 and str(got + 1) in far_at:
        lines.append(
            f"{got + 1} people still fit: 1 - (1 - {far:g})^{got + 1} = "
            f"{far_at[str(got + 1)]:.6g} <= {budget:g}."
        )
    elif got >= 0:
        lines.append(f"{got + 1} people still fit within the budget {budget:g}.")
    linear = budget / far
    if got in (math.floor(linear), round(linear)) and want != got:
        lines.append(
            "Likely cause: you divided the budget by the rate, which assumes the rate grows "
            "linearly with K (far * K). Solve 1 - (1 - far)^K <= budget for K instead: "
            "K <= log(1 - budget) / log(1 - far)."
        )
    elif got == want + 1:
        lines.append(
            "Likely cause: the ratio log(1 - budget) / log(1 - far) was rounded up or to the "
            "nearest integer. Round it DOWN (math.floor): the next person already exceeds the "
            "budget."
        )
    raise AssertionError("\n".join(lines))


def check_max_enrolled_small(max_enrolled: Callable) -> None:
    """FAR 0.1: one person gives 0.1, two give 0.19, three give 0.271."""
    _expect_max(max_enrolled, "max_enrolled/small/0.2", "FAR 0.1 per comparison, budget 0.2")
    _expect_max(max_enrolled, "max_enrolled/small/0.27", "FAR 0.1 per comparison, budget 0.27 (three people give 0.271)")


def check_max_enrolled_door(max_enrolled: Callable) -> None:
    """FAR 1e-3 per comparison and a 10% budget: 105 people (106 give 0.1006)."""
    _expect_max(max_enrolled, "max_enrolled/office", "An office door: FAR 1 in 1,000, at most 10% of strangers in")
    _expect_max(max_enrolled, "max_enrolled/cheaper_camera", "A cheaper camera: FAR 1 in 500, at most 10% of strangers in")
    _expect_max(max_enrolled, "max_enrolled/stricter", "A stricter door: FAR 1 in 100,000, at most 1% of strangers in")


def check_max_enrolled_budget_below_far(max_enrolled: Callable) -> None:
    """A budget smaller than one comparison's FAR: not even one person fits."""
    _expect_max(max_enrolled, "max_enrolled/below_far", "The budget is below the rate of a single comparison")


def check_max_enrolled_runs(max_enrolled: Callable) -> None:
    """Only that the function can be called and returns a whole number."""
    _integer(call_with_time_limit(max_enrolled, 0.01, 0.1), "max_enrolled")


# --------------------------------------------------------------------------
# Hidden cases: what the functions return is recorded; the grader judges it
# --------------------------------------------------------------------------


def record_far_cases(false_accept_rate_1_to_k: Callable, cases) -> None:
    """Record ``false_accept_rate_1_to_k`` on ``(how, far_1_to_1, k)`` cases: ``how`` is
    "keyword", "positional", "numpy" (NumPy scalars, by position) or "sweep" (k = 0, 7,
    14, ... below ``k``, one list).  Decides nothing: the grader compares the records."""
    for index, (how, far, k) in enumerate(cases):
        key = f"far/{how}/{index}"
        if how == "sweep":
            record(key, [call_with_time_limit(false_accept_rate_1_to_k, far, j) for j in range(0, k, 7)])
        elif how == "numpy":
            record(key, call_with_time_limit(false_accept_rate_1_to_k, np.float64(far), np.int64(k)))
        elif how == "positional":
            record(key, call_with_time_limit(false_accept_rate_1_to_k, far, k))
        else:
            record(key, call_with_time_limit(false_accept_rate_1_to_k, far_1_to_1=far, k=k))


def record_max_enrolled_cases(max_enrolled: Callable, cases) -> None:
    """Record ``max_enrolled`` on ``(how, far_1_to_1, budget)`` cases ("keyword" or
    "positional").  Decides nothing: the grader compares the records."""
    for index, (how, far, budget) in enumerate(cases):
        if how == "positional":
            result = call_with_time_limit(max_enrolled, far, budget)
        else:
            result = call_with_time_limit(max_enrolled, far_1_to_1=far, budget=budget)
        record(f"max_enrolled/{how}/{index}", result)
