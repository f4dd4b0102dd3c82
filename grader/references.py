"""The reference answers of the graded exercises, on the grader's side only.

Nothing here is importable from a learner's kernel in a sandboxed grading run
(grader/ is not part of the fr_utils wheel).  The grader compares the
learners' recorded outputs with these (grader.cases); ``python -m
grader.expected`` also turns them into the expected values and the values of
the usual mistakes that the public checks use for their hints
(fr_utils/checks/expected.json), so the public checks ship data, not answers.
"""

from __future__ import annotations

import math

import numpy as np


def _f64(*arrays):
    return tuple(np.asarray(x, dtype=np.float64) for x in arrays)


# -- triplet_loss ------------------------------------------------------------------


def triplet_losses(anchor, positive, negative, alpha: float) -> np.ndarray:
    """Each triplet's max(d(a,p)² - d(a,n)² + alpha, 0)."""
    a, p, n = _f64(anchor, positive, negative)
    basic = np.sum((a - p) ** 2, axis=-1) - np.sum((a - n) ** 2, axis=-1) + alpha
    return np.maximum(basic, 0.0)


def triplet_loss(anchor, positive, negative, alpha: float) -> float:
    """The loss of a batch: the sum of its triplets' losses."""
    return float(np.sum(triplet_losses(anchor, positive, negative, alpha)))


def triplet_loss_anchor_gradient(anchor, positive, negative, alpha: float) -> np.ndarray:
    """d loss / d anchor: 2 (n - p) for a triplet inside the margin, 0 for the others."""
    a, p, n = _f64(anchor, positive, negative)
    active = (np.sum((a - p) ** 2, axis=-1) - np.sum((a - n) ** 2, axis=-1) + alpha) > 0
    return np.where(active[:, None], 2.0 * (n - p), 0.0)


def triplet_loss_mistakes(anchor, positive, negative, alpha: float) -> dict[str, float]:
    """What the usual wrong versions of the loss give (names as in the public hints)."""
    a, p, n = _f64(anchor, positive, negative)
    pos = np.sum((a - p) ** 2, axis=-1)
    neg = np.sum((a - n) ** 2, axis=-1)
    basic = pos - neg + alpha
    pos0, neg0 = np.sum((a - p) ** 2, axis=0), np.sum((a - n) ** 2, axis=0)
    values = {
        "mean": np.mean(np.maximum(basic, 0.0)),
        "no_max": np.sum(basic),
        "max_of_sum": max(np.sum(basic), 0.0),
        "no_alpha": np.sum(np.maximum(pos - neg, 0.0)),
        "minus_alpha": np.sum(np.maximum(pos - neg - alpha, 0.0)),
        "not_squared": np.sum(np.maximum(np.sqrt(pos) - np.sqrt(neg) + alpha, 0.0)),
        "mean_over_embedding": np.sum(
            np.maximum(np.mean((a - p) ** 2, axis=-1) - np.mean((a - n) ** 2, axis=-1) + alpha, 0.0)
        ),
        "axis_0": np.sum(np.maximum(pos0 - neg0 + alpha, 0.0)),
        "axis_none": max(np.sum((a - p) ** 2) - np.sum((a - n) ** 2) + alpha, 0.0),
        "swapped": np.sum(np.maximum(neg - pos + alpha, 0.0)),
    }
    if not math.isclose(alpha, 0.2):
        values["fixed_alpha"] = triplet_loss(a, p, n, 0.2)
    return {name: float(value) for name, value in values.items()}


# -- semi_hard_negatives -------------------------------------------------------------


def squared_distances(anchor, positive, negatives) -> tuple[np.ndarray, np.ndarray]:
    """d(a_i, p_i)² of shape (m,) and d(a_i, n_j)² of shape (m, k)."""
    a, p, n = _f64(anchor, positive, negatives)
    return np.sum((a - p) ** 2, axis=-1), np.sum((a[:, None, :] - n[None, :, :]) ** 2, axis=-1)


def semi_hard_negatives(anchor, positive, negatives, alpha: float, squared: bool = True) -> np.ndarray:
    """Per anchor, the closest negative strictly inside d(a,p)² < d(a,n)² < d(a,p)² + alpha; -1 if none.

    ``squared=False`` gives the answer of the usual mistake that compares plain distances."""
    d_ap, d_an = squared_distances(anchor, positive, negatives)
    if not squared:
        d_ap, d_an = np.sqrt(d_ap), np.sqrt(d_an)
    inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
    best = np.where(inside, d_an, np.inf).argmin(axis=1)
    return np.where(inside.any(axis=1), best, -1).astype(np.int64)


def semi_hard_margin(anchor, positive, negatives, alpha: float) -> float:
    """How far the case is from an ambiguous one: the smallest gap between a distance
    and a band edge, or between the two closest candidates inside a band."""
    d_ap, d_an = squared_distances(anchor, positive, negatives)
    gaps = [np.abs(d_an - d_ap[:, None]).min(), np.abs(d_an - d_ap[:, None] - alpha).min()]
    inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
    ordered = np.sort(np.where(inside, d_an, np.inf), axis=1)
    if ordered.shape[1] > 1:
        two = np.isfinite(ordered[:, 1])
        if two.any():
            gaps.append(float(np.min(ordered[two, 1] - ordered[two, 0])))
    return float(min(gaps))


# -- false_accept_rate_1_to_k and max_enrolled --------------------------------------------


def far_1_to_k(far_1_to_1: float, k: int) -> float:
    """1 - (1 - far)^k, the chance that one of k independent comparisons accepts a stranger,
    computed as -expm1(k log1p(-far)) so that it stays exact for tiny rates."""
    if far_1_to_1 >= 1.0:
        return 1.0 if k > 0 else 0.0
    return float(-math.expm1(k * math.log1p(-far_1_to_1)))


def far_mistakes(far: float, k: int) -> dict[str, float]:
    values = {
        "times_k": far * k,
        "none_accept": (1.0 - far) ** k,
        "all_accept": far ** k,
        "one_minus_far_k": 1.0 - far ** k,
        "percent": 100.0 * far_1_to_k(far, k),
    }
    if k >= 1:
        values["k_minus_1"] = far_1_to_k(far, k - 1)
    values["k_plus_1"] = far_1_to_k(far, k + 1)
    return {name: float(value) for name, value in values.items()}


def max_enrolled(far_1_to_1: float, budget: float) -> int:
    """The largest K with 1 - (1 - far)^K <= budget (0 < far < 1, 0 <= budget < 1)."""
    k = math.floor(math.log1p(-budget) / math.log1p(-far_1_to_1))
    while far_1_to_k(far_1_to_1, k + 1) <= budget:
        k += 1
    while k > 0 and far_1_to_k(far_1_to_1, k) > budget:
        k -= 1
    return k


# -- distance ------------------------------------------------------------------------------


def distance(u, v) -> float:
    a, b = _f64(u, v)
    return float(np.sqrt(np.sum((a - b) ** 2)))
