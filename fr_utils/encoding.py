"""Face images -> embeddings with the pretrained encoder.

Every image is encoded by one function, :func:`encode_batch`: ``img_to_encoding``,
``encode_images`` and ``encode_faces`` here, ``FaceDatabase.enroll`` and the
embedding cache of ``embed_files`` all call it. It reads and checks each image once
(:func:`fr_utils.images.as_rgb_array`), finds and crops the face (or takes the
image as a crop), resizes and standardises it, and runs the model in batches.
What happens to an image that cannot be used is the caller's choice: raise, a NaN
row, or skip it and report which and why.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from fr_utils.align import _cut_box
from fr_utils.detect import Prepared, _faces_in, _faces_in_many, choose_main
from fr_utils.errors import FaceImageError, NoFaceError
from fr_utils.images import (ImageSource, as_rgb_array, describe, fixed_image_standardization, prewhiten, resize,
                             unit_range)
from fr_utils.weights import load_facenet, loaded, read_manifest

#: What :func:`encode_batch` does with an image it cannot encode.
ON_BAD = ("raise", "nan", "skip")


# --------------------------------------------------------------------------- the model


#: The arithmetic of a pretrained encoder's inference (see :func:`inference_function`).
PRECISIONS = ("float32", "bfloat16")
#: The environment variable that chooses it for every call that does not.
PRECISION_ENV = "FR_ENCODER_PRECISION"

#: Layers kept in float32 in the bfloat16 encoder: the bottleneck and the L2 normalisation.
_FLOAT32_HEAD = ("Dense", "BatchNormalization", "UnitNormalization", "InputLayer")


#: What a precision may be asked as: one of :data:`PRECISIONS`, or ``"auto"`` (see :func:`encoder_precision`).
PRECISION_CHOICES = ("auto", *PRECISIONS)

#: CPU features (Linux ``/proc/cpuinfo`` flags) that compute bfloat16 in hardware: AVX-512 BF16, AMX.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bfloat16(cpuinfo: str | os.PathLike | None = None) -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX-BF16, read from
    Linux's ``/proc/cpuinfo``, or the file ``cpuinfo``; False where it cannot be read). Without
    them oneDNN emulates bfloat16, slower than float32. This machine's answer is read once."""
    if cpuinfo is None:
        return _native_bfloat16_here()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(_BF16_FLAGS & set(line.partition(":")[2].split()))
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def _native_bfloat16_here() -> bool:
    return native_bfloat16("/proc/cpuinfo")


def encoder_precision(precision: str | None = None) -> str:
    """``precision``, or ``$FR_ENCODER_PRECISION`` when it is None (default ``"float32"``), checked.

    ``"auto"``: ``"bfloat16"`` on a CPU that computes it in hardware (:func:`native_bfloat16`),
    else ``"float32"`` (``facedoor serve``'s default). Returns ``"float32"`` or ``"bfloat16"``."""
    value = (os.environ.get(PRECISION_ENV) or "float32") if precision is None else precision
    if value not in PRECISION_CHOICES:
        where = f"${PRECISION_ENV}" if precision is None else "precision"
        raise ValueError(f"{where} must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {value!r}")
    if value == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return value


#: True after :func:`quick_start`: pretrained float32 graphs are traced over the variables.
_QUICK_START = False


def quick_start(on: bool = True) -> None:
    """Build pretrained encoders for a short-lived process that encodes a photo or two (the ``facedoor`` commands).

    By default the float32 graph of a pretrained encoder has its weights folded
    into constants: the fastest per call, but about 3 s to build on a quiet
    machine and 13 s at load average 9. After ``quick_start()`` it is traced over
    the weights' variables instead: the same numbers, built several seconds
    sooner, slower per call at batch 1. Affects only graphs not yet built.
    """
    global _QUICK_START
    _QUICK_START = bool(on)


