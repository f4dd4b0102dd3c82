"""Face images -> embeddings with the pretrained encoder."""

from __future__ import annotations

import os
import weakref
from typing import Callable, Iterable, Sequence

import numpy as np

from fr_utils.images import ImageSource, NoFaceError, as_rgb_array, fixed_image_standardization, resize

# Models registered as read-only (the pretrained encoder from ``load_facenet``),
# each with its inference function once built.
_READ_ONLY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def register_read_only(model) -> None:
    """Declare that ``model``'s weights will never change, so inference may fold them
    into constants. ``load_facenet`` does this for the pretrained encoder."""
    model.trainable = False
    _READ_ONLY.setdefault(model, None)


def _frozen_inference(model) -> Callable[[np.ndarray], np.ndarray]:
    """The model as a TensorFlow graph with its weights folded into constants.

    Grappler can then fuse each convolution with its bias and ReLU, as it does for
    the original frozen graph: at batch 1 this runs about 1.4x faster than
    ``model.predict_on_batch`` on a 2-core CPU. Same numbers (max difference ~1e-7).
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError:  # the helper moved: fall back to the plain Keras call
        return model.predict_on_batch
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)

    def run(images: np.ndarray) -> np.ndarray:
        return frozen(tf.constant(images, dtype=tf.float32))[0].numpy()

    return run


def inference_function(model) -> Callable[[np.ndarray], np.ndarray]:
    """(m, H, W, 3) standardised float32 -> (m, d) embeddings for ``model``.

    Read-only models (see :func:`register_read_only`) get a graph with their weights
    folded into constants, built on first use (about 3 s); any other model is
    called through ``predict_on_batch``, so changes to its weights are always seen.
    """
    if model not in _READ_ONLY:
        return model.predict_on_batch
    fn = _READ_ONLY[model]
    if fn is None:
        fn = _READ_ONLY[model] = _frozen_inference(model)
    return fn


def _input_size(model) -> int:
    return int(model.input_shape[1])


def preprocess(image: ImageSource, size: int = 160) -> np.ndarray:
    """A face crop (path, bytes or RGB array) -> (size, size, 3) float32 model input.

    The crop is resized to ``size`` x ``size`` (bilinear) and standardised with
    :func:`fr_utils.images.fixed_image_standardization`.
    """
    return fixed_image_standardization(resize(as_rgb_array(image), size))


def face_crop(image: ImageSource, margin: int = 32, size: int = 160) -> np.ndarray:
    """The largest face of a photo, detected with MTCNN and cropped as the encoder expects.

    Returns:
        (size, size, 3) uint8 crop (see :func:`fr_utils.align.align_face`).
    Raises:
        NoFaceError: no face was found; the message names the file.
        FaceImageError: the image cannot be read.
    """
    from fr_utils.align import align_face
    from fr_utils.detect import detect_faces

    img = as_rgb_array(image)
    faces = detect_faces(img)
    if not faces:
        where = str(image) if isinstance(image, (str, os.PathLike)) else "the image"
        raise NoFaceError(
            f"{where}: no face found. If it is already a face crop, pass detect=False."
        )
    return align_face(img, faces[0], size=size, margin=margin)


def img_to_encoding(image: ImageSource, model=None, *, detect: bool = True, margin: int = 32) -> np.ndarray:
    """Encode the face in one image.

    How it decides what to encode: with ``detect=True`` (the default) the image is
    treated as a photo: MTCNN finds the faces, the largest one is cropped with
    ``margin`` pixels around its box (Sandberg's LFW protocol) and encoded. With
    ``detect=False`` the whole image is taken as an already-cropped face (an
    LFW-style crop or the output of ``align_face``) and only resized.

    Args:
        image: a path to an image file, its bytes, or an RGB array (H, W, 3).
        model: the encoder; ``fr_utils.load_facenet()`` when omitted.
        detect: find the face first (True) or take the image as a face crop (False).
        margin: pixels around the detected box, in total (half on each side).
    Returns:
        float32 array of shape (1, 512) with unit L2 norm.
    Raises:
        FaceImageError: (a ``ValueError``) the path is missing or not an image.
        NoFaceError: (a ``FaceImageError``) ``detect=True`` and no face was found.
    """
    model = _default(model)
    face = face_crop(image, margin) if detect else image
    x = preprocess(face, _input_size(model))[None]
    return np.asarray(inference_function(model)(x), dtype=np.float32)


def encode_images(
    images: Sequence[ImageSource] | Iterable[ImageSource],
    model=None,
    *,
    detect: bool = True,
    margin: int = 32,
    batch_size: int = 32,
    on_no_face: str = "raise",
    progress: bool | None = None,
) -> np.ndarray:
    """Encode many images with batched model calls.

    Each image is handled as in :func:`img_to_encoding` (``detect`` and ``margin``
    mean the same). A progress bar is shown when ``progress`` is True, or by
    default when there are more than 100 images.

    Args:
        on_no_face: ``"raise"`` (NoFaceError naming the file) or ``"nan"`` (that
            image's row is all NaN, so rows stay aligned with ``images``).
    Returns:
        float32 array of shape (n, 512), one row per image, in order.
    """
    if on_no_face not in ("raise", "nan"):
        raise ValueError(f"on_no_face must be 'raise' or 'nan', got {on_no_face!r}")
    model = _default(model)
    size = _input_size(model)
    run = inference_function(model)
    images = list(images)
    out = np.full((len(images), int(model.output_shape[-1])), np.nan, dtype=np.float32)
    bar = _progress_bar(len(images), progress)
    try:
        for start in range(0, len(images), batch_size):
            rows, batch = [], []
            for i, img in enumerate(images[start : start + batch_size], start):
                try:
                    face = face_crop(img, margin) if detect else img
                except NoFaceError:
                    if on_no_face == "raise":
                        raise
                    continue
                rows.append(i)
                batch.append(preprocess(face, size))
            if batch:
                out[rows] = run(np.stack(batch))
            if bar is not None:
                bar.update(min(batch_size, len(images) - start))
    finally:
        if bar is not None:
            bar.close()
    return out


def encode_faces(image: ImageSource, model=None, *, margin: int = 32) -> list[dict]:
    """Detect every face in a photo and encode each one (one batched model call).

    Returns:
        One dict per face, largest first: the detector's ``box``, ``confidence``
        and ``keypoints``, plus ``embedding``, a (512,) float32 unit vector.
        ``[]`` when the photo has no face.
    """
    from fr_utils.align import align_face
    from fr_utils.detect import detect_faces

    model = _default(model)
    img = as_rgb_array(image)
    faces = detect_faces(img)
    if not faces:
        return []
    size = _input_size(model)
    x = np.stack([preprocess(align_face(img, f, size=size, margin=margin), size) for f in faces])
    embeddings = inference_function(model)(x)
    return [dict(face, embedding=np.asarray(e, dtype=np.float32)) for face, e in zip(faces, embeddings)]


def _default(model):
    if model is None:
        from fr_utils.weights import load_facenet

        return load_facenet()
    return model


def _progress_bar(total: int, progress: bool | None):
    if progress is False or (progress is None and total <= 100):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="image", desc="encoding")
