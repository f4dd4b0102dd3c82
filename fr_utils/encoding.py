"""Face images -> embeddings with the pretrained encoder."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from fr_utils.images import ImageSource, as_rgb_array, fixed_image_standardization, resize


def _input_size(model) -> int:
    return int(model.input_shape[1])


def preprocess(image: ImageSource, size: int = 160) -> np.ndarray:
    """A face crop (path, bytes or RGB array) -> (size, size, 3) float32 model input.

    The crop is resized to ``size`` x ``size`` (bilinear) and standardised with
    :func:`fr_utils.images.fixed_image_standardization`.
    """
    return fixed_image_standardization(resize(as_rgb_array(image), size))


def img_to_encoding(image: ImageSource, model=None) -> np.ndarray:
    """Encode one face crop.

    Args:
        image: a path to an image file, its bytes, or an RGB array (H, W, 3) of a
            face crop (for example an LFW image or an MTCNN crop); it is resized
            to the model's input size and standardised here.
        model: the encoder; ``fr_utils.load_facenet()`` when omitted.
    Returns:
        float32 array of shape (1, 512) with unit L2 norm.
    Raises:
        FaceImageError: (a ``ValueError``) the path is missing or not an image.
    """
    if model is None:
        from fr_utils.weights import load_facenet

        model = load_facenet()
    x = preprocess(image, _input_size(model))[None]
    return np.asarray(model.predict_on_batch(x), dtype=np.float32)


def encode_images(images: Sequence[ImageSource] | Iterable[ImageSource], model=None, batch_size: int = 32) -> np.ndarray:
    """Encode many face crops with batched model calls.

    Returns:
        float32 array of shape (n, 512), one unit-norm row per image, in order.
    """
    if model is None:
        from fr_utils.weights import load_facenet

        model = load_facenet()
    size = _input_size(model)
    images = list(images)
    out = np.zeros((len(images), int(model.output_shape[-1])), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = np.stack([preprocess(img, size) for img in images[start : start + batch_size]])
        out[start : start + len(batch)] = model.predict_on_batch(batch)
    return out