def _traced(model) -> Callable[[np.ndarray], np.ndarray]:
    """``model`` as one traced TensorFlow function (any batch size), its weights read from the variables."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    traced = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def run(images: np.ndarray) -> np.ndarray:
        return traced(tf.constant(images, dtype=tf.float32)).numpy()

    return run


def _folded(model) -> Callable[[np.ndarray], np.ndarray]:
    """``model`` as one traced TensorFlow graph (any batch size) with its weights folded into constants.

    Grappler can then fuse each convolution with its bias and ReLU, as it does for
    the original frozen graph, and oneDNN keeps constant filters in its own layout
    instead of reordering them at every call: at batch 1 this runs about 1.4x
    faster than ``model.predict_on_batch`` (float32; the bfloat16 copy 1.8x faster
    than with its weights in variables). Same numbers (max difference ~1e-7).
    Building it costs about 3 s on a quiet machine (13 s at load average 9).
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError:  # the helper moved: fall back to the plain Keras call
        return model.predict_on_batch
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    frozen = convert_variables_to_constants_v2(tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))

    def run(images: np.ndarray) -> np.ndarray:
        return frozen(tf.constant(images, dtype=tf.float32))[0].numpy()

    return run


def _bfloat16_twin(model):
    """A copy of ``model`` computing in bfloat16 (oneDNN's AVX-512 BF16 convolutions), its head in float32.

    The weights are rounded to bfloat16 once (no cast per call); the bottleneck,
    its batch norm and the L2 normalisation stay float32, so the embeddings are
    float32 unit vectors.
    """
    import keras

    def clone(layer):
        config = layer.get_config()
        if type(layer).__name__ not in _FLOAT32_HEAD:
            config["dtype"] = "bfloat16"
        return type(layer).from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    twin.trainable = False
    return twin


