"""Cropping a detected face the way the encoder's training faces were cropped.

The 20180408-102900 model was trained and evaluated on faces cut out by David
Sandberg's ``align_dataset_mtcnn.py``. For LFW (``--image_size 160 --margin 32``)
that script takes MTCNN's box, widens it by ``margin / 2`` pixels on every side,
clips it to the photo, and resizes the crop to 160 x 160 with bilinear
interpolation, without rotating the face or keeping its aspect ratio.
:func:`align_face` does the same, so a crop from a student's photo looks like
the crops the model knows.
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np

from fr_utils.images import FaceImageError, ImageSource, as_rgb_array, resize

Face = Union[Mapping, Sequence[float]]


def _box(face: Face) -> tuple[float, float, float, float]:
    box = face["box"] if isinstance(face, Mapping) else face
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError) as err:
        raise FaceImageError(f"expected a face dict or a box [x, y, w, h], got {face!r}") from err
    return x, y, w, h


def crop_box(image_shape: Sequence[int], face: Face, margin: int = 32) -> tuple[int, int, int, int]:
    """The (x1, y1, x2, y2) pixel slice :func:`align_face` cuts out.

    The box widened by ``margin / 2`` on each side (then truncated to whole
    pixels) and clipped to the image,
    as ``align_dataset_mtcnn.py`` computes it.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    x, y, w, h = _box(face)
    half = margin / 2
    x1 = int(max(x - half, 0))
    y1 = int(max(y - half, 0))
    x2 = int(min(x + w + half, width))
    y2 = int(min(y + h + half, height))
    if x2 <= x1 or y2 <= y1:
        raise FaceImageError(
            f"the face box {[x, y, w, h]} with margin {margin} holds no pixel of the "
            f"{width}x{height} image"
        )
    return x1, y1, x2, y2


def align_face(image: ImageSource, face: Face, size: int = 160, margin: int = 32) -> np.ndarray:
    """Cut one detected face out of a photo, ready for the encoder.

    Args:
        image: the photo the face was detected in (path, bytes or RGB array).
        face: a dict from :func:`fr_utils.detect.detect_faces`, or its box
            ``[x, y, w, h]``.
        size: side of the square crop returned (the encoder takes 160).
        margin: pixels added around the box in total (half on each side),
            measured in the photo, before resizing; 32 as for LFW.
    Returns:
        (size, size, 3) uint8 RGB crop.
    Raises:
        FaceImageError: the image cannot be read, or the box lies outside it.
    """
    img = as_rgb_array(image)
    x1, y1, x2, y2 = crop_box(img.shape, face, margin)
    crop = np.ascontiguousarray(img[y1:y2, x1:x2])
    return resize(crop, int(size))


def align_faces(image: ImageSource, faces: Sequence[Face], size: int = 160, margin: int = 32) -> np.ndarray:
    """:func:`align_face` for every face of one photo: (n, size, size, 3) uint8."""
    img = as_rgb_array(image)
    crops = [align_face(img, face, size, margin) for face in faces]
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)
