"""Finding faces in a photo with MTCNN (Zhang et al., 2016).

:func:`detect_faces` wraps the ``mtcnn`` package, which ships its own pretrained
weights (P-Net, R-Net, O-Net), so nothing is downloaded. The detector is built
once per process, on first use, and shared.

Each face comes back as a dict, in pixel coordinates of the image given::

    {'box': [x, y, w, h],                 # ints: top-left corner, width, height
     'confidence': 0.998,                 # O-Net's face probability
     'keypoints': {'left_eye': (x, y),    # the eye on the image's left
                   'right_eye': (x, y),
                   'nose': (x, y),
                   'mouth_left': (x, y),
                   'mouth_right': (x, y)}}

sorted by box area, largest first. Every photo is analysed resized so that
its longest side is :data:`MAX_SIDE` (320 px; larger photos downscaled,
smaller ones upscaled), so a face is found alike in a photo of any size, and
the results are mapped back to the original's coordinates. The defaults
(:data:`MAX_SIDE`, :data:`MIN_FACE_SIZE`, :data:`MIN_CONFIDENCE`) were chosen by
measurement on LFW at four photo sizes (``docs/lfw.md``, "Scale-invariant crops").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

from fr_utils.images import ImageSource, as_rgb_array

KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Images whose shorter side is below this are too small for MTCNN's first
#: stage (P-Net looks at 12 x 12 windows); they hold no detectable face.
MIN_SIDE = 12

#: Photos are resized so that their longest side is this before detection
#: (larger ones downscaled; smaller ones upscaled, see :data:`UPSCALE`). MTCNN's
#: time grows with the pixels analysed; above this size it finds no more faces
#: in enlarged LFW photos, and LFW's 250-px photos analysed at 320 px score
#: better than at 250 (``docs/lfw.md``, "Scale-invariant crops").
MAX_SIDE = 320

#: Upscale photos smaller than :data:`MAX_SIDE` for detection (measured on LFW:
#: 250-px photos analysed at 320 px, AUC 0.9904 against 0.9834 as they are).
UPSCALE = True

#: The smallest face looked for, in pixels of the image as analysed (after
#: downscaling to :data:`MAX_SIDE`): 20 px of 640, 3% of the longest side. The
#: ``mtcnn`` package (1.0.0) sizes its image pyramid as if this were 20 and finds
#: no face at all with larger values (measured: ``docs/lfw.md``), so faces
#: smaller relative to the photo are left out by analysing it smaller, not by this.
MIN_FACE_SIZE = 20

#: Faces whose O-Net confidence is below this are dropped. Chosen by measurement
#: (issue #16 item 2; docs/lfw.md, "The default encoder on all 10 folds"): LFW
#: ``pairs.txt``, 10 folds, the door's plain pipeline with the default 128-number
#: encoder (largest face, sub-pixel proportional crop, L2, no flip): 0.9865 +- 0.0037
#: at 0.9 (7 of 7,701 images without a face) against 0.9863 +- 0.0034 at 0.8 (a face
#: in every image, but in some the largest is a lower-confidence face that is not
#: the labelled person's). 0.8 gains nothing, so the stricter 0.9 stays.
MIN_CONFIDENCE = 0.9

#: Run MTCNN's three networks as TensorFlow graphs (``tf.function``, one trace per network)
#: instead of the ``mtcnn`` package's eager Keras calls: P-Net runs once per pyramid level and
#: an eager call costs ~10x its arithmetic on a small image (measured: ``docs/door.md``,
#: "Detection"). Same weights and operations; boxes measured equal to the eager ones there.
GRAPH_STAGES = True

_detector = None
_lock = threading.Lock()


def _as_graphs(detector) -> None:
    """Replace each stage's Keras network by a ``tf.function`` of it (any batch; P-Net any size)."""
    import tensorflow as tf

    sides = {"PNet": None, "RNet": 24, "ONet": 48}  # P-Net is fully convolutional; R-Net and O-Net take fixed crops
    for stage in detector.stages:
        model = getattr(stage, "_model", None)
        if type(model).__name__ not in sides:  # already a graph, or a network this code does not know
            continue
        side = sides[type(model).__name__]
        spec = tf.TensorSpec((None, side, side, 3), tf.float32)
        stage._model = tf.function(model, input_signature=[spec])


