"""Embeddings of many image files, cached on disk so a rerun takes seconds.

:func:`embed_files` is what the LFW benchmark, the door database and the
training notebooks call to turn a list of photos into embeddings. Two caches
live under ``<cache>/`` (default ``~/.cache/fr_utils/embeddings``, or
``$FR_CACHE_DIR/embeddings``, or the ``cache_dir`` argument):

* ``detections/<detector>/``: every face MTCNN found in each file (box,
  confidence, five keypoints), so another alignment variant or another model
  never runs the detector again;
* ``<model>-<alignment>-<flip>/``: one embedding row per file and face box
  for one model (the pretrained encoder is named by its weights' sha256 from
  the manifest, any other model by a sha256 of its weights), alignment variant
  and flip. Files without a face get no row (their result is NaN).

A file is identified by its absolute path, size and modification time, so an
edited photo is embedded again. Each cache is a folder of immutable chunk files,
each written to a temporary file and then renamed into place, so an
interrupted run loses at most its last unwritten chunk and never leaves a
half-written file under a real name. A chunk that cannot be read is reported
with a warning, deleted, and its entries computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from fr_utils.images import FaceImageError, as_rgb_array, fixed_image_standardization
from fr_utils.weights import model_identity

#: Alignment variants :func:`embed_files` knows.
ALIGNMENTS = ("box", "similarity")

#: Which face of a photo with several :func:`embed_files` embeds.
FACE_CHOICES = ("largest", "central")

#: Chunks written per this many newly computed files (what an interruption may lose at most).
CHUNK_SIZE = 256

#: A cache folder holding more chunk files than this is merged into one chunk when read.
MAX_CHUNKS = 16

_BATCH = 32


def default_cache_dir() -> Path:
    """``$FR_CACHE_DIR/embeddings``, or ``~/.cache/fr_utils/embeddings``."""
    from fr_utils.weights import cache_dir

    return cache_dir() / "embeddings"


def file_key(path: str | os.PathLike) -> str:
    """``"<absolute path>|<size>|<mtime in ns>"``: what identifies a file's contents in the cache.

    Raises:
        FaceImageError: the file does not exist (the message names it).
    """
    p = Path(path).expanduser().absolute()
    try:
        st = p.stat()
    except OSError as err:
        raise FaceImageError(f"{p}: cannot read the image file ({err.strerror or err})") from err
    if not p.is_file():
        raise FaceImageError(f"{p}: not a file")
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


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


def detector_name() -> str:
    """The detector's cache folder name: ``mtcnn-<package version>-all`` (every face the
    package reports is cached, whatever its confidence; callers filter)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mtcnn-{version('mtcnn')}-all"
    except PackageNotFoundError:
        return "mtcnn-unknown-all"


# --------------------------------------------------------------------------- embedding


def _aligner(alignment: str) -> Callable[[np.ndarray, dict, int], np.ndarray]:
    from fr_utils import align

    if alignment == "box":
        return lambda img, face, size: align.align_face(img, face, size=size, margin=32)
    if alignment == "similarity":
        return lambda img, face, size: align.align_similarity(img, face, size=size)
    raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")


def _detect(img: np.ndarray) -> list[dict]:
    from fr_utils.detect import detect_faces

    return [
        {"box": [int(v) for v in f["box"]], "confidence": float(f["confidence"]),
         "keypoints": {k: [int(p[0]), int(p[1])] for k, p in f["keypoints"].items()}}
        for f in detect_faces(img, min_confidence=0.0)
    ]


def detect_files(
    paths: Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    min_confidence: float = 0.9,
) -> list[list[dict]]:
    """Every face MTCNN finds in each of n photo files, through the detection cache.

    The cache holds every face the ``mtcnn`` package reports (its last stage
    keeps confidences of 0.8 and more); ``min_confidence`` filters them, as in
    :func:`fr_utils.detect.detect_faces` (default 0.9, the same).

    Returns:
        n lists of face dicts (``box``, ``confidence``, ``keypoints``; see
        :func:`fr_utils.detect.detect_faces`), largest first, ``[]`` for no face.
    Raises:
        FaceImageError: a file is missing or unreadable (the message names it).
    """
    keys = [file_key(p) for p in paths]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    store = _DetectionStore(root / "detections" / detector_name())
    todo = {k: Path(p) for k, p in zip(keys, paths) if k not in store.entries}
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="image", desc="detecting")
    try:
        for key, path in todo.items():
            store.add(key, _detect(as_rgb_array(path)))
            if len(store.pending) >= CHUNK_SIZE:
                store.flush()
            if bar is not None:
                bar.update(1)
    finally:
        store.flush()
        if bar is not None:
            bar.close()
    return [[f for f in store.entries[k] if f["confidence"] >= min_confidence] for k in keys]


