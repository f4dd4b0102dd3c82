"""Public checks for ``notebooks/triplet_loss/triplet_loss.ipynb``.

Exercise 1, ``triplet_loss(y_true, y_pred, alpha=0.2)``::

    check_perfect_triplet      anchor == positive, negative far away -> 0
    check_margin_only          anchor == positive == negative -> alpha
    check_max_with_zero        an easy triplet contributes 0, never a negative number
    check_batch_sum            a batch: the SUM of the per-triplet losses
    check_axis                 4 triplets of dimension 3: distances along the right axis
    check_returns_tensor       a scalar TensorFlow tensor that gradients flow through
    check_seeded_value         the classic seeded batch: 527.2598 on TensorFlow 2.21

Exercise 2, ``semi_hard_negatives(anchor, positive, negatives, alpha=0.2)``::

    check_semi_hard_single     one anchor: the closest negative inside the band
    check_no_semi_hard         no negative in the band -> -1
    check_semi_hard_batch      several anchors, alpha passed in, squared distances

Each check raises ``AssertionError`` with a message saying what was expected,
what your function returned and, when the result matches a common mistake,
which one.  The ``*_runs`` functions only check that your function can be
called; the notebook uses them in front of the hidden tests.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from fr_utils.checks._record import record
from fr_utils.checks._runner import call_with_time_limit, expected, one_number

SEEDED_EXPECTED = 527.2598
"""``triplet_loss`` on the seeded batch of :func:`seeded_triplets`, TensorFlow 2.21."""

_SEEDED_ATOL = 1e-2  # float32 sums of squares near 3000: about 1e-3 of rounding


# --------------------------------------------------------------------------
# Exercise 1: triplet_loss
# --------------------------------------------------------------------------


def seeded_triplets() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The classic check's batch: 3 triplets of dimension 128.

    ``tf.random.set_seed(1)``, then one ``tf.random.normal((3, 128), seed=1)`` each
    for the anchor (mean 6, std 0.1), positive (mean 1, std 1) and negative
    (mean 3, std 4).  Resets TensorFlow's global seed.
    """
    tf.random.set_seed(1)
    anchor = tf.random.normal([3, 128], mean=6, stddev=0.1, seed=1)
    positive = tf.random.normal([3, 128], mean=1, stddev=1, seed=1)
    negative = tf.random.normal([3, 128], mean=3, stddev=4, seed=1)
    return anchor, positive, negative