def get_detector():
    """The process-wide ``mtcnn.MTCNN`` detector, built on the first call."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                import os

                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                from mtcnn import MTCNN

                detector = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
                if GRAPH_STAGES:
                    _as_graphs(detector)
                _detector = detector
    return _detector


def _downscaled(img: np.ndarray, max_side: int | None, upscale: bool = UPSCALE) -> tuple[np.ndarray, float]:
    """(image to analyse, its scale relative to the original): resized so that its longest
    side is ``max_side`` (only when larger, unless ``upscale``)."""
    h, w = img.shape[:2]
    if not max_side or max(h, w) == max_side or (max(h, w) < max_side and not upscale):
        return img, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR), dtype=np.uint8)
    # The scale actually applied along each axis differs by rounding; take the mean.
    return small, (size[0] / w + size[1] / h) / 2.0


def _point(p, scale: float, w: int, h: int) -> tuple[int, int]:
    x = min(max(float(p[0]) / scale, 0.0), w - 1.0)
    y = min(max(float(p[1]) / scale, 0.0), h - 1.0)
    return int(round(x)), int(round(y))


def _face(raw: dict, scale: float, w: int, h: int) -> dict | None:
    x, y, bw, bh = (float(v) for v in raw["box"])
    x1, y1 = max(0.0, x / scale), max(0.0, y / scale)
    x2, y2 = min(float(w), (x + bw) / scale), min(float(h), (y + bh) / scale)
    x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
    if x2 <= x1 or y2 <= y1:
        return None
    keypoints = raw.get("keypoints") or {}
    return {
        "box": [x1, y1, x2 - x1, y2 - y1],
        "confidence": float(raw["confidence"]),
        "keypoints": {k: _point(keypoints[k], scale, w, h) for k in KEYPOINTS if k in keypoints},
    }


def detect_faces(
    image: ImageSource,
    *,
    min_confidence: float = MIN_CONFIDENCE,
    max_side: int | None = MAX_SIDE,
    min_face_size: int = MIN_FACE_SIZE,
    upscale: bool = UPSCALE,
) -> list[dict]:
    """Find the faces in a photo.

    Args:
        image: a path, bytes, Pillow image or RGB array (anything
            :func:`fr_utils.images.as_rgb_array` takes).
        min_confidence: faces whose O-Net confidence is below this are dropped.
        max_side: photos are resized so that their longest side is this for
            detection (larger ones downscaled: faster, and MTCNN needs no more;
            smaller ones upscaled when ``upscale``); ``None`` analyses the photo
            as it is. Boxes and keypoints are always in the original's pixels.
        min_face_size: smallest face looked for, in pixels of the image as
            analysed (after resizing).
        upscale: also enlarge photos smaller than ``max_side`` (default :data:`UPSCALE`).
    Returns:
        A list of dicts ``{'box': [x, y, w, h], 'confidence': float, 'keypoints':
        {'left_eye', 'right_eye', 'nose', 'mouth_left', 'mouth_right'}}``, largest
        box first; ``[]`` when there is no face. Boxes are clipped to the image.
    Raises:
        FaceImageError: the image cannot be read.
    """
    return _faces_in(as_rgb_array(image), min_confidence, max_side, min_face_size, upscale)


def _run_stages(detector, images: list[np.ndarray], min_face_size: int) -> list[list[dict]]:
    """``detector.detect_faces(images)`` (the ``mtcnn`` package's steps, its own functions), with the
    normalised batch made a TensorFlow tensor once: the package passes a NumPy array to each pyramid
    level's resize and to R-Net's and O-Net's crops, converting (copying) it each time, about 15% of a
    detection (measured: docs/door.md). Same results, one list of faces per image."""
    import tensorflow as tf
    from mtcnn.utils.bboxes import fix_bboxes_offsets, limit_bboxes, to_json
    from mtcnn.utils.images import standarize_batch

    with tf.device(detector.device):
        normalized, shapes, padding = standarize_batch(images, normalize=True, justification="center")
        normalized = tf.constant(normalized)
        boxes = None
        try:
            for stage in detector.stages:
                boxes = stage(bboxes_batch=boxes, images_normalized=normalized, images_oshapes=shapes,
                              min_face_size=min_face_size)
        except tf.errors.InvalidArgumentError:  # what the package does when no stage keeps a box
            return [[] for _ in images]
        boxes = limit_bboxes(fix_bboxes_offsets(boxes, padding), images_shapes=shapes, limit_landmarks=False)
        found = to_json(boxes, images_count=len(images), output_as_width_height=True, input_as_width_height=False)
    return [list(faces) for faces in found]


def _faces_in(img: np.ndarray, min_confidence: float = MIN_CONFIDENCE, max_side: int | None = MAX_SIDE,
              min_face_size: int = MIN_FACE_SIZE, upscale: bool = UPSCALE) -> list[dict]:
    """:func:`detect_faces` on an RGB uint8 array already read and checked by ``as_rgb_array``."""
    return _faces_in_many([img], min_confidence, max_side, min_face_size, upscale)[0]


class Prepared(NamedTuple):
    """A photo resized for detection ahead of time (:func:`prepare`; ``facedoor serve`` does it in
    each request's thread, beside the worker that runs MTCNN). :func:`_faces_in_many` takes it in
    place of the photo when its settings are the call's."""

    image: np.ndarray  # the photo, RGB uint8 (H, W, 3)
    small: np.ndarray  # the photo as analysed
    scale: float  # small's size / the photo's
    max_side: int | None
    upscale: bool


def prepare(img: np.ndarray, max_side: int | None = MAX_SIDE, upscale: bool = UPSCALE) -> Prepared:
    """A checked RGB photo with its copy resized for detection (:data:`MAX_SIDE`)."""
    small, scale = (img, 1.0) if min(img.shape[:2]) < MIN_SIDE else _downscaled(img, max_side, upscale)
    return Prepared(img, small, scale, max_side, upscale)


def _faces_in_many(imgs: Sequence[np.ndarray | Prepared], min_confidence: float = MIN_CONFIDENCE,
                   max_side: int | None = MAX_SIDE, min_face_size: int = MIN_FACE_SIZE,
                   upscale: bool = UPSCALE) -> list[list[dict]]:
    """:func:`detect_faces_many` on RGB uint8 arrays already read and checked by ``as_rgb_array``
    (or :class:`Prepared` ones)."""
    found: list[list[dict]] = [[] for _ in imgs]
    groups: dict[tuple[int, ...], list[tuple[int, np.ndarray, float]]] = {}
    for i, img in enumerate(imgs):
        if isinstance(img, Prepared) and (img.max_side, img.upscale) == (max_side, upscale):
            img, small, scale = img.image, img.small, img.scale
        else:
            img = img.image if isinstance(img, Prepared) else img
            if min(img.shape[:2]) < MIN_SIDE:
                continue
            small, scale = _downscaled(img, max_side, upscale)
        if min(img.shape[:2]) < MIN_SIDE or min(small.shape[:2]) < MIN_SIDE:
            continue
        groups.setdefault(small.shape, []).append((i, small, scale))
    if not groups:
        return found
    detector = get_detector()
    for group in groups.values():
        smalls = [small for _, small, _ in group]
        with _lock:  # one detection at a time: MTCNN is not documented as thread-safe
            raw = _run_stages(detector, smalls, max(int(min_face_size), 1))
        for (i, _, scale), faces_raw in zip(group, raw):
            h, w = (imgs[i].image if isinstance(imgs[i], Prepared) else imgs[i]).shape[:2]
            faces = []
            for r in faces_raw or []:
                if float(r["confidence"]) < min_confidence:
                    continue
                face = _face(r, scale, w, h)
                if face is not None:
                    faces.append(face)
            faces.sort(key=lambda f: (-f["box"][2] * f["box"][3], -f["confidence"]))
            found[i] = faces
    return found


def detect_faces_many(
    images: Sequence[ImageSource],
    *,
    min_confidence: float = MIN_CONFIDENCE,
    max_side: int | None = MAX_SIDE,
    min_face_size: int = MIN_FACE_SIZE,
    upscale: bool = UPSCALE,
) -> list[list[dict]]:
    """Find the faces in several photos at once: :func:`detect_faces` of each, faster.

    Photos analysed at the same size (after resizing to ``max_side``: a camera's frames, or
    any photos of one shape) go through MTCNN together, one network call per pyramid level
    for all of them instead of one per photo (``facedoor serve`` detects the photos of the
    requests waiting together this way). The faces are those :func:`detect_faces` finds
    in each photo alone (boxes equal; confidences within rounding, ``tests/test_detect.py``).

    Args:
        images: N photos (anything :func:`fr_utils.images.as_rgb_array` takes).
        min_confidence, max_side, min_face_size, upscale: as in :func:`detect_faces`.
    Returns:
        N lists, the i-th :func:`detect_faces`'s answer for ``images[i]``.
    Raises:
        FaceImageError: a photo cannot be read (the message names it).
    """
    imgs = [as_rgb_array(image) for image in images]
    return _faces_in_many(imgs, min_confidence, max_side, min_face_size, upscale)


def largest_face(image: ImageSource, **kwargs) -> dict | None:
    """The largest face :func:`detect_faces` finds, or ``None`` when there is none."""
    faces = detect_faces(image, **kwargs)
    return faces[0] if faces else None


#: The door's face in a photo with several (:func:`choose_main`): the faces at least this share of
#: the largest one's area count as "as large"; of those, the one nearest the photo's centre is taken.
#: Measured on LFW ``pairs.txt`` (issue #16 item 2; docs/lfw.md, "Which face"): any share from 0.1
#: to 0.7 gives the same accuracy (0.9912 against 0.9865 for the largest face alone); 0.9 and
#: above fall back towards the largest face. 0.5: two people at about the same distance from the camera.
MAIN_FACE_SHARE = 0.5


def choose_main(faces: Sequence[dict], image_shape: Sequence[int], share: float = MAIN_FACE_SHARE) -> dict | None:
    """The face the door takes among a photo's faces (as :func:`detect_faces` returns them, largest first).

    The largest face, unless other faces are about as large (at least ``share`` of its area):
    then, of those, the one whose box centre is nearest the photo's centre. A camera at a door is
    aimed at the person in front of it; someone beside them at the same distance is at the edge of
    the picture, and someone far behind is much smaller. With one face, or one face far larger than
    the others, this is the largest face.

    Args:
        faces: face dicts (``box`` [x, y, w, h] in pixels), largest first; may be empty.
        image_shape: the photo's (height, width, ...).
        share: what counts as about as large, a fraction of the largest face's area in (0, 1].
    Returns:
        One of ``faces``, or ``None`` when there is none.
    """
    if not faces:
        return None
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0

    def off_centre(face: dict) -> float:
        x, y, w, h = face["box"]
        return (x + w / 2.0 - cx) ** 2 + (y + h / 2.0 - cy) ** 2

    # min keeps the first (the larger) of equally central faces
    return min(about_as_large(faces, share), key=off_centre)


def about_as_large(faces: Sequence[dict], share: float = MAIN_FACE_SHARE) -> list[dict]:
    """The faces (largest first, as :func:`detect_faces` returns them) whose area is at least
    ``share`` of the largest one's: those :func:`choose_main` chooses among (the largest included)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    if not faces:
        return []
    area = faces[0]["box"][2] * faces[0]["box"][3]
    return [f for f in faces if f["box"][2] * f["box"][3] >= share * area]


def main_face(image: ImageSource, **kwargs) -> dict | None:
    """The face the door takes in a photo (:func:`choose_main` of :func:`detect_faces`), or ``None``."""
    img = as_rgb_array(image)
    return choose_main(_faces_in(img, **kwargs), img.shape)
