"""Embeddings of many image files, cached on disk so a rerun takes seconds.

:func:`embed_files` is what the LFW benchmark, the door database and the
training notebooks call to turn a list of photos into embeddings. Two caches
live under ``<cache>/`` (default ``~/.cache/fr_utils/embeddings``, or
``$FR_CACHE_DIR/embeddings``, or the ``cache_dir`` argument):

* ``detections/<detector>/``: every face MTCNN found in each file (box,
  confidence, five keypoints), so another alignment variant or another model
  never runs the detector again; the folder names the ``mtcnn`` version and
  the detection settings (``fr_utils.detect.MAX_SIDE``, ``MIN_FACE_SIZE``);
* ``<model>-<alignment>-<flip>/``: one embedding row per file and face box
  for one model (the pretrained encoder is named by its weights' sha256 from
  the manifest, any other model by a sha256 of its weights), alignment variant
  (the box crop named with its margin and resampling, ``box0.2991-sub-bilinear``,
  :func:`fr_utils.align.crop_name`, so a new crop never reads an old entry) and flip. Files without a face get no row (their result is NaN).

With ``scale`` other than 1 (``benchmarks/lfw_scales.py``), each photo is
resized by that factor before detection, and both folder names end in
``-x<scale>``.

A file is identified by a sha256 of its bytes (:func:`file_key`), so an edited
photo is embedded again and a copy of the dataset elsewhere, or unpacked again
with new file times, still finds its entries. Each cache is a folder of immutable chunk files,
each written to a temporary file and then renamed into place, so an
interrupted run loses at most its last unwritten chunk and never leaves a
half-written file under a real name. A chunk that cannot be read is reported
with a warning, deleted, and its entries computed again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from fr_utils.encoding import encode_batch, progress_bar
from fr_utils.errors import FaceImageError
from fr_utils.images import load_image
from fr_utils.weights import cache_dir as fr_cache_dir
from fr_utils.weights import load_facenet, model_identity, sha256_file

#: Alignment variants :func:`embed_files` knows.
ALIGNMENTS = ("box", "similarity")

#: Which face of a photo with several :func:`embed_files` embeds.
FACE_CHOICES = ("main", "largest", "central")

#: Chunks written per this many newly computed files (what an interruption may lose at most).
CHUNK_SIZE = 256

#: A cache folder holding more chunk files than this is merged into one chunk when read.
MAX_CHUNKS = 16

_BATCH = 32


def default_cache_dir() -> Path:
    """``$FR_CACHE_DIR/embeddings``, or ``~/.cache/fr_utils/embeddings``."""
    return fr_cache_dir() / "embeddings"


#: (absolute path, size, mtime in ns) -> content key, so one process reads each file once to hash it.
_KEYS: dict[tuple[str, int, int], str] = {}


def file_key(path: str | os.PathLike) -> str:
    """``"sha256:<hex digest of the file's bytes>"``: what identifies a photo in the cache.

    The key is the content, not the path or the modification time, so a dataset
    copied afresh (new times, another folder) still finds its entries, and an
    edited photo is embedded again. Hashing LFW's 13,233 files reads about
    170 MB; each file is hashed once per process.

    Raises:
        FaceImageError: the file does not exist or is not a regular file (the message names it).
    """
    p = Path(path).expanduser().absolute()
    try:
        st = p.stat()
    except OSError as err:
        raise FaceImageError(f"{p}: cannot read the image file ({err.strerror or err})") from err
    if not p.is_file():
        raise FaceImageError(f"{p}: not a file")
    memo = (str(p), st.st_size, st.st_mtime_ns)
    key = _KEYS.get(memo)
    if key is None:
        try:
            key = "sha256:" + sha256_file(p)
        except OSError as err:
            raise FaceImageError(f"{p}: cannot read the image file ({err.strerror or err})") from err
        _KEYS[memo] = key
    return key


# --------------------------------------------------------------------------- chunked stores


class _ChunkStore:
    """A folder of immutable chunk files mapping file keys to values."""

    suffix = ""

    def __init__(self, folder: Path):
        self.folder = folder
        self.entries: dict = {}
        self.pending: dict = {}
        self._load()

    def _load(self) -> None:
        chunks = sorted(self.folder.glob(f"*{self.suffix}")) if self.folder.is_dir() else []
        good = []
        for chunk in chunks:
            try:
                self.entries.update(self._read(chunk))
                good.append(chunk)
            except Exception as err:  # any damage: numpy, zipfile, json and OS errors differ
                warnings.warn(f"ignoring a damaged cache file {chunk} ({type(err).__name__}: {err}); "
                              "its entries will be computed again", RuntimeWarning, stacklevel=3)
                chunk.unlink(missing_ok=True)
        if len(good) > MAX_CHUNKS:
            self.pending = dict(self.entries)
            self.flush()
            for chunk in good:
                chunk.unlink(missing_ok=True)

    def add(self, key: str, value) -> None:
        self.entries[key] = value
        self.pending[key] = value

    def flush(self) -> None:
        """Write the entries added since the last flush as one new chunk (atomically)."""
        if not self.pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{self.suffix}"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=self.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                self._write(f, self.pending)
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.pending = {}

    def _read(self, chunk: Path) -> dict:
        raise NotImplementedError

    def _write(self, f, entries: dict) -> None:
        raise NotImplementedError


class _DetectionStore(_ChunkStore):
    """file key -> list of face dicts (box, confidence, keypoints), largest first."""

    suffix = ".json"

    def _read(self, chunk: Path) -> dict:
        data = json.loads(chunk.read_text())
        faces = data["faces"]
        if not isinstance(faces, dict):
            raise ValueError("'faces' is not a mapping")
        return faces

    def _write(self, f, entries: dict) -> None:
        f.write(json.dumps({"format": 1, "faces": entries}).encode())


class _EmbeddingStore(_ChunkStore):
    """file key -> (d,) float32 embedding (all NaN when the file has no face)."""

    suffix = ".npz"

    def __init__(self, folder: Path, dim: int):
        self.dim = dim
        super().__init__(folder)

    def _read(self, chunk: Path) -> dict:
        with np.load(chunk, allow_pickle=False) as data:
            keys, rows = data["keys"], data["embeddings"]
        if rows.ndim != 2 or rows.shape != (len(keys), self.dim):
            raise ValueError(f"embeddings of shape {rows.shape} for {len(keys)} keys of dimension {self.dim}")
        return dict(zip(keys.tolist(), rows.astype(np.float32)))

    def _write(self, f, entries: dict) -> None:
        np.savez(f, keys=np.array(list(entries), dtype=str), embeddings=np.stack(list(entries.values())))


# --------------------------------------------------------------------------- the model's identity


def _scale_suffix(scale: float) -> str:
    return "" if scale == 1 else f"-x{scale:g}"


def detector_name(scale: float = 1.0) -> str:
    """The detector's cache folder name: ``mtcnn-<package version>-fit<MAX_SIDE>-min<MIN_FACE_SIZE>-all``
    (``side<MAX_SIDE>`` when small photos are not upscaled)
    (every face the package reports is cached, whatever its confidence; callers
    filter), plus ``-x<scale>`` for photos resized by ``scale``."""
    from importlib.metadata import PackageNotFoundError, version

    from fr_utils.detect import MAX_SIDE, MIN_FACE_SIZE, UPSCALE

    try:
        package = f"mtcnn-{version('mtcnn')}"
    except PackageNotFoundError:
        package = "mtcnn-unknown"
    side = f"fit{MAX_SIDE}" if UPSCALE else f"side{MAX_SIDE}"
    return f"{package}-{side}-min{MIN_FACE_SIZE}-all{_scale_suffix(scale)}"


def alignment_name(alignment: str) -> str:
    """The alignment's part of the embedding cache's folder name: the box crop's
    :func:`fr_utils.align.crop_name` (its margin and resampling, ``box0.2991-sub-bilinear``)
    or ``similarity``."""
    from fr_utils.align import crop_name

    if alignment == "box":
        return crop_name()
    if alignment == "similarity":
        return "similarity"
    raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")


def _check_scale(scale: float) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a positive number, got {scale!r}") from None
    if not 0.05 <= value <= 16:
        raise ValueError(f"scale must be between 0.05 and 16, got {scale!r}")
    return value


def scaled(img: np.ndarray, scale: float) -> np.ndarray:
    """An RGB uint8 photo resized by ``scale`` (bicubic, each side rounded), or itself when ``scale`` is 1."""
    if scale == 1:
        return img
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC), dtype=np.uint8)


# --------------------------------------------------------------------------- embedding


def _aligner(alignment: str) -> Callable[[np.ndarray, dict, int], np.ndarray]:
    """(checked RGB image, face, size) -> (size, size, 3) uint8 crop, for an alignment variant."""
    from fr_utils.align import _cut_box, _cut_similarity

    if alignment == "box":
        return lambda img, face, size: _cut_box(img, face, size=size)
    if alignment == "similarity":
        return _cut_similarity
    raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")


#: Photos detected together (one MTCNN pass for those of one size: LFW's all are 250 x 250).
_DETECT_BATCH = 8


def _detect_many(imgs: Sequence[np.ndarray]) -> list[list[dict]]:
    """Every face the detector reports in each checked RGB image, as JSON-ready dicts (the photos
    of one size go through MTCNN together: :func:`fr_utils.detect.detect_faces_many`)."""
    from fr_utils.detect import _faces_in_many

    return [[{"box": [int(v) for v in f["box"]], "confidence": float(f["confidence"]),
              "keypoints": {k: [int(p[0]), int(p[1])] for k, p in f["keypoints"].items()}} for f in faces]
            for faces in _faces_in_many(imgs, min_confidence=0.0)]


def _detect_missing(store, keys: Sequence[str], indices: Sequence[int], read: Callable[[int], np.ndarray]) -> None:
    """Detect the photos ``indices`` whose key ``store`` lacks, :data:`_DETECT_BATCH` at a time."""
    todo = list({keys[i]: i for i in indices if keys[i] not in store.entries}.values())
    for start in range(0, len(todo), _DETECT_BATCH):
        batch = todo[start : start + _DETECT_BATCH]
        for i, faces in zip(batch, _detect_many([read(i) for i in batch])):
            store.add(keys[i], faces)


class _Reader:
    """Reads each file once per call: ``reader(i)`` is the checked RGB image of ``paths[i]``
    (resized by ``scale``)."""

    def __init__(self, paths: Sequence[Path], keys: Sequence[str], scale: float = 1.0):
        self.paths, self.keys, self.images, self.scale = paths, keys, {}, scale

    def __call__(self, i: int) -> np.ndarray:
        key = self.keys[i]
        if key not in self.images:
            self.images[key] = scaled(load_image(self.paths[i]), self.scale)
        return self.images[key]


def _confident(faces: list[dict], min_confidence: float) -> list[dict]:
    return [f for f in faces if f["confidence"] >= min_confidence]


def _root(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def detect_files(
    paths: Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    min_confidence: float | None = None,
    scale: float = 1.0,
) -> list[list[dict]]:
    """Every face MTCNN finds in each of n photo files, through the detection cache.

    The cache holds every face the ``mtcnn`` package reports (its last stage
    keeps confidences of 0.8 and more); ``min_confidence`` filters them, as in
    :func:`fr_utils.detect.detect_faces` (default :data:`fr_utils.detect.MIN_CONFIDENCE`).
    ``scale``: resize each photo by this factor first (boxes are then in the
    resized photo's pixels).

    Returns:
        n lists of face dicts (``box``, ``confidence``, ``keypoints``; see
        :func:`fr_utils.detect.detect_faces`), largest first, ``[]`` for no face.
    Raises:
        FaceImageError: a file is missing or unreadable (the message names it).
    """
    from fr_utils.detect import MIN_CONFIDENCE

    min_confidence = MIN_CONFIDENCE if min_confidence is None else min_confidence
    scale = _check_scale(scale)
    paths = [Path(p) for p in paths]
    keys = [file_key(p) for p in paths]
    store = _DetectionStore(_root(cache_dir) / "detections" / detector_name(scale))
    todo = [i for i, k in enumerate(keys) if k not in store.entries]
    with progress_bar(len(todo), progress, "detecting") as bar:
        try:
            for start in range(0, len(todo), _DETECT_BATCH):
                batch = todo[start : start + _DETECT_BATCH]
                _detect_missing(store, keys, batch, lambda i: scaled(load_image(paths[i]), scale))
                if len(store.pending) >= CHUNK_SIZE:
                    store.flush()
                bar.update(len(batch))
        finally:
            store.flush()
    return [_confident(store.entries[k], min_confidence) for k in keys]


def _needs_shape(faces: Sequence[dict], rule: str) -> bool:
    """Whether choosing among ``faces`` by ``rule`` needs the photo's size (else: the largest face)."""
    if len(faces) <= 1 or rule == "largest":
        return False
    if rule == "main":  # only when another face is about as large as the largest
        from fr_utils.detect import about_as_large

        return len(about_as_large(faces)) > 1
    return True


def choose_face(faces: Sequence[dict], image_shape: Sequence[int], rule: str = "main") -> dict:
    """The face to embed among a photo's detections (at least one).

    ``"main"``: the door's face, as :func:`fr_utils.img_to_encoding` chooses it
    (:func:`fr_utils.detect.choose_main`: the largest box, or the most central of boxes
    about as large). ``"largest"``: the largest box. ``"central"``: the box maximising its area minus twice the squared distance
    (in pixels) from its centre to the photo's centre, the rule of Sandberg's
    ``align_dataset_mtcnn.py``, which made the crops the published LFW figure
    was measured on (LFW photos are centred on the person they are labelled with).
    """
    if rule == "largest":
        return faces[0]
    if rule == "main":
        from fr_utils.detect import choose_main

        return choose_main(faces, image_shape)
    if rule != "central":
        raise ValueError(f"face must be one of {FACE_CHOICES}, got {rule!r}")
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0

    def score(face: dict) -> float:
        x, y, w, h = face["box"]
        return w * h - 2.0 * ((x + w / 2.0 - cx) ** 2 + (y + h / 2.0 - cy) ** 2)

    return max(faces, key=score)


def embed_files(
    paths: Sequence[str | os.PathLike] | Iterable[str | os.PathLike],
    model=None,
    *,
    alignment: str = "box",
    flip: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    face: str = "main",
    min_confidence: float | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Embed the face of each photo file (the door's, as ``img_to_encoding``), with an on-disk cache.

    Each photo goes through MTCNN (:func:`fr_utils.detect.detect_faces`); its
    face (``face="main"``, :func:`fr_utils.detect.choose_main`; or see ``face``) is cropped (``alignment="box"``: the box plus
    its margin, :func:`fr_utils.align.crop_region`, as :func:`fr_utils.encode_images`
    does, so the rows equal ``encode_images(paths)``; ``"similarity"``: see
    :func:`fr_utils.align.align_similarity`), resized to the model's input
    size, standardised as the model expects (:func:`fr_utils.encoding.standardization`) and encoded in
    batches of 32.

    Args:
        paths: n image files (any format :func:`fr_utils.load_image` reads).
        model: the encoder, ``fr_utils.load_facenet()`` when omitted; any
            Keras-like model with ``input_shape``, ``output_shape``,
            ``predict_on_batch`` and ``get_weights``.
        alignment: ``"box"`` or ``"similarity"``.
        flip: also encode the horizontally mirrored crop and concatenate,
            ``[f(x), f(mirror(x))]`` (test-time augmentation).
        cache_dir: the cache's folder; default ``$FR_CACHE_DIR/embeddings`` or
            ``~/.cache/fr_utils/embeddings``.
        progress: show a progress bar over the files not yet cached.
        face: which face of a photo with several: ``"main"`` (default, the door's:
            as :func:`fr_utils.img_to_encoding` chooses), ``"largest"`` or ``"central"``
            (see :func:`choose_face`).
        min_confidence: faces MTCNN is less sure of are ignored (default
            :data:`fr_utils.detect.MIN_CONFIDENCE`, as :func:`fr_utils.detect.detect_faces`;
            the package reports none below 0.8).
        scale: resize each photo by this factor (bicubic) before detecting and
            cropping: how ``benchmarks/lfw_scales.py`` measures the pipeline on
            larger and smaller photos. Cached apart from the photos as they are.
    Returns:
        float32 array of shape (n, d), d = 128 for the default encoder (256
        with ``flip=True``), one row per path in order; a row is all NaN where
        no face was found.
    Raises:
        FaceImageError: a file is missing or is not a readable image (the
            message names it). Nothing already cached is lost.
        ValueError: unknown ``alignment``.
    """
    from fr_utils.detect import MIN_CONFIDENCE

    align_fn = _aligner(alignment)
    min_confidence = MIN_CONFIDENCE if min_confidence is None else min_confidence
    scale = _check_scale(scale)
    if face not in FACE_CHOICES:
        raise ValueError(f"face must be one of {FACE_CHOICES}, got {face!r}")
    paths = [Path(p) for p in paths]
    model = load_facenet() if model is None else model
    size = int(model.input_shape[1])
    dim = int(model.output_shape[-1]) * (2 if flip else 1)
    root = _root(cache_dir)
    keys = [file_key(p) for p in paths]
    detections = _DetectionStore(root / "detections" / detector_name(scale))
    name = (f"{model_identity(model)['weights_sha256'][:16]}-{alignment_name(alignment)}-"
            f"{'flip' if flip else 'noflip'}{_scale_suffix(scale)}")
    embeddings = _EmbeddingStore(root / name, dim)

    # One row per (file, face box): the rules share the rows where they agree.
    rows: list[str | None] = [None] * len(paths)

    def row_key(i: int, chosen: dict) -> str:
        return f"{keys[i]}|{','.join(str(int(v)) for v in chosen['box'])}"

    work = []  # files to read: not yet detected, or not yet embedded
    for i, key in enumerate(keys):
        faces = _confident(detections.entries[key], min_confidence) if key in detections.entries else None
        if faces is not None and not _needs_shape(faces, face):
            rows[i] = row_key(i, faces[0]) if faces else None
            if rows[i] is None or rows[i] in embeddings.entries:
                continue
        work.append(i)

    with progress_bar(len(work), progress, "embedding") as bar:
        try:
            for start in range(0, len(work), CHUNK_SIZE):
                chunk = work[start : start + CHUNK_SIZE]
                read = _Reader(paths, keys, scale)  # each file of the chunk read and checked once
                todo: dict[str, tuple[int, dict]] = {}
                _detect_missing(detections, keys, chunk, read)
                for i in chunk:
                    faces = _confident(detections.entries[keys[i]], min_confidence)
                    if not faces:
                        continue
                    chosen = choose_face(faces, read(i).shape, face) if _needs_shape(faces, face) else faces[0]
                    rows[i] = row_key(i, chosen)
                    if rows[i] not in embeddings.entries:
                        todo.setdefault(rows[i], (i, chosen))
                if todo:
                    encoded = encode_batch(list(todo.values()), model, flip=flip, batch_size=_BATCH,
                                           crop=lambda item: align_fn(read(item[0]), item[1], size),
                                           progress=False)
                    for key, row in zip(todo, encoded.embeddings):
                        embeddings.add(key, row)
                detections.flush()
                embeddings.flush()
                bar.update(len(chunk))
        finally:
            detections.flush()
            embeddings.flush()
    out = np.full((len(paths), dim), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = embeddings.entries[row]
    return out