def _f32(rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


# What the usual mistakes return, and what to tell the learner when a result matches.
_MISTAKE_HINTS = {
    "mean": (
        "you averaged over the batch. The loss is the SUM of the per-triplet losses: "
        "tf.reduce_sum, not tf.reduce_mean."
    ),
    "no_max": (
        "you summed d(a,p)² - d(a,n)² + alpha without clipping at 0. Take "
        "tf.maximum(basic_loss, 0.0) for each triplet first, so an easy triplet "
        "counts 0 instead of a negative number."
    ),
    "max_of_sum": (
        "you took the max with 0 of the SUM (max of the sum). Clip each triplet "
        "first, then sum: tf.reduce_sum(tf.maximum(basic_loss, 0.0)); otherwise "
        "easy triplets cancel out hard ones."
    ),
    "no_alpha": (
        "alpha is missing: basic_loss = pos_dist - neg_dist + alpha."
    ),
    "minus_alpha": (
        "alpha is subtracted; the margin is ADDED: basic_loss = pos_dist - neg_dist + alpha."
    ),
    "not_squared": (
        "these are plain Euclidean distances, not squared ones. Use "
        "tf.reduce_sum(tf.square(anchor - positive), axis=-1), without tf.sqrt "
        "(or square tf.norm)."
    ),
    "mean_over_embedding": (
        "you averaged the squared differences over the embedding axis. A squared "
        "distance is their SUM: tf.reduce_sum(tf.square(anchor - positive), axis=-1)."
    ),
    "axis_0": (
        "you summed the squared differences over axis 0, the batch axis, which mixes "
        "different triplets. Each row is one example: sum over the embedding axis, "
        "axis=-1."
    ),
    "axis_none": (
        "you summed the squared differences over all axes (no axis argument), which "
        "gives one distance for the whole batch. Use axis=-1: one distance per triplet."
    ),
    "swapped": (
        "the positive and negative distances are swapped: basic_loss = pos_dist - "
        "neg_dist + alpha (the anchor should end up closer to the positive)."
    ),
    "fixed_alpha": (
        "the result is what alpha=0.2 gives, but this check passed a different alpha. "
        "Use the alpha argument instead of a hard-coded 0.2."
    ),
}


def _close(x: float, y: float, atol: float = 1e-4) -> bool:
    return abs(x - y) <= atol + 1e-5 * abs(y)


def _diagnosis(got: float, expected: float, mistakes: dict[str, float], atol: float = 1e-4) -> str:
    """The hints of every mistake that gives ``got`` here (and not the right answer)."""
    hints = [
        _MISTAKE_HINTS[name]
        for name, value in mistakes.items()
        if _close(got, value, atol) and not _close(value, expected, atol)
    ]
    if not hints:
        return ""
    if len(hints) == 1:
        return "\nLikely cause: " + hints[0]
    return "\nLikely cause, one of:\n" + "\n".join(f"  - {hint}" for hint in hints)


def _scalar(result, name: str) -> float:
    """The loss as a float; fail clearly on None, arrays and non-numbers."""
    return one_number(
        result, name, if_none="did you forget `return loss`?",
        if_array="the loss must be a single number (shape ()). One loss per triplet is not enough: "
                 "sum them over the batch with tf.reduce_sum.",
    )


def _call_loss(triplet_loss: Callable, anchor, positive, negative, alpha=None):
    y_pred = (tf.constant(anchor), tf.constant(positive), tf.constant(negative))
    if alpha is None:
        return call_with_time_limit(triplet_loss, None, y_pred)
    return call_with_time_limit(triplet_loss, None, y_pred, alpha=alpha)


# The public cases: {record key: (anchor, positive, negative, alpha or None for the default)}.
# The grader computes its answers for exactly these inputs; the expected values and
# the values of the usual mistakes below come from fr_utils/checks/expected.json.
_POINT = _f32([[0.1, 0.2, 0.3, 0.4]])
_BATCH = (
    _f32([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]]),  # anchors
    _f32([[1, 0, 0, 0], [1, 1, 2, 0], [0, 0, 1, 0]]),  # positives: d² = 1, 4, 0
    _f32([[0, 0.5, 0, 0], [1, 1, 0, 1], [0, 3, 1, 0]]),  # negatives: d² = 0.25, 1, 9
)
_AXIS_BATCH = (
    _f32([[0.1, 0.5, 0.7], [0.7, 0.9, 0.1], [0.5, 0.8, 0.0], [-0.7, -0.3, -0.1]]),
    _f32([[-0.2, 0.5, -0.9], [-0.5, 0.3, 0.8], [0.4, 0.3, 0.0], [0.8, 0.3, 0.1]]),
    _f32([[0.7, 0.7, 0.0], [0.8, 0.7, 0.1], [-0.7, -0.9, 0.4], [0.4, -0.6, -0.6]]),
)  # per-triplet d(a,p)² - d(a,n)² + 0.3: 2.06, 2.54, -3.93, 1.40; every usual mistake differs

LOSS_CASES = {
    "triplet_loss/perfect": (_f32([[0.5, -0.5, 0.5, -0.5]]), _f32([[0.5, -0.5, 0.5, -0.5]]),
                             _f32([[0.5, 0.5, 0.5, 0.5]]), None),
    "triplet_loss/margin/default": (_POINT, _POINT.copy(), _POINT.copy(), None),
    "triplet_loss/margin/0.5": (_POINT, _POINT.copy(), _POINT.copy(), 0.5),
    "triplet_loss/max_with_zero": (_f32([[0.0, 0.0, 0.0, 0.0]]), _f32([[1.0, 0.0, 0.0, 0.0]]),
                                   _f32([[0.0, 2.0, 0.0, 0.0]]), None),
    "triplet_loss/batch_sum": (*_BATCH, None),
    "triplet_loss/axis": (*_AXIS_BATCH, 0.3),
}
"""The public inputs of the loss checks, by record key."""


