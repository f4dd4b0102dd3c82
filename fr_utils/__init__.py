"""fr_utils: helpers for the FaceNet course.

Public API (imported lazily, so ``import fr_utils`` is quick and TensorFlow
loads on first use)::

    load_facenet()                  pretrained Inception-ResNet-v1, Keras 3, (m,160,160,3) -> (m,512)
    img_to_encoding(image, model)   face crop (path or RGB array) -> (1, 512) unit-norm embedding
    encode_images(images, model)    many face crops -> (n, 512), batched
    load_image(path_or_bytes)       RGB uint8 (H, W, 3), FaceImageError on bad input
    fixed_image_standardization(x)  the model's input standardisation, (x - 127.5) / 128
    prewhiten(x)                    per-image standardisation (for the preprocessing lesson)
    inception_resnet_v1()           the architecture, untrained
    openface_nn4_small2()           OpenFace's nn4.small2 architecture, for comparison (no weights)
    FaceDatabase(path)              the door: enrol, verify, identify; SQLite file or in memory
    default_threshold(metric)       the model's verification threshold, chosen on LFW View 1
    embed_files(paths)              many photos -> (n, 512), cached on disk (NaN rows: no face)
    sample_cast()                   the shipped sample photos, {name: [paths]} (fr_utils.data)
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fr_utils import _quiet  # noqa: E402 - TensorFlow's C++ start-up log, silenced once (fr_utils/_quiet.py)

_quiet.install()

_EXPORTS = {
    "encode_images": "fr_utils.encoding",
    "img_to_encoding": "fr_utils.encoding",
    "preprocess": "fr_utils.encoding",
    "encode_faces": "fr_utils.encoding",
    "face_crop": "fr_utils.encoding",
    "detect_faces": "fr_utils.detect",
    "align_face": "fr_utils.align",
    "FaceImageError": "fr_utils.images",
    "NoFaceError": "fr_utils.images",
    "as_rgb_array": "fr_utils.images",
    "fixed_image_standardization": "fr_utils.images",
    "load_image": "fr_utils.images",
    "prewhiten": "fr_utils.images",
    "inception_resnet_v1": "fr_utils.models",
    "openface_nn4_small2": "fr_utils.models",
    "FaceDatabase": "fr_utils.database",
    "FaceDatabaseError": "fr_utils.database",
    "ModelMismatchError": "fr_utils.database",
    "UnknownPersonError": "fr_utils.database",
    "EmptyDatabaseError": "fr_utils.database",
    "default_threshold": "fr_utils.matching",
    "embed_files": "fr_utils.evaluate",
    "WeightsError": "fr_utils.weights",
    "load_facenet": "fr_utils.weights",
    "sample_cast": "fr_utils.data",
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
