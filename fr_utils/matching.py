"""Distances between face embeddings and the decision threshold of the door.

:data:`METRICS`, the two metrics, for embeddings (d,) of unit length:

* ``"euclidean"``: the L2 distance ``||a - b||``, in [0, 2];
* ``"cosine"``: ``1 - cos(a, b)``, in [0, 2].

For unit vectors ``||a - b||^2 = 2 - 2 cos(a, b)``, so ``cosine = euclidean^2 / 2``:
both rank faces identically and an L2 threshold ``t`` is the cosine threshold
``t^2 / 2`` (:func:`euclidean_to_cosine`). A pair matches when ``distance < threshold``
(:func:`is_match`, the notebooks' rule; issue #14).
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("euclidean", "cosine")


def euclidean_to_cosine(threshold: float) -> float:
    """The cosine-distance threshold equivalent to an L2 one for unit vectors: ``t^2 / 2``."""
    return threshold * threshold / 2.0


def cosine_to_euclidean(threshold: float) -> float:
    """The L2 threshold equivalent to a cosine-distance one for unit vectors: ``sqrt(2 t)``."""
    return math.sqrt(2.0 * threshold)


def check_metric(metric: str) -> str:
    """``metric`` if it is ``"euclidean"`` or ``"cosine"``; ValueError naming both otherwise."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
    return metric


def check_threshold(threshold: float | None) -> float | None:
    """``None`` (use the model's default) or a number in (0, 2); ValueError otherwise.

    Both metrics lie in [0, 2] for unit vectors: a threshold of 0 or less would
    match nothing but the very same image, one of 2 or more would match anyone.
    """
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"threshold must be a number between 0 and 2, got {threshold!r}")
    value = float(threshold)
    if not (0.0 < value < 2.0):
        raise ValueError(
            f"threshold must be between 0 and 2, exclusive (distances between unit vectors lie "
            f"in [0, 2]), got {threshold!r}"
        )
    return value


def default_threshold(metric: str = "euclidean", manifest: dict | None = None, *, model=None) -> float:
    """The bundled model's verification threshold, from its manifest, in ``metric``.

    ``model``: a model ``load_facenet`` returned (e.g. the 128-number
    ``facenet_20170512-110547``): its own manifest's threshold is used.

    Raises:
        WeightsError: the manifest is missing or has no ``verification`` entry.
    """
    from fr_utils.errors import WeightsError
    from fr_utils.weights import REBUILD_COMMAND, manifest_path, read_manifest

    check_metric(metric)
    if manifest is None and model is not None:
        from fr_utils.weights import loaded

        manifest = getattr(loaded(model), "manifest", None)
    manifest = read_manifest() if manifest is None else manifest
    entry = manifest.get("verification")
    try:
        value = float(entry["threshold"])
        source_metric = check_metric(entry.get("metric", "euclidean"))
    except (TypeError, KeyError, ValueError) as err:
        raise WeightsError(
            f"{manifest_path()} records no verification threshold (key 'verification'); it was "
            f"written by an older fr_utils. Run {REBUILD_COMMAND} to update it, or pass a threshold."
        ) from err
    if source_metric == metric:
        return value
    return euclidean_to_cosine(value) if metric == "cosine" else cosine_to_euclidean(value)


def is_match(distance, threshold: float):
    """The one decision rule: a match is ``distance < threshold`` (strictly), for a number or an array.

    A distance equal to the threshold does not match (the door stays closed)."""
    return np.asarray(distance) < threshold


def distances_to(matrix: np.ndarray, embedding: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distances from one embedding (d,) to each row of ``matrix`` (n, d) -> (n,) float64.

    One to many; for the distance of each pair of rows of two (n, d) arrays, see
    :func:`fr_utils.evaluate.distances`."""
    m = np.asarray(matrix, dtype=np.float64)
    e = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if check_metric(metric) == "euclidean":
        sq = np.einsum("ij,ij->i", m, m) + e @ e - 2.0 * (m @ e)
        return np.sqrt(np.maximum(sq, 0.0))
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(e)
    return 1.0 - (m @ e) / np.maximum(norms, 1e-12)
