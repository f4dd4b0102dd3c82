"""One call per question: is this the same person? who is this? (issue #14)

The course builds verification and recognition step by step; these functions
give the same answers in one call, for exercises and for people used to
``face_recognition`` or ``deepface``::

    verify(img1, img2)                  {'verified', 'distance', 'threshold', 'metric', 'model', 'boxes'}
    find(img, database_or_folder)       ranked matches: [{'name', 'distance', 'verified', 'path', 'box'}, ...]
    face_distance(known, candidate)     distances from one embedding to many, (n,)
    compare_faces(known, candidate)     which of them match, (n,) bool

An image is a path, the file's bytes, an RGB array or a Pillow image; its
face is found with MTCNN (the largest, or the most central of faces about as large:
:func:`fr_utils.detect.choose_main`) and encoded by the one batch encoder
(:func:`fr_utils.encoding.encode_batch`), so a photo
gives here the embedding it gives everywhere else. Distances are
:func:`fr_utils.matching.distances_to`'s, and everything decides with
:func:`fr_utils.matching.is_match`: **a match is distance < threshold**, the
threshold being the bundled model's (from its manifest) unless one is given.
Bad input raises the errors of :mod:`fr_utils.errors` naming the file or value:
``FaceImageError`` (unreadable), ``NoFaceError`` (no face), ``ValueError``
(a bad metric, threshold, shape or folder).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from fr_utils.errors import EmptyDatabaseError, NoFaceError, SkippedImagesWarning
from fr_utils.images import as_rgb_array, describe, is_image_file
from fr_utils.matching import check_metric, check_threshold, default_threshold, distances_to, is_match
from fr_utils.weights import is_pretrained, load_facenet, model_identity

__all__ = ["verify", "find", "face_distance", "compare_faces"]


# --------------------------------------------------------------------------- shared steps


def _model(model):
    return load_facenet() if model is None else model


def _threshold(model, metric: str, threshold: float | None) -> float:
    """The given threshold (checked), or the bundled model's in ``metric``."""
    threshold = check_threshold(threshold)
    if threshold is not None:
        return threshold
    if model is not None and not is_pretrained(model):
        raise ValueError(
            "the encoder given is not the bundled model, so there is no calibrated default "
            "threshold: pass threshold= (a distance in (0, 2))"
        )
    return default_threshold(metric)


def _door_face(image, model, detect: bool) -> tuple[np.ndarray, list[int] | None]:
    """(embedding (d,), box [x, y, w, h]) of the door's face of one image (as ``img_to_encoding``
    chooses it: :func:`fr_utils.detect.choose_main`), read once.

    ``detect=False`` takes the whole image as a face crop: its box is None."""
    from fr_utils.align import _cut_box
    from fr_utils.detect import _faces_in, choose_main
    from fr_utils.encoding import encode_batch

    if not detect:
        return encode_batch([image], model, detect=False, progress=False).embeddings[0], None
    img = as_rgb_array(image)
    face = choose_main(_faces_in(img), img.shape)
    if face is None:
        raise NoFaceError(f"{describe(image)}: no face found. If it is already a face crop, pass detect=False.")
    size = int(model.input_shape[1])
    embedding = encode_batch([img], model, crop=lambda rgb: _cut_box(rgb, face, size), progress=False).embeddings[0]
    return embedding, [int(v) for v in face["box"]]


