"""Cropping a detected face the way the encoder's training faces were cropped.

Both encoders were trained and evaluated on faces cut out by David Sandberg's
``align_dataset_mtcnn.py``. For LFW (``--image_size 160 --margin 32``) that
script takes MTCNN's box, widens it by 16 pixels on every side, clips it to the
photo, and resizes the crop to 160 x 160 with bilinear interpolation, without
rotating the face or keeping its aspect ratio. Those 32 pixels were meant for
LFW's 250 x 250 photos, whose faces are about 107 px; in a 1000-px photo they
would be a thin rim. :func:`align_face` keeps the same proportions at any size:
the margin is :data:`MARGIN_FRACTION` of the box's mean side, and the rectangle
is resampled where it lies, to a fraction of a pixel (:func:`crop_region`,
:data:`CROP_RESAMPLE`), not first truncated to whole pixels, so a photo twice
as large gives the same crop.
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np

from fr_utils.errors import FaceImageError
from fr_utils.images import ImageSource, as_rgb_array, resize_region

Face = Union[Mapping, Sequence[float]]

#: The margin around MTCNN's box, in total (half on each side), as a fraction of
#: the box's mean side ``(w + h) / 2``: Sandberg's 32 px for LFW divided by the
#: median mean side of the boxes MTCNN finds in LFW's 250-px photos, 107 px
#: (median width 91, height 123; the largest face of the 9,046 photos of
#: ``pairs.txt`` and View 1 in the detection cache, confidence >= 0.9). So a
#: typical LFW face gets exactly Sandberg's crop, and a face of any size the
#: same proportions. Measured with the detection cache (``docs/lfw.md``,
#: "Scale-invariant crops").
MARGIN_FRACTION = 32 / 107

#: How :func:`align_face` resamples the crop's rectangle to the encoder's input
#: (:func:`fr_utils.images.resize_region`): where it lies, to a fraction of a
#: pixel, with Pillow's bilinear filter, which widens to average every pixel under
#: an output pixel when a large face is shrunk (antialiasing) and interpolates
#: linearly when a small one is enlarged, as Sandberg's crops were made. Chosen on
#: LFW at four photo sizes (``docs/lfw.md``, "Scale-invariant crops"): the same
#: photo's embeddings at 0.5x, 2x and 3x lie 4-18% nearer its 1x embedding than
#: with the former crop (slice truncated to whole pixels), 1x accuracy unchanged;
#: bicubic brought them a little nearer still but cost the 512-number encoder
#: 4 pairs at 1x.
CROP_RESAMPLE = "bilinear"


def crop_name() -> str:
    """The crop's name in the embedding cache's folder names: its margin and resampling,
    ``box0.2991-sub-bilinear``; it changes whenever the crop's pixels change, so an
    embedding of another crop is never read for this one."""
    return f"box{MARGIN_FRACTION:.4f}-sub-{CROP_RESAMPLE}"


def _box(face: Face) -> tuple[float, float, float, float]:
    box = face["box"] if isinstance(face, Mapping) else face
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError) as err:
        raise FaceImageError(f"expected a face dict or a box [x, y, w, h], got {face!r}") from err
    return x, y, w, h


def margin_pixels(face: Face, margin: float | None = None) -> float:
    """The margin, in pixels in total (half on each side), that :func:`crop_box` adds
    around ``face``'s box: ``margin`` itself when given, else :data:`MARGIN_FRACTION`
    of the box's mean side ``(w + h) / 2``."""
    if margin is not None:
        try:
            value = float(margin)
        except (TypeError, ValueError):
            raise ValueError(f"margin must be a number of pixels or None, got {margin!r}") from None
        if not value >= 0:
            raise ValueError(f"margin must be a number of pixels >= 0 or None, got {margin!r}")
        return value
    _, _, w, h = _box(face)
    return MARGIN_FRACTION * (w + h) / 2.0