_expected = expected


def _expect_loss(triplet_loss, key: str, situation: str, atol: float = 1e-4) -> None:
    """Compare with the stored expected value; on mismatch, say which mistake it looks like."""
    anchor, positive, negative, alpha = LOSS_CASES[key]
    result = _call_loss(triplet_loss, anchor, positive, negative, alpha)
    record(key, result)
    got = _scalar(result, "triplet_loss")
    data = _expected(key)
    expected = data["expected"]
    if _close(got, expected, atol):
        return
    how = "with the default alpha (0.2)" if alpha is None else f"with alpha={alpha}"
    message = f"{situation}, {how}: expected {expected:.4f}, got {got:.4f}."
    if got < 0:
        message += "\nA loss is never negative: each triplet's loss is max(..., 0)."
    message += _diagnosis(got, expected, data["mistakes"], atol)
    raise AssertionError(message)


def check_perfect_triplet(triplet_loss: Callable) -> None:
    """Anchor and positive identical, negative at squared distance 2: loss 0."""
    _expect_loss(
        triplet_loss, "triplet_loss/perfect",
        "Perfect triplet (anchor == positive, the negative at squared distance 2.0, "
        "well beyond the margin): its loss must be 0",
    )


def check_margin_only(triplet_loss: Callable) -> None:
    """Anchor, positive and negative identical: both distances are 0, the loss is alpha."""
    for key in ("triplet_loss/margin/default", "triplet_loss/margin/0.5"):
        _expect_loss(
            triplet_loss, key,
            "anchor == positive == negative: both distances are 0, so the loss is "
            "exactly the margin alpha",
        )


def check_max_with_zero(triplet_loss: Callable) -> None:
    """An easy triplet (negative much farther than the positive) costs 0, not less."""
    _expect_loss(
        triplet_loss, "triplet_loss/max_with_zero",
        "Easy triplet, d(a,p)² = 1 and d(a,n)² = 4, so d(a,p)² - d(a,n)² + 0.2 = -2.8: "
        "its loss is max(-2.8, 0) = 0",
    )


def check_batch_sum(triplet_loss: Callable) -> None:
    """Three triplets whose losses are 0.95, 3.2 and 0 (an easy one): the sum, 4.15."""
    per_triplet = _expected("triplet_loss/batch_sum")["per_triplet"]
    _expect_loss(
        triplet_loss, "triplet_loss/batch_sum",
        "A batch of 3 triplets whose own losses are "
        + ", ".join(f"{x:.2f}" for x in per_triplet)
        + ": the loss of the batch is their sum",
    )


def check_axis(triplet_loss: Callable) -> None:
    """4 triplets of 3-dimensional embeddings (so the axes cannot be confused)."""
    _expect_loss(
        triplet_loss, "triplet_loss/axis",
        "4 triplets of dimension 3 (shape (4, 3): rows are examples, columns are "
        "embedding dimensions)",
    )


def _loss_and_gradient(triplet_loss: Callable, anchor, positive, negative, *args, **kwargs):
    """The loss of a batch, and its gradient with respect to the anchors (None if none flows)."""
    anchor, positive, negative = (tf.constant(x) for x in (anchor, positive, negative))
    with tf.GradientTape() as tape:
        tape.watch(anchor)
        result = call_with_time_limit(triplet_loss, None, (anchor, positive, negative), *args, **kwargs)
    gradient = tape.gradient(result, anchor) if tf.is_tensor(result) else None
    return result, gradient


