"""What each graded cell must record, and how the grader judges each record.

For every graded cell of the graded assignments, :data:`GRADED` lists its
cases: a record key, a description for the learner, and a judge that receives
the decoded record (what the learner's function returned) and says what is
wrong with it, or None when it is right.  The grader builds the inputs of every
case itself, from the public checks' fixed inputs or from the hidden cases'
literal specs below (the hidden test cells hold the same literals; a test
checks they agree), and computes the answers with grader.references, in its
own process.  A hidden case's message never shows the expected value.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from grader import references as ref
from grader.records import Array, Opaque

Judge = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    hidden: bool
    judge: Judge


# -- hidden cases: the literals written in the hidden test cells ------------------------------

TRIPLET_LOSS_HIDDEN = [  # (how, seed, m, d, alpha, scale)
    ("keyword", 11, 1, 7, 0.2, 1.0),
    ("keyword", 12, 5, 2, 0.0, 1.0),
    ("keyword", 13, 6, 16, 0.7, 0.5),
    ("keyword", 14, 32, 128, 1.0, 0.1),
    ("keyword", 15, 9, 3, 0.35, 2.0),
    ("positional", 16, 4, 5, 0.45, 1.0),
    ("gradient", 17, 6, 4, 0.5, 1.0),
]

SEMI_HARD_HIDDEN = [  # (seed, m, k, d, alpha): no distance within 1e-4 of a band edge, no tie
    (1503, 8, 32, 16, 0.3),
    (2503, 5, 12, 4, 1.0),
    (3513, 1, 1, 3, 0.5),
    (4503, 6, 40, 128, 0.2),
    (3503, 6, 40, 128, 1.5),
]

FAR_HIDDEN = [  # (how, far_1_to_1, k); "sweep": k = 0, 7, 14, ... below k
    ("keyword", 0.000138056, 1),
    ("keyword", 0.000133407, 3),
    ("keyword", 0.114322, 17),
    ("keyword", 0.0638488, 250),
    ("keyword", 0.00291795, 4096),
    ("keyword", 1.43872e-06, 60000),
    ("positional", 0.5, 1),
    ("positional", 0.5, 3),
    ("positional", 0.999, 2),
    ("keyword", 1e-07, 100000),
    ("numpy", 0.02, 40),
    ("sweep", 0.003, 400),
]

MAX_ENROLLED_HIDDEN = [  # (how, far_1_to_1, budget): log(1 - budget) / log(1 - far) not within 1e-6 of an integer
    ("keyword", 0.004894, 0.4861),
    ("keyword", 0.0002786, 0.2443),
    ("keyword", 0.01359, 0.5413),
    ("keyword", 0.0005068, 0.2726),
    ("keyword", 0.002497, 0.5611),
    ("keyword", 0.04806, 0.5883),
    ("keyword", 0.0004909, 0.4434),
    ("keyword", 0.001886, 0.4002),
    ("positional", 0.3, 0.0),
    ("positional", 0.3, 0.29),
    ("positional", 0.3, 0.31),
    ("positional", 0.01, 0.5),
]


# -- describing what a learner returned ---------------------------------------------------------


def shown(value: Any) -> str:
    """A short description of a recorded value, for messages."""
    if isinstance(value, Array):
        kind = "tensor" if value.tensor else "array"
        if value.values is not None and value.values.size == 1:
            return f"a {kind} holding {float(value.values.ravel()[0]):.6g}"
        if value.values is not None and value.values.size <= 8:
            return f"a {kind} {np.round(value.values, 6).tolist()}"
        return f"a {kind} of shape {value.shape}"
    if isinstance(value, Opaque):
        return f"an object of type {value.type}"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_number(value: Any) -> Optional[float]:
    """A single real number from a recorded value, or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Array) and value.values is not None and value.values.shape == () \
            and value.values.dtype.kind in "biuf":
        return float(value.values)
    return None