def inference_function(model, precision: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """(m, H, W, 3) standardised float32 -> (m, d) float32 embeddings for ``model``.

    A model ``load_facenet`` returned (read-only, see :func:`fr_utils.weights.is_pretrained`)
    runs as a graph with its weights folded into constants, built on first use
    and kept in the registry of loaded models (after :func:`quick_start`, the float32
    graph reads the variables instead: quicker to build). ``precision`` (default ``$FR_ENCODER_PRECISION``,
    else ``"float32"``): ``"float32"`` gives the original graph's numbers (to
    1e-5); ``"bfloat16"`` runs a bfloat16 copy of the network, faster on a CPU
    with AVX-512 BF16 or AMX, its embeddings within a few 1e-3 of float32 (LFW
    verdicts measured in docs/measured.md). Any other model is called through
    ``predict_on_batch`` in its own arithmetic, so changes to its weights are always seen.
    """
    precision = encoder_precision(precision)
    entry = loaded(model)
    if entry is None:
        return model.predict_on_batch
    if precision == "float32":
        if entry.inference is None:
            entry.inference = _traced(model) if _QUICK_START else _folded(model)
        return entry.inference
    if precision not in entry.variants:
        entry.variants[precision] = _folded(_bfloat16_twin(model))
    return entry.variants[precision]


def _default(model):
    return load_facenet() if model is None else model


def _input_size(model) -> int:
    return int(model.input_shape[1])


# --------------------------------------------------------------------------- one image's way


def standardization(model=None) -> Callable[[np.ndarray], np.ndarray]:
    """The input standardisation ``model`` was trained with, read from its manifest.

    :func:`fr_utils.images.prewhiten` for an encoder whose manifest's
    ``preprocessing`` starts with ``"prewhiten"`` (the default, the 128-number
    20170512-110547); :func:`fr_utils.images.unit_range` for ``"rgb/255"`` (the
    distilled OpenFace nn4.small2 of :func:`fr_utils.distill.load_student`);
    :func:`fr_utils.images.fixed_image_standardization` for the 512-number
    20180408-102900 and for any model ``load_facenet`` did not return.
    ``None``: the default encoder's (read from its manifest, without loading it).

    Raises:
        WeightsError: ``model`` is None and the default encoder's manifest is missing or invalid.
    """
    if model is None:
        manifest = read_manifest()
    else:
        entry = loaded(model)
        manifest = entry.manifest if entry is not None else {}
    preprocessing = str(manifest.get("preprocessing", ""))
    if preprocessing.startswith("prewhiten"):
        return prewhiten
    if preprocessing == "rgb/255":
        return unit_range
    return fixed_image_standardization


def _model_input(rgb: np.ndarray, size: int, standardize=fixed_image_standardization) -> np.ndarray:
    """A checked RGB uint8 crop -> (size, size, 3) float32 model input."""
    return standardize(resize(rgb, size))


def preprocess(image: ImageSource, size: int = 160, *, model=None) -> np.ndarray:
    """A face crop (path, bytes or RGB array) -> (size, size, 3) float32 model input.

    The crop is resized to ``size`` x ``size`` (bilinear) and standardised as the
    default encoder expects (prewhitening, :func:`standardization`), or as ``model``
    expects when it is given (its input size and :func:`standardization`).
    """
    if model is not None:
        return _model_input(as_rgb_array(image), _input_size(model), standardization(model))
    return _model_input(as_rgb_array(image), size, standardization(None))


def face_crop(image: ImageSource, margin: float | None = None, size: int = 160, *,
              max_side: int | None = None) -> np.ndarray:
    """The door's face of a photo, detected with MTCNN and cropped as the encoder expects.

    Which face: the largest, unless others are about as large; then the most central of
    those (:func:`fr_utils.detect.choose_main`; a photo with one face: that face).

    The one crop of the project, :func:`fr_utils.align.crop_region`: the box
    widened by :data:`fr_utils.align.MARGIN_FRACTION` of its mean side
    (Sandberg's LFW crop at any photo size), or by ``margin`` pixels when given,
    resampled where it lies (:func:`fr_utils.align.align_face`).

    ``max_side``: detect on the photo resized to this longest side instead of
    :data:`fr_utils.detect.MAX_SIDE` (``facedoor serve --detect-side``).

    Returns:
        (size, size, 3) uint8 crop (see :func:`fr_utils.align.align_face`).
    Raises:
        NoFaceError: no face was found; the message names the file.
        FaceImageError: the image cannot be read.
    """
    crop = face_crops([image], margin, size, max_side=max_side)[0]
    if isinstance(crop, FaceImageError):
        raise crop
    return crop


def _no_face(image) -> NoFaceError:
    where = str(image) if isinstance(image, (str, os.PathLike)) else "the image"
    return NoFaceError(f"{where}: no face found. If it is already a face crop, pass detect=False.")


def face_crops(images: Sequence[ImageSource], margin: float | None = None, size: int = 160, *,
               max_side: int | None = None) -> list[np.ndarray | FaceImageError]:
    """:func:`face_crop` of several photos, their faces found together.

    Photos of one size go through MTCNN in one call (:func:`fr_utils.detect.detect_faces_many`:
    the same faces as one by one, in less time); ``facedoor serve`` crops the photos of the
    requests waiting together this way.

    ``images`` may hold :class:`fr_utils.detect.Prepared` photos (already resized for detection
    with ``max_side``: then not resized again).

    Returns:
        One entry per photo: its (size, size, 3) uint8 crop, or the :class:`FaceImageError`
        :func:`face_crop` would raise for it (unreadable, no face), so that a bad photo
        spoils only its own entry.
    """
    out: list = [None] * len(images)
    imgs, rows = [], []
    for i, image in enumerate(images):
        try:
            imgs.append(image if isinstance(image, Prepared) else as_rgb_array(image))
            rows.append(i)
        except FaceImageError as err:
            out[i] = err
    found = _faces_in_many(imgs) if max_side is None else _faces_in_many(imgs, max_side=max_side)
    for i, img, faces in zip(rows, imgs, found):
        img = img.image if isinstance(img, Prepared) else img
        out[i] = _cut_box(img, choose_main(faces, img.shape), size=size, margin=margin) if faces else _no_face(images[i])
    return out


# --------------------------------------------------------------------------- the batch encoder


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, show: bool | None, desc: str) -> Iterator:
    """A progress bar over ``total`` images (an object with ``update(n)``), closed on exit.

    ``show``: True, a bar when there is more than one image; None, when there are
    more than 100; False, never (then the object does nothing).
    """
    if show is False or total <= 1 or (show is None and total <= 100):
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="image", desc=desc) as bar:
        yield bar