def crop_region(image_shape: Sequence[int], face: Face, margin: float | None = None) -> tuple[float, float, float, float]:
    """The (x1, y1, x2, y2) rectangle :func:`align_face` resamples, in pixels that need not
    be whole: the box widened on each side by half of :func:`margin_pixels` (by default
    :data:`MARGIN_FRACTION` of its mean side, so the crop scales with the face;
    ``margin``: a fixed number of pixels instead), clipped to the image.

    Raises:
        FaceImageError: nothing of the widened box lies inside the image.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    x, y, w, h = _box(face)
    half = margin_pixels(face, margin) / 2.0
    x1, y1 = max(x - half, 0.0), max(y - half, 0.0)
    x2, y2 = min(x + w + half, float(width)), min(y + h + half, float(height))
    if not (x2 > x1 and y2 > y1):
        raise FaceImageError(
            f"the face box {[x, y, w, h]} with a margin of {2 * half:g} px holds no pixel of the "
            f"{width}x{height} image"
        )
    return x1, y1, x2, y2


def crop_box(image_shape: Sequence[int], face: Face, margin: float | None = None) -> tuple[int, int, int, int]:
    """:func:`crop_region` in whole pixels, as a (x1, y1, x2, y2) slice: truncated, as
    ``align_dataset_mtcnn.py`` does (what :func:`align_face` cut out before it resampled
    the rectangle itself; ``fr_utils.distill`` still cuts this slice). A typical 107-px
    LFW face gets Sandberg's 16 px on each side either way.
    """
    x, y, w, h = _box(face)
    half = margin_pixels(face, margin) / 2.0
    height, width = int(image_shape[0]), int(image_shape[1])
    x1 = int(max(x - half, 0))
    y1 = int(max(y - half, 0))
    x2 = int(min(x + w + half, width))
    y2 = int(min(y + h + half, height))
    if x2 <= x1 or y2 <= y1:
        raise FaceImageError(
            f"the face box {[x, y, w, h]} with a margin of {2 * half:g} px holds no pixel of the "
            f"{width}x{height} image"
        )
    return x1, y1, x2, y2


def align_face(image: ImageSource, face: Face, size: int = 160, margin: float | None = None) -> np.ndarray:
    """Cut one detected face out of a photo, ready for the encoder.

    Args:
        image: the photo the face was detected in (path, bytes or RGB array).
        face: a dict from :func:`fr_utils.detect.detect_faces`, or its box
            ``[x, y, w, h]``.
        size: side of the square crop returned (the encoder takes 160).
        margin: pixels added around the box in total (half on each side);
            ``None`` (default): :data:`MARGIN_FRACTION` of the box's mean side,
            Sandberg's 32 px on a typical 250-px LFW photo, the same
            proportions at any photo size.
    Returns:
        (size, size, 3) uint8 RGB crop: the rectangle :func:`crop_region`
        resampled by :func:`fr_utils.images.resize_region` with :data:`CROP_RESAMPLE`.
    Raises:
        FaceImageError: the image cannot be read, or the box lies outside it.
    """
    return _cut_box(as_rgb_array(image), face, size, margin)


def _cut_box(img: np.ndarray, face: Face, size: int = 160, margin: float | None = None) -> np.ndarray:
    """:func:`align_face` on an RGB uint8 array already read and checked by ``as_rgb_array``."""
    return resize_region(img, crop_region(img.shape, face, margin), int(size), CROP_RESAMPLE)


def align_faces(image: ImageSource, faces: Sequence[Face], size: int = 160,
                margin: float | None = None) -> np.ndarray:
    """:func:`align_face` for every face of one photo: (n, size, size, 3) uint8."""
    img = as_rgb_array(image)
    crops = [_cut_box(img, face, size, margin) for face in faces]
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)


#: Where :func:`align_similarity` puts the five MTCNN keypoints in a 160 x 160
#: crop: their mean position in :func:`align_face` crops (box + 32 px margin, which
#: :data:`MARGIN_FRACTION` equals on a typical LFW face) of
#: the LFW View 1 training images (``pairsDevTrain.txt``), measured by
#: ``benchmarks/similarity_template.py`` (3,439 faces). So the similarity crop
#: has the scale and centring the encoder was trained on, with the face's roll
#: and aspect ratio normalised.
SIMILARITY_TEMPLATE = {
    "left_eye": (54.01, 65.49),
    "right_eye": (107.80, 64.48),
    "nose": (81.28, 90.03),
    "mouth_left": (57.96, 112.25),
    "mouth_right": (105.92, 111.41),
}
_TEMPLATE_SIZE = 160


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (rotation, uniform scale, translation;
    no reflection) taking the (k, 2) points ``src`` onto ``dst``.

    Returns:
        (2, 3) matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (k, 2) point arrays with k >= 2, got {src.shape} and {dst.shape}")
    ps, qs = src - src.mean(0), dst - dst.mean(0)
    norm = float((ps**2).sum())
    if norm == 0.0:
        raise FaceImageError("the keypoints all coincide: no transform is defined")
    a = float((ps * qs).sum()) / norm
    b = float((ps[:, 0] * qs[:, 1] - ps[:, 1] * qs[:, 0]).sum()) / norm
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (dst.mean(0) - rot @ src.mean(0))[:, None]])


def align_similarity(image: ImageSource, face: Mapping, size: int = 160) -> np.ndarray:
    """Cut one face out with a 5-point similarity transform: rotated so the eyes are
    level, scaled and shifted so its keypoints fall as near as they can to
    :data:`SIMILARITY_TEMPLATE` (scaled to ``size``), bilinear; pixels outside
    the photo are black.

    Args:
        image: the photo (path, bytes or RGB array).
        face: a dict from :func:`fr_utils.detect.detect_faces` with its ``keypoints``.
        size: side of the square crop.
    Returns:
        (size, size, 3) uint8 RGB crop.
    Raises:
        FaceImageError: the image cannot be read, or the face has no five keypoints.
    """
    return _cut_similarity(as_rgb_array(image), face, size)


def _cut_similarity(img: np.ndarray, face: Mapping, size: int = 160) -> np.ndarray:
    """:func:`align_similarity` on an RGB uint8 array already read and checked by ``as_rgb_array``."""
    from PIL import Image

    keypoints = face.get("keypoints") if isinstance(face, Mapping) else None
    names = tuple(SIMILARITY_TEMPLATE)
    if not keypoints or any(k not in keypoints for k in names):
        raise FaceImageError(f"the similarity alignment needs the keypoints {names}, got {keypoints!r}")
    src = np.array([keypoints[k] for k in names], dtype=np.float64)
    dst = np.array([SIMILARITY_TEMPLATE[k] for k in names]) * (size / _TEMPLATE_SIZE)
    m = similarity_transform(src, dst)
    inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]  # crop pixel -> photo pixel
    out = Image.fromarray(img).transform((size, size), Image.AFFINE, data=tuple(inverse.ravel()),
                                         resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)