def close(got: float, want: float, rtol: float, atol: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


# -- judges ---------------------------------------------------------------------------------------


def number_judge(want: float, rtol: float, atol: float, hidden: bool, tensor: bool = False) -> Judge:
    """A single number close to ``want``; with ``tensor``, a scalar tensor."""

    def judge(value):
        if tensor and not (isinstance(value, Array) and value.tensor and value.shape == ()):
            return f"it must return a scalar TensorFlow tensor, and returned {shown(value)}"
        got = as_number(value)
        if got is None:
            return f"it must return a single number, and returned {shown(value)}"
        if close(got, want, rtol, atol):
            return None
        if hidden:
            return f"your function returned {got:.6g}, which is not the right value"
        return f"expected {want:.6g}, got {got:.6g}"

    return judge


def loss_and_gradient_judge(want_gradient: Optional[np.ndarray], hidden: bool) -> Judge:
    """``{"loss": scalar tensor, "gradient": finite (and, when given, right) array}``."""

    def judge(value):
        if not isinstance(value, dict) or set(value) != {"loss", "gradient"}:
            return "unexpected record"
        loss, gradient = value["loss"], value["gradient"]
        if not (isinstance(loss, Array) and loss.tensor):
            return (f"triplet_loss must return a TensorFlow tensor (so that Keras can differentiate it), "
                    f"and returned {shown(loss)}")
        if loss.shape != ():
            return f"triplet_loss must return a scalar tensor, and returned one of shape {loss.shape}"
        if not isinstance(gradient, Array) or gradient.values is None:
            return "no gradient flows from the loss back to the anchors: use TensorFlow operations throughout"
        if not np.all(np.isfinite(gradient.values)):
            return "the gradient of the loss with respect to the anchors contains NaN or inf"
        if want_gradient is not None:
            if gradient.values.shape != want_gradient.shape or not np.allclose(
                    gradient.values, want_gradient, rtol=1e-4, atol=1e-4):
                return ("the gradient with respect to the anchors is wrong: each triplet inside the margin "
                        "should pull its anchor by 2 (n - p), the others not at all")
        return None

    return judge


def indices_judge(want: np.ndarray, hidden: bool) -> Judge:
    def judge(value):
        if not isinstance(value, Array) or value.values is None:
            return f"it must return an array of {len(want)} indices, and returned {shown(value)}"
        got = value.values
        if got.shape != want.shape:
            return f"it must return {len(want)} indices (shape {want.shape}), and returned shape {got.shape}"
        if got.dtype.kind not in "iu":
            return f"it must return integer indices, and returned values of type {value.dtype}"
        if np.array_equal(got, want):
            return None
        if hidden:
            return f"your function returned {got.tolist()}, which is not the right answer"
        return f"expected {want.tolist()}, got {got.tolist()}"

    return judge


# -- the graded cells -------------------------------------------------------------------------


def _loss_alpha(alpha: Optional[float]) -> float:
    return 0.2 if alpha is None else alpha


def triplet_loss_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import triplet_loss as public

    def public_loss(key: str) -> Case:
        anchor, positive, negative, alpha = public.LOSS_CASES[key]
        want = ref.triplet_loss(anchor, positive, negative, _loss_alpha(alpha))
        return Case(key, f"triplet_loss, public case {key.split('/', 1)[1]}", False,
                    number_judge(want, rtol=1e-5, atol=1e-4, hidden=False))

    seeded = tuple(x.numpy() for x in public.seeded_triplets())
    cells = {
        "triplet_loss_single": [public_loss(key) for key in (
            "triplet_loss/perfect", "triplet_loss/margin/default", "triplet_loss/margin/0.5",
            "triplet_loss/max_with_zero")],
        "triplet_loss_batch": [
            public_loss("triplet_loss/batch_sum"),
            public_loss("triplet_loss/axis"),
            Case("triplet_loss/returns_tensor", "triplet_loss on a batch of 3 triplets, with its gradient",
                 False, loss_and_gradient_judge(None, hidden=False)),
        ],
        "triplet_loss_seeded": [
            Case("triplet_loss/seeded", "triplet_loss on the seeded batch", False,
                 number_judge(ref.triplet_loss(*seeded, 0.2), rtol=0.0, atol=1e-2, hidden=False)),
        ],
    }
    hidden = []
    for how, seed, m, d, alpha, scale in TRIPLET_LOSS_HIDDEN:
        anchor, positive, negative = public.random_triplets(seed, m, d, scale)
        key = f"triplet_loss/{how}/{seed}"
        if how == "gradient":
            want = ref.triplet_loss_anchor_gradient(anchor, positive, negative, alpha)
            hidden.append(Case(key, f"Hidden test: the gradient of triplet_loss on {m} random triplets, "
                               f"alpha={alpha}", True, loss_and_gradient_judge(want, hidden=True)))
            continue
        what = f"Hidden test: {m} random triplets of dimension {d}, alpha={alpha}"
        if how == "positional":
            what += " given by position"
        hidden.append(Case(key, what, True, number_judge(
            ref.triplet_loss(anchor, positive, negative, alpha), rtol=1e-4, atol=1e-4, hidden=True,
            tensor=True)))
    cells["triplet_loss_hidden"] = hidden

    def public_semi(key: str) -> Case:
        anchor, positive, negatives, alpha = public.SEMI_HARD_CASES[key]
        want = ref.semi_hard_negatives(anchor, positive, negatives, _loss_alpha(alpha))
        return Case(key, f"semi_hard_negatives, public case {key.split('/', 1)[1]}", False,
                    indices_judge(want, hidden=False))

    cells["semi_hard_public"] = [public_semi(key) for key in public.SEMI_HARD_CASES]
    semi_hidden = []
    for seed, m, k, d, alpha in SEMI_HARD_HIDDEN:
        anchor, positive, negatives = public.random_semi_hard_inputs(seed, m, k, d)
        want = ref.semi_hard_negatives(anchor, positive, negatives, alpha)
        semi_hidden.append(Case(
            f"semi_hard/{seed}",
            f"Hidden test: {m} anchors and {k} random negatives of dimension {d}, alpha={alpha}",
            True, indices_judge(want, hidden=True)))
    cells["semi_hard_hidden"] = semi_hidden
    return cells


def whole_number_judge(want: int, hidden: bool) -> Judge:
    def judge(value):
        got = as_number(value)
        if got is None:
            return f"it must return a single number, and returned {shown(value)}"
        if got == want:
            return None
        if hidden:
            return f"your function returned {got:g}, which is not the right answer"
        return f"expected {want}, got {got:g}"

    return judge


def numbers_judge(wants: list[float], rtol: float, atol: float) -> Judge:
    """A list of numbers, one per value of ``wants`` (a hidden sweep)."""

    def judge(value):
        if not isinstance(value, list) or len(value) != len(wants):
            return "unexpected record"
        for got, want in zip(value, wants):
            number = as_number(got)
            if number is None or not close(number, want, rtol, atol):
                return (f"your function returned {shown(got)} for one of these values of k, "
                        "which is not the right value")
        return None

    return judge


def verification_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import verification as public

    far_public = []
    for key, (far, k) in public.FAR_CASES.items():
        far_public.append(Case(key, f"false_accept_rate_1_to_k(far_1_to_1={far:g}, k={k})", False,
                               number_judge(ref.far_1_to_k(far, k), rtol=1e-6, atol=1e-12, hidden=False)))
    far_hidden = []
    for index, (how, far, k) in enumerate(FAR_HIDDEN):
        key = f"far/{how}/{index}"
        if how == "sweep":
            far_hidden.append(Case(key, f"Hidden test: far_1_to_1={far:g} and k = 0, 7, ..., {k - 1}", True,
                                   numbers_judge([ref.far_1_to_k(far, j) for j in range(0, k, 7)],
                                                 rtol=1e-6, atol=1e-12)))
            continue
        what = f"Hidden test: far_1_to_1={far:.4g}, k={k}"
        what += {"numpy": " (NumPy numbers)", "positional": " (by position)"}.get(how, "")
        far_hidden.append(Case(key, what, True, number_judge(
            ref.far_1_to_k(far, k), rtol=1e-9 if how == "numpy" else 1e-6, atol=1e-12, hidden=True)))
    max_public = [
        Case(key, f"max_enrolled(far_1_to_1={far:g}, budget={budget:g})", False,
             whole_number_judge(ref.max_enrolled(far, budget), hidden=False))
        for key, (far, budget) in public.MAX_ENROLLED_CASES.items()
    ]
    max_hidden = [
        Case(f"max_enrolled/{how}/{index}", f"Hidden test: far_1_to_1={far:.4g}, budget={budget:.4g}", True,
             whole_number_judge(ref.max_enrolled(far, budget), hidden=True))
        for index, (how, far, budget) in enumerate(MAX_ENROLLED_HIDDEN)
    ]
    return {"far_public": far_public, "far_hidden": far_hidden,
            "max_enrolled_public": max_public, "max_enrolled_hidden": max_hidden}


NOTEBOOKS: dict[str, Callable[[], dict[str, list[Case]]]] = {
    "triplet_loss": triplet_loss_cells,
    "verification_recognition": verification_cells,
}
"""{notebook name: a function giving {grade_id: [Case, ...]} for its graded cells}."""


@functools.lru_cache(maxsize=None)
def graded_cells(notebook: str) -> Optional[dict[str, list[Case]]]:
    """The cases of ``notebook``'s graded cells (computed once per process), or None if the
    grader does not decide that notebook's grades."""
    build = NOTEBOOKS.get(notebook)
    return None if build is None else build()