def check_returns_tensor(triplet_loss: Callable) -> None:
    """The loss is a scalar ``tf.Tensor`` and gradients flow back to the anchor."""
    result, gradient = _loss_and_gradient(triplet_loss, *_BATCH)
    record("triplet_loss/returns_tensor", {"loss": result, "gradient": gradient})
    if not tf.is_tensor(result):
        kind = f"{type(result).__module__}.{type(result).__name__}"
        raise AssertionError(
            f"triplet_loss returned a {kind}, not a TensorFlow tensor. Keras trains a "
            "network by differentiating the loss, so build it only from TensorFlow "
            "operations (tf.reduce_sum, tf.square, tf.maximum, or keras.ops): no "
            ".numpy(), np.* or float(...)."
        )
    if result.shape.rank != 0:
        raise AssertionError(
            f"triplet_loss returned a tensor of shape {tuple(result.shape)}; the loss "
            "must be a scalar (shape ()): sum the per-triplet losses over the batch."
        )
    if gradient is None:
        raise AssertionError(
            "No gradient flows from your loss back to the anchor: the result was "
            "computed outside TensorFlow (NumPy, or .numpy() turned back into a "
            "tensor), so a network could not learn from it. Use tf.* operations "
            "from start to end."
        )
    if not np.all(np.isfinite(gradient.numpy())):
        raise AssertionError(
            "The gradient of your loss with respect to the anchor contains NaN or "
            "inf on a batch of ordinary triplets."
        )


def check_seeded_value(triplet_loss: Callable) -> float:
    """The classic check: seeded random triplets give 527.2598 (TensorFlow 2.21).

    Returns the value your function gave."""
    anchor, positive, negative = seeded_triplets()
    result = call_with_time_limit(triplet_loss, None, (anchor, positive, negative))
    record("triplet_loss/seeded", result)
    got = _scalar(result, "triplet_loss")
    if abs(got - SEEDED_EXPECTED) <= _SEEDED_ATOL:
        return got
    message = (
        "Seeded batch (tf.random.set_seed(1); anchor ~ N(6, 0.1), positive ~ N(1, 1), "
        f"negative ~ N(3, 4), shape (3, 128), seed=1 each): expected {SEEDED_EXPECTED:.4f}, "
        f"got {got:.4f}."
    )
    message += _diagnosis(got, SEEDED_EXPECTED, _expected("triplet_loss/seeded")["mistakes"],
                          atol=_SEEDED_ATOL)
    raise AssertionError(message)


def check_triplet_loss_runs(triplet_loss: Callable) -> None:
    """Only that ``triplet_loss`` can be called on a small batch and returns a number."""
    _scalar(_call_loss(triplet_loss, *_BATCH), "triplet_loss")