def choose_face(faces: Sequence[dict], image_shape: Sequence[int], rule: str = "largest") -> dict:
    """The face to embed among a photo's detections (at least one).

    ``"largest"``: the largest box, as :func:`fr_utils.img_to_encoding` does.
    ``"central"``: the box maximising its area minus twice the squared distance
    (in pixels) from its centre to the photo's centre, the rule of Sandberg's
    ``align_dataset_mtcnn.py``, which made the crops the published LFW figure
    was measured on (LFW photos are centred on the person they are labelled with).
    """
    if rule == "largest":
        return faces[0]
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
    face: str = "largest",
    min_confidence: float = 0.9,
) -> np.ndarray:
    """Embed the largest face of each photo file, with an on-disk cache.

    Each photo goes through MTCNN (:func:`fr_utils.detect.detect_faces`); its
    largest face (or see ``face``) is cropped (``alignment="box"``: the box plus a 32-px margin,
    as :func:`fr_utils.encode_images` does, so the rows equal
    ``encode_images(paths, detect=True, margin=32)``; ``"similarity"``: see
    :func:`fr_utils.align.align_similarity`), resized to the model's input
    size, standardised with ``fixed_image_standardization`` and encoded in
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
        face: which face of a photo with several: ``"largest"`` (default) or
            ``"central"`` (see :func:`choose_face`).
        min_confidence: faces MTCNN is less sure of are ignored (0.9 as in
            :func:`fr_utils.detect.detect_faces`; the package reports none below 0.8).
    Returns:
        float32 array of shape (n, d), d = 512 for the pretrained encoder (1024
        with ``flip=True``), one row per path in order; a row is all NaN where
        no face was found.
    Raises:
        FaceImageError: a file is missing or is not a readable image (the
            message names it). Nothing already cached is lost.
        ValueError: unknown ``alignment``.
    """
    align_fn = _aligner(alignment)
    if face not in FACE_CHOICES:
        raise ValueError(f"face must be one of {FACE_CHOICES}, got {face!r}")
    paths = [Path(p) for p in paths]
    if model is None:
        from fr_utils.weights import load_facenet

        model = load_facenet()
    size = int(model.input_shape[1])
    dim = int(model.output_shape[-1]) * (2 if flip else 1)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    detections = detect_files(paths, cache_dir=root, progress=progress, min_confidence=min_confidence)
    # One row per (file, face box): "largest" and "central" share the rows where they agree.
    rows: list[str | None] = []
    todo: dict[str, tuple[Path, dict]] = {}
    for path, key, faces in zip(paths, [file_key(p) for p in paths], detections):
        if not faces:
            rows.append(None)
            continue
        chosen = faces[0] if face == "largest" or len(faces) == 1 else \
            choose_face(faces, as_rgb_array(path).shape, face)
        rows.append(f"{key}|{','.join(str(int(v)) for v in chosen['box'])}")
        todo[rows[-1]] = (path, chosen)
    name = f"{model_identity(model)['weights_sha256'][:16]}-{alignment}-{'flip' if flip else 'noflip'}"
    embeddings = _EmbeddingStore(root / name, dim)
    todo = {k: v for k, v in todo.items() if k not in embeddings.entries}
    if todo:
        _compute(todo, model, align_fn, size, flip, embeddings, progress)
    out = np.full((len(paths), dim), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = embeddings.entries[row]
    return out


def _compute(todo: dict, model, align_fn, size: int, flip: bool, embeddings: _EmbeddingStore,
             progress: bool) -> None:
    """Embed ``todo`` (row key -> (file, face)) in batches, adding the rows to the store chunk by chunk."""
    from fr_utils.encoding import inference_function

    run = inference_function(model)
    items = list(todo.items())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), unit="image", desc="embedding")
    try:
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            crops = [align_fn(as_rgb_array(path), chosen, size) for _, (path, chosen) in batch]
            x = fixed_image_standardization(np.stack(crops))
            out = np.asarray(run(x), dtype=np.float32)
            if flip:
                out = np.concatenate([out, np.asarray(run(np.ascontiguousarray(x[:, :, ::-1])), np.float32)], 1)
            for (key, _), row in zip(batch, out):
                embeddings.add(key, row)
            if len(embeddings.pending) >= CHUNK_SIZE:
                embeddings.flush()
            if bar is not None:
                bar.update(len(batch))
    finally:
        embeddings.flush()
        if bar is not None:
            bar.close()
