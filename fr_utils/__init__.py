"""fr_utils: helpers for the FaceNet course.

Public API (imported lazily, so ``import fr_utils`` is quick and TensorFlow
loads on first use)::

    load_facenet()                  pretrained Inception-ResNet-v1, Keras 3, (m,160,160,3) -> (m,128)
    img_to_encoding(image, model)   a photo (or a face crop, detect=False) -> (1, 128) unit-norm embedding
    encode_images(images, model)    many photos or crops -> (n, 128), batched
    embed_files(paths)              many photo files -> (n, 128), cached on disk (NaN rows: no face)
    detect_faces(image)             MTCNN: every face's box, confidence and keypoints, largest first
    face_crop(image)                the face of a photo (the door's), cropped as the encoder expects (160x160)
    align_face(image, face)         one detected face cropped as the encoder expects
    load_image(path_or_bytes)       RGB uint8 (H, W, 3), FaceImageError on bad input
    fixed_image_standardization(x)  the 512-number encoder's input standardisation, (x - 127.5) / 128
    prewhiten(x)                    the default encoder's per-image standardisation, (x - mean) / std
    FaceDatabase(path)              the door: enrol, verify, identify; SQLite file or in memory
    sample_cast()                   the course's cast ($FR_CAST_DIR, else the shipped photos), {name: [paths]}
    verify(img1, img2)              one call, 1:1: {'verified', 'distance', 'threshold', 'boxes', ...} (fr_utils.api)
    find(img, database_or_folder)   one call, 1:K: everyone known, nearest first (fr_utils.api)
    face_distance(known, candidate) distances from one embedding to many (fr_utils.api)
    compare_faces(known, candidate) which known embeddings match: distance < threshold (fr_utils.api)
    FrUtilsError                    base class of every error below
    FaceImageError                  an image cannot be read or holds nothing usable (a ValueError)
    NoFaceError                     a photo without a face (a FaceImageError)
    WeightsError                    the encoder's weights are missing or damaged (a RuntimeError)

Everything else is imported from its module: ``fr_utils.encoding`` (the batch
encoder), ``fr_utils.matching`` (metrics, thresholds), ``fr_utils.evaluate``
(LFW), ``fr_utils.models`` (architectures), ``fr_utils.errors`` (every error),
``fr_utils.weights`` (the weights files), ``fr_utils.build`` (maintainers' tools).
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fr_utils import _quiet  # noqa: E402 - TensorFlow's C++ start-up log, silenced once (fr_utils/_quiet.py)

_quiet.install()

_EXPORTS = {
    "load_facenet": "fr_utils.weights",
    "sample_cast": "fr_utils.data",
    "img_to_encoding": "fr_utils.encoding",
    "encode_images": "fr_utils.encoding",
    "embed_files": "fr_utils.embedding_cache",
    "detect_faces": "fr_utils.detect",
    "face_crop": "fr_utils.encoding",
    "align_face": "fr_utils.align",
    "load_image": "fr_utils.images",
    "fixed_image_standardization": "fr_utils.images",
    "prewhiten": "fr_utils.images",
    "FaceDatabase": "fr_utils.database",
    "verify": "fr_utils.api",
    "find": "fr_utils.api",
    "face_distance": "fr_utils.api",
    "compare_faces": "fr_utils.api",
    "FrUtilsError": "fr_utils.errors",
    "FaceImageError": "fr_utils.errors",
    "NoFaceError": "fr_utils.errors",
    "WeightsError": "fr_utils.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name == "data":  # fr_utils.data.cast_dir() without importing fr_utils.data first
        return importlib.import_module("fr_utils.data")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fr_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