def _as_matrix(known, what: str = "known_encodings") -> np.ndarray:
    """(n, d) float64 from an (n, d) array, a list of (d,) or (1, d) rows, or one (d,) row."""
    try:
        if isinstance(known, (list, tuple)):
            m = np.stack([np.asarray(k, dtype=np.float64).reshape(-1) for k in known]) if known else np.zeros(0)
        else:
            m = np.asarray(known, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be embeddings of one size, an (n, d) array of numbers ({err})") from err
    if m.ndim == 1 and m.size:
        m = m[None]
    if m.size == 0:
        return np.zeros((0, 0))
    if m.ndim != 2:
        raise ValueError(f"{what} must be an (n, d) array of embeddings, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(m))[:, 0]})
        raise ValueError(f"{what} rows {bad} hold NaN or infinite values (a photo without a face?)")
    return m


def _as_vector(candidate, size: int | None) -> np.ndarray:
    try:
        e = np.asarray(candidate, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the candidate must be one embedding, a (d,) array of numbers ({err})") from err
    if e.ndim > 2 or (e.ndim == 2 and e.shape[0] != 1) or e.size == 0:
        raise ValueError(f"the candidate must be one embedding, (d,) or (1, d), got shape {e.shape}")
    e = e.reshape(-1)
    if size is not None and e.size != size:
        raise ValueError(f"the candidate has {e.size} values but the known encodings have {size}")
    if not np.all(np.isfinite(e)):
        raise ValueError("the candidate embedding holds NaN or infinite values")
    return e


# --------------------------------------------------------------------------- face_recognition's pair


def face_distance(known_encodings, candidate, metric: str = "euclidean") -> np.ndarray:
    """Distance from one embedding to each known one (``face_recognition.face_distance``).

    Args:
        known_encodings: (n, d) array, or a list of (d,) or (1, d) embeddings
            (what ``img_to_encoding`` returns); may be empty.
        candidate: one embedding, (d,) or (1, d).
        metric: ``"euclidean"`` (L2, in [0, 2]) or ``"cosine"`` (1 - cos).
    Returns:
        (n,) float64 distances, in the order of ``known_encodings``.
    Raises:
        ValueError: an unknown metric, shapes that do not fit (named), NaN values.
    """
    check_metric(metric)
    m = _as_matrix(known_encodings)
    e = _as_vector(candidate, m.shape[1] if len(m) else None)
    if len(m) == 0:
        return np.zeros(0)
    return distances_to(m, e, metric)


def compare_faces(known_encodings, candidate, tolerance: float | None = None,
                  metric: str = "euclidean") -> np.ndarray:
    """Which known embeddings match the candidate (``face_recognition.compare_faces``).

    A match is ``distance < tolerance`` (:func:`fr_utils.matching.is_match`); the
    default tolerance is the model's threshold in ``metric``, from its manifest
    (the default encoder's L2 threshold, not face_recognition's 0.6: another model,
    another scale).

    Returns:
        (n,) bool array, in the order of ``known_encodings``.
    Raises:
        ValueError: as :func:`face_distance`, or a tolerance outside (0, 2).
    """
    distances = face_distance(known_encodings, candidate, metric)
    return is_match(distances, _threshold(None, metric, tolerance))


# --------------------------------------------------------------------------- deepface's pair


def verify(img1, img2, model=None, *, metric: str = "euclidean", threshold: float | None = None,
           detect: bool = True) -> dict:
    """Are the faces of two images (each one's door face) the same person? (1:1, in one call)

    Args:
        img1, img2: paths, bytes, RGB arrays or Pillow images.
        model: the encoder; ``fr_utils.load_facenet()`` when omitted. Another
            encoder needs its own ``threshold``.
        metric: ``"euclidean"`` (default) or ``"cosine"``.
        threshold: a match is ``distance < threshold``, in (0, 2); by default the
            bundled model's, from its manifest, in ``metric``.
        detect: find the faces (True) or take both images as face crops (False).
    Returns:
        ``{'verified': bool, 'distance': float, 'threshold': float, 'metric': str,
        'model': the encoder's name, 'boxes': [box1, box2]}``, each box the face's
        ``[x, y, w, h]`` in its image's pixels (``fr_utils.draw.draw_faces`` draws it;
        None with ``detect=False``).
    Raises:
        FaceImageError: an image cannot be read (named); NoFaceError: no face in it.
        ValueError: a bad metric or threshold.
    """
    check_metric(metric)
    threshold = _threshold(model, metric, threshold)
    model = _model(model)
    (a, box1), (b, box2) = _door_face(img1, model, detect), _door_face(img2, model, detect)
    distance = float(distances_to(a[None], b, metric)[0])
    return {
        "verified": bool(is_match(distance, threshold)),
        "distance": distance,
        "threshold": threshold,
        "metric": metric,
        "model": model_identity(model)["model_name"],
        "boxes": [box1, box2],
    }


def _folder_photos(folder: Path) -> list[tuple[str, Path]]:
    """(name, photo) of ``<folder>/<name>/*.jpg`` and of ``<folder>/<name>.jpg`` (the file's stem)."""
    photos = [(p.stem, p) for p in sorted(folder.iterdir()) if is_image_file(p)]
    for person in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos += [(person.name, p) for p in sorted(person.iterdir()) if is_image_file(p)]
    if not photos:
        raise ValueError(f"{folder}: no photos in this folder (expected <name>/*.jpg or <name>.jpg)")
    return photos


def _mapping_photos(people: Mapping) -> list[tuple[str, object]]:
    photos = []
    for name, images in people.items():
        one = isinstance(images, (str, os.PathLike, bytes, np.ndarray)) or not hasattr(images, "__iter__")
        items = [images] if one else list(images)
        if not items:
            raise ValueError(f"{name!r} has no photos")
        photos += [(str(name), image) for image in items]
    if not photos:
        raise ValueError("no one to search: the mapping of names to photos is empty")
    return photos


def find(img, database_or_folder, model=None, *, metric: str | None = None, threshold: float | None = None,
         k: int | None = None, detect: bool = True) -> list[dict]:
    """Who is the face of ``img`` (its door face)? Everyone known, nearest first (1:K, in one call).

    Args:
        img: a path, bytes, RGB array or Pillow image.
        database_or_folder: where the known people are:

            * a :class:`fr_utils.FaceDatabase` (its model, metric and threshold are used);
            * a folder: ``<folder>/<name>/*.jpg`` (one folder per person, as the
              sample cast) and ``<folder>/<name>.jpg`` (one photo, named by its stem);
            * a mapping ``{name: photo or [photos]}``, e.g. ``fr_utils.sample_cast()``.

            Photos of a folder or a mapping are encoded on every call (for
            repeated searches, enrol them in a ``FaceDatabase``); unusable ones
            are skipped with a :class:`fr_utils.errors.SkippedImagesWarning`.
        model: the encoder for a folder or mapping; ``load_facenet()`` when omitted.
        metric: ``"euclidean"`` or ``"cosine"``; default the database's, else euclidean.
        threshold: a match is ``distance < threshold``; default the database's, else the model's.
        k: return at most ``k`` people (default: everyone).
    Returns:
        One dict per person, nearest first: ``name``, ``distance`` (to their
        nearest photo), ``verified`` (distance < threshold), ``path`` (that photo;
        None for a database or a photo that is not a file) and ``box`` (the face of
        ``img`` that was searched, ``[x, y, w, h]``). Only the first can be the
        answer: ``find(...)[0]`` when its ``verified`` is True, else nobody.
    Raises:
        FaceImageError / NoFaceError: ``img`` is unreadable or has no face.
        EmptyDatabaseError: an empty database. ValueError: an empty folder or
        mapping, a bad metric, threshold or k, or a folder that does not exist.
    """
    from fr_utils.database import FaceDatabase
    from fr_utils.encoding import encode_batch

    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be a positive whole number (or None for everyone), got {k!r}")
    if isinstance(database_or_folder, FaceDatabase):
        db = database_or_folder
        if metric is not None and check_metric(metric) != db.metric:
            raise ValueError(f"{db.name} uses the metric {db.metric!r}; set its metric instead of passing {metric!r}")
        if model is not None and model is not db.model:
            raise ValueError(f"{db.name} encodes with its own model; pass the model to FaceDatabase instead")
        threshold = db.threshold if threshold is None else check_threshold(threshold)
        if len(db) == 0:
            raise EmptyDatabaseError(f"{db.name}: no one is enrolled yet (enrol someone first)")
        embedding, box = _door_face(img, db.model, detect)
        ranked = [(name, d, None) for name, d in db.nearest(embedding, k=len(db))]
    else:
        metric = check_metric(metric or "euclidean")
        threshold = _threshold(model, metric, threshold)
        if isinstance(database_or_folder, (str, os.PathLike)):
            folder = Path(database_or_folder)
            if not folder.is_dir():
                raise ValueError(f"{folder}: not a folder (expected <name>/*.jpg or <name>.jpg inside)")
            photos = _folder_photos(folder)
        elif isinstance(database_or_folder, Mapping):
            photos = _mapping_photos(database_or_folder)
        else:
            raise ValueError(
                "expected a FaceDatabase, a folder or a mapping {name: photos}, "
                f"got {type(database_or_folder).__name__}"
            )
        model = _model(model)
        embedding, box = _door_face(img, model, detect)
        encoded = encode_batch([p for _, p in photos], model, detect=detect, on_bad="skip", progress=False)
        if encoded.skipped:
            listing = "; ".join(f"{name}: {why}" for _, name, why in encoded.skipped)
            warnings.warn(SkippedImagesWarning(f"{len(encoded.skipped)} photo(s) skipped: {listing}",
                                               [(name, why) for _, name, why in encoded.skipped]), stacklevel=2)
        if not encoded.indices:
            raise ValueError("none of the known photos could be used (each was skipped; see the warning)")
        distances = distances_to(encoded.embeddings, embedding, metric)
        nearest: dict[str, tuple[float, object]] = {}
        for row, d in zip(encoded.indices, distances):
            name, photo = photos[row]
            if name not in nearest or d < nearest[name][0]:
                nearest[name] = (float(d), photo)
        ranked = sorted(((n, d, p) for n, (d, p) in nearest.items()), key=lambda item: (item[1], item[0]))
    rows = [
        {"name": name, "distance": float(d), "verified": bool(is_match(d, threshold)),
         "path": str(path) if isinstance(path, (str, os.PathLike)) else None, "box": box}
        for name, d, path in ranked
    ]
    return rows[:k] if k is not None else rows