@dataclass
class Encoded:
    """What :func:`encode_batch` returns.

    Attributes:
        embeddings: float32 rows. With ``on_bad="nan"`` (or ``"raise"``) one row per
            image, in order, all NaN for an image not encoded; with ``"skip"`` only
            the rows of the images encoded, in order.
        indices: for each row of ``embeddings``, the position of its image in the input.
        skipped: ``(position, image name, reason)`` of every image not encoded.
    """

    embeddings: np.ndarray
    indices: list[int]
    skipped: list[tuple[int, str, str]] = field(default_factory=list)


def _reason(err: Exception, image) -> str:
    """An error's message without the image name it starts with (it is listed beside it)."""
    text, prefix = str(err), f"{describe(image)}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def encode_batch(
    images: Sequence | Iterable,
    model=None,
    *,
    detect: bool = True,
    margin: float | None = None,
    crop: Callable[[object], np.ndarray] | None = None,
    flip: bool = False,
    batch_size: int = 32,
    on_bad: str = "raise",
    bad: type[Exception] | tuple[type[Exception], ...] = FaceImageError,
    progress: bool | None = None,
    desc: str = "encoding",
) -> Encoded:
    """Encode many images with batched model calls: the one encoder behind all the others.

    Args:
        images: the images (paths, bytes, RGB arrays, Pillow images), or whatever
            ``crop`` takes.
        model: the encoder; ``fr_utils.load_facenet()`` when omitted.
        detect, margin: as in :func:`img_to_encoding`: the door's face found by
            MTCNN (:func:`fr_utils.detect.choose_main`) plus its margin (:func:`fr_utils.align.crop_region`; ``margin``: pixels
            instead of the proportional default) (``detect=True``), or the whole image taken
            as a face crop (``detect=False``).
        crop: instead of ``detect``: a function from one item to its (H, W, 3)
            uint8 face crop (it reads the image itself).
        flip: also encode each mirrored crop: rows ``[f(x), f(mirror(x))]``.
        batch_size: images per model call.
        on_bad: what to do with an image raising ``bad`` (by default any
            :class:`FaceImageError`: unreadable, or no face): ``"raise"`` the error
            (naming the file), give it a ``"nan"`` row, or ``"skip"`` it; the
            skipped ones are listed either way in :attr:`Encoded.skipped`.
        progress: show a progress bar (see :func:`progress_bar`).
    Returns:
        :class:`Encoded`.
    """
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {', '.join(map(repr, ON_BAD))}, got {on_bad!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = _default(model)
    size = _input_size(model)
    standardize = standardization(model)
    run = inference_function(model)
    if crop is None:
        crop = (lambda image: face_crop(image, margin)) if detect else as_rgb_array
    items = list(images)
    dim = int(model.output_shape[-1]) * (2 if flip else 1)
    out = np.full((len(items), dim), np.nan, dtype=np.float32)
    skipped: list[tuple[int, str, str]] = []
    with progress_bar(len(items), progress, desc) as bar:
        for start in range(0, len(items), batch_size):
            rows, batch = [], []
            for i, item in enumerate(items[start : start + batch_size], start):
                try:
                    batch.append(_model_input(crop(item), size, standardize))
                except bad as err:
                    if on_bad == "raise":
                        raise
                    skipped.append((i, describe(item), _reason(err, item)))
                    continue
                rows.append(i)
            if batch:
                x = np.stack(batch)
                y = np.asarray(run(x), dtype=np.float32)
                if flip:
                    y = np.concatenate([y, np.asarray(run(np.ascontiguousarray(x[:, :, ::-1])), np.float32)], 1)
                out[rows] = y
            bar.update(min(batch_size, len(items) - start))
    bad_rows = {i for i, _, _ in skipped}
    if on_bad == "skip":
        indices = [i for i in range(len(items)) if i not in bad_rows]
        return Encoded(out[indices], indices, skipped)
    return Encoded(out, list(range(len(items))), skipped)


# --------------------------------------------------------------------------- the course's functions


def img_to_encoding(image: ImageSource, model=None, *, detect: bool = True,
                    margin: float | None = None) -> np.ndarray:
    """Encode the face in one image.

    How it decides what to encode: with ``detect=True`` (the default) the image is
    treated as a photo: MTCNN finds the faces, the largest one (or, when others are
    about as large, the most central of them: :func:`fr_utils.detect.choose_main`)
    is cropped with a margin around its box proportional to the box (Sandberg's LFW crop at any
    photo size, :func:`fr_utils.align.crop_region`) and encoded. With
    ``detect=False`` the whole image is taken as an already-cropped face (an
    LFW-style crop or the output of ``align_face``) and only resized.

    Args:
        image: a path to an image file, its bytes, or an RGB array (H, W, 3).
        model: the encoder; ``fr_utils.load_facenet()`` when omitted.
        detect: find the face first (True) or take the image as a face crop (False).
        margin: ``None`` (default): around the detected box, in total (half on each
            side), :data:`fr_utils.align.MARGIN_FRACTION` of its mean side; a number:
            that many pixels instead.
    Returns:
        float32 array of shape (1, d) with unit L2 norm: d = 128 for the default
        encoder, 512 for ``load_facenet("facenet_20180408-102900")``.
    Raises:
        FaceImageError: (a ``ValueError``) the path is missing or not an image.
        NoFaceError: (a ``FaceImageError``) ``detect=True`` and no face was found.
    """
    return encode_batch([image], model, detect=detect, margin=margin, progress=False).embeddings


def encode_images(
    images: Sequence[ImageSource] | Iterable[ImageSource],
    model=None,
    *,
    detect: bool = True,
    margin: float | None = None,
    batch_size: int = 32,
    on_no_face: str = "raise",
    progress: bool | None = None,
) -> np.ndarray:
    """Encode many images with batched model calls.

    Each image is handled as in :func:`img_to_encoding` (``detect`` and ``margin``
    mean the same). A progress bar is shown when ``progress`` is True, or by
    default when there are more than 100 images. (:func:`encode_batch` can also
    skip unreadable images and report them.)

    Args:
        on_no_face: ``"raise"`` (NoFaceError naming the file) or ``"nan"`` (that
            image's row is all NaN, so rows stay aligned with ``images``).
    Returns:
        float32 array of shape (n, d) (d = 128 for the default encoder), one row per image, in order.
    """
    if on_no_face not in ("raise", "nan"):
        raise ValueError(f"on_no_face must be 'raise' or 'nan', got {on_no_face!r}")
    return encode_batch(images, model, detect=detect, margin=margin, batch_size=batch_size,
                        on_bad=on_no_face, bad=NoFaceError, progress=progress).embeddings


def encode_faces(image: ImageSource, model=None, *, margin: float | None = None) -> list[dict]:
    """Detect every face in a photo and encode each one (one batched model call).

    Returns:
        One dict per face, largest first: the detector's ``box``, ``confidence``
        and ``keypoints``, plus ``embedding``, a (d,) float32 unit vector (d = 128 for the default encoder).
        ``[]`` when the photo has no face.
    """
    model = _default(model)
    img = as_rgb_array(image)
    faces = _faces_in(img)
    if not faces:
        return []
    size = _input_size(model)
    embeddings = encode_batch(faces, model, crop=lambda face: _cut_box(img, face, size, margin),
                              batch_size=max(len(faces), 1), progress=False).embeddings
    return [dict(face, embedding=e) for face, e in zip(faces, embeddings)]