def random_triplets(seed: int, m: int, d: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Anchors, positives and negatives of shape (m, d), float32, ``scale`` * N(0, 1)."""
    rng = np.random.default_rng(seed)
    return tuple((scale * rng.standard_normal((m, d))).astype(np.float32) for _ in range(3))


def record_loss_cases(triplet_loss: Callable, cases) -> None:
    """Call ``triplet_loss`` on random batches and record what it returns, for the grader.

    ``cases``: ``(how, seed, m, d, alpha, scale)`` tuples; ``how`` is "keyword" (alpha=...),
    "positional" (alpha as the third argument) or "gradient" (also the gradient with
    respect to the anchors).  Decides nothing: the grader compares the records."""
    for how, seed, m, d, alpha, scale in cases:
        anchor, positive, negative = random_triplets(seed, m, d, scale)
        key = f"triplet_loss/{how}/{seed}"
        if how == "gradient":
            result, gradient = _loss_and_gradient(triplet_loss, anchor, positive, negative, alpha=alpha)
            record(key, {"loss": result, "gradient": gradient})
        elif how == "positional":
            record(key, call_with_time_limit(
                triplet_loss, None, [tf.constant(x) for x in (anchor, positive, negative)], alpha))
        else:
            record(key, call_with_time_limit(
                triplet_loss, None, [tf.constant(x) for x in (anchor, positive, negative)], alpha=alpha))


# --------------------------------------------------------------------------
# Exercise 2: semi_hard_negatives
# --------------------------------------------------------------------------


def _indices(result, m: int, name: str) -> np.ndarray:
    if result is None:
        raise AssertionError(f"{name} returned None: did you forget the return statement?")
    try:
        array = np.asarray(result)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{name} returned {type(result).__name__}: {error}") from None
    if array.shape != (m,):
        raise AssertionError(
            f"{name} returned shape {array.shape}; expected ({m},): one negative index "
            "per anchor (reduce over the negatives' axis, axis=1, keeping the anchors)."
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise AssertionError(
            f"{name} returned values of type {array.dtype}; return integer indices "
            "(tf.argmin gives int64), with -1 where there is no semi-hard negative."
        )
    return array.astype(np.int64)


def _explain_row(row: int, got: int, want: int, d_ap: float, d_an: np.ndarray,
                 alpha: float, plain_choice: int) -> str:
    k = d_an.shape[0]
    band = f"{d_ap:.4g} < d(a,n)² < {d_ap + alpha:.4g}"
    head = f"anchor {row}: expected {want}, got {got}. "
    if got == -1:
        return head + (
            f"There is a semi-hard negative here (index {want}, d(a,n)² = "
            f"{d_an[want]:.4g}, inside the band {band}); return -1 only when no "
            "negative is in the band."
        )
    if not 0 <= got < k:
        return head + f"{got} is not a row of `negatives` (it has {k} rows); use -1 for 'none'."
    distance = d_an[got]
    if distance <= d_ap:
        text = (
            f"negative {got} is HARD: d(a,n)² = {distance:.4g} is not larger than "
            f"d(a,p)² = {d_ap:.4g}. A semi-hard negative is farther than the positive."
        )
    elif distance >= d_ap + alpha:
        text = (
            f"negative {got} is EASY: d(a,n)² = {distance:.4g} is at least "
            f"d(a,p)² + alpha = {d_ap + alpha:.4g}, so it is outside the band {band}"
        )
        if got == plain_choice:
            text += (
                "; it would only be inside with plain (not squared) distances. "
                "Compare SQUARED distances, as in the loss"
            )
        text += "."
    else:
        text = (
            f"negative {got} is semi-hard but not the hardest one: negative {want} "
            f"is closer to the anchor ({d_an[want]:.4g} < {distance:.4g}). Take the "
            "semi-hard negative with the smallest d(a,n)²."
        )
    if want == -1:
        text += f" No negative lies in the band {band}, so the answer is -1."
    return head + text


_ONE_ANCHOR = (_f32([[0.0, 0.0]]), _f32([[1.0, 0.0]]))  # d(a,p)² = 1
_THREE_ANCHORS = (
    _f32([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]),
    _f32([[1.0, 0.0], [10.0, 0.5], [0.0, 12.0]]),  # d(a,p)² = 1, 0.25, 4
    _f32([[1.1, 0.0], [10.6, 0.0], [0.0, 7.8], [1.2, 0.3], [10.0, -0.3], [0.9, 0.9]]),
)

SEMI_HARD_CASES = {
    "semi_hard/single": (*_ONE_ANCHOR,
                         _f32([[2.0, 0.0], [0.0, 1.09], [0.5, 0.0], [1.05, 0.0], [3.0, 0.0]]), None),
    "semi_hard/none": (*_ONE_ANCHOR, _f32([[0.0, 2.0], [0.5, 0.0], [3.0, 0.0]]), None),
    "semi_hard/batch": (*_THREE_ANCHORS, 0.5),
}
"""The public inputs of the semi-hard checks, by record key (alpha None: the default)."""


def _expect_indices(semi_hard_negatives: Callable, key: str, situation: str) -> None:
    anchor, positive, negatives, alpha = SEMI_HARD_CASES[key]
    used_alpha = 0.2 if alpha is None else alpha
    args = (tf.constant(anchor), tf.constant(positive), tf.constant(negatives))
    kwargs = {} if alpha is None else {"alpha": alpha}
    result = call_with_time_limit(semi_hard_negatives, *args, **kwargs)
    record(key, result)
    got = _indices(result, len(anchor), "semi_hard_negatives")
    data = _expected(key)
    want = np.asarray(data["expected"], dtype=np.int64)
    if np.array_equal(got, want):
        return
    d_ap, d_an = np.asarray(data["d_ap"]), np.asarray(data["d_an"])
    plain = data["plain_distances"]
    how = "default alpha (0.2)" if alpha is None else f"alpha={alpha}"
    lines = [f"{situation}, {how}: expected {want.tolist()}, got {got.tolist()}."]
    for row in np.flatnonzero(got != want):
        lines.append(_explain_row(int(row), int(got[row]), int(want[row]), float(d_ap[row]),
                                  d_an[row], used_alpha, int(plain[row])))
    if alpha is not None and np.array_equal(got, data["default_alpha"]):
        lines.append("This is the answer for alpha=0.2: use the alpha argument.")
    raise AssertionError("\n".join(lines))


def check_semi_hard_single(semi_hard_negatives: Callable) -> None:
    """One anchor, d(a,p)² = 1, five negatives: easy, semi-hard, hard, semi-hard, easy."""
    _expect_indices(
        semi_hard_negatives, "semi_hard/single",
        "One anchor with d(a,p)² = 1 and negatives at d(a,n)² = 4, 1.1881, 0.25, 1.1025, 9",
    )


def check_no_semi_hard(semi_hard_negatives: Callable) -> None:
    """No negative inside the band: the answer is -1."""
    _expect_indices(
        semi_hard_negatives, "semi_hard/none",
        "One anchor with d(a,p)² = 1 and negatives at d(a,n)² = 4, 0.25, 9 (none in the "
        "band 1 < d(a,n)² < 1.2)",
    )


def check_semi_hard_batch(semi_hard_negatives: Callable) -> None:
    """Three anchors, alpha=0.5; row i of `positive` goes with row i of `anchor`."""
    _expect_indices(
        semi_hard_negatives, "semi_hard/batch",
        "Three anchors (d(a,p)² = 1, 0.25, 4) and six shared negatives",
    )


def check_semi_hard_runs(semi_hard_negatives: Callable) -> None:
    """Only that ``semi_hard_negatives`` can be called and returns one index per anchor."""
    anchor, positive, negatives = _THREE_ANCHORS
    result = call_with_time_limit(
        semi_hard_negatives, tf.constant(anchor), tf.constant(positive), tf.constant(negatives)
    )
    _indices(result, len(anchor), "semi_hard_negatives")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_semi_hard_inputs(seed: int, m: int, k: int, d: int) -> tuple[np.ndarray, ...]:
    """m anchors, their positives (near them) and k negatives: unit vectors, float32."""
    rng = np.random.default_rng(seed)
    anchor = _unit(rng.standard_normal((m, d))).astype(np.float32)
    positive = _unit(anchor + 0.8 * rng.standard_normal((m, d)) / np.sqrt(d)).astype(np.float32)
    negatives = _unit(rng.standard_normal((k, d))).astype(np.float32)
    return anchor, positive, negatives


def record_semi_hard_cases(semi_hard_negatives: Callable, cases) -> None:
    """Call ``semi_hard_negatives`` on random embeddings and record what it returns.

    ``cases``: ``(seed, m, k, d, alpha)`` tuples.  Decides nothing: the grader compares."""
    for seed, m, k, d, alpha in cases:
        anchor, positive, negatives = random_semi_hard_inputs(seed, m, k, d)
        record(f"semi_hard/{seed}", call_with_time_limit(
            semi_hard_negatives, tf.constant(anchor), tf.constant(positive), tf.constant(negatives),
            alpha=alpha))
