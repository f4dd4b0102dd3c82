"""OpenFace nn4.small2 taught by the 128-number FaceNet: distillation on LFW (issue #15 item 3).

The student, :func:`fr_utils.models.openface_nn4_small2` (96 x 96 RGB in [0, 1] -> 128
unit-length numbers), learns to reproduce the embeddings of the teacher,
``load_facenet("facenet_20170512-110547")`` (160 x 160, prewhitened, 128 numbers), on the
same face crop the door pipeline cuts (MTCNN box plus margin). Command line::

    python -m fr_utils.distill prepare  [--workdir DIR] [--held-out 3,5,8] [--lfw-dir D] [--pairs F]
    python -m fr_utils.distill train    [--workdir DIR] [--epochs N] [--batch-size 64] [--lr 1e-3] [--seed 0]
    python -m fr_utils.distill evaluate [--workdir DIR]
    python -m fr_utils.distill export   [--workdir DIR] [--out DIR]
    python -m fr_utils.distill status   [--workdir DIR]

``prepare`` splits LFW by the folds of View 2 (``pairs.txt``; its 10 folds share no
person): the people of the held-out folds are kept for evaluation only, and every
image of every other person (in the other folds' pairs, or in no pair) is for
training. For each training image it stores, in ``<workdir>/prepared/``, a crop with
context around the door crop (for the augmentation) and the teacher's unit embeddings
of the door crop and of its mirror image; for each held-out image, the door crop at
96 x 96. It works in chunks, so an interrupted ``prepare`` resumes where it stopped.

``train`` is resumable: ``<workdir>/state.json`` names the last checkpoint (model
weights, optimizer state, epoch, step within the epoch, seed, losses and held-out
accuracy of each epoch); the batch order and every augmentation are functions of
(seed, epoch, step), so a resumed run draws what an uninterrupted one would have.
Loss: the mean squared distance between the student's and the teacher's unit
vectors (= 2 - 2 cos). Augmentation: a random scale (+-10 %) and shift (+-5 % of the
side) of the crop window, a mirror image half of the time (whose target is the
teacher's embedding of the mirrored crop), brightness and contrast.

``evaluate`` reports the LFW accuracy on the held-out folds only (each held-out fold
tested with the threshold that is best on the other held-out folds), the teacher's on
the same pairs and crops, and images per second of both at batch 1 and 32. ``export``
writes ``<name>.weights.h5`` and ``<name>.manifest.json`` (command, split, seed,
epochs, sha256, figures); :func:`load_student` loads them, checking the sha256.
docs/distill.md tells the method and the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fr_utils.errors import DistillError, FrUtilsError, report
from fr_utils.weights import cache_dir as fr_cache_dir, sha256_file

#: The teacher: the 128-number FaceNet (fr_utils.weights.MODELS).
TEACHER = "facenet_20170512-110547"
#: The student's input side and embedding length (OpenFace's).
STUDENT_SIZE, EMBEDDING = 96, 128
#: The student's pixel normalisation: RGB divided by 255 (values in [0, 1]), as OpenFace's.
PREPROCESSING = "rgb/255"
#: The door crop: fr_utils.align.crop_region's margin; None: its default, proportional to the box
#: (fr_utils.align.MARGIN_FRACTION, 32 px on a typical LFW face), as the door and embed_files crop.
MARGIN = None
#: Which face of an LFW photo (the labelled person is the central one) and the least confidence.
FACE_RULE, MIN_CONFIDENCE = "central", 0.8
#: The stored training crop covers CONTEXT times the door crop's width and height, at CONTEXT_SIZE pixels.
CONTEXT, CONTEXT_SIZE = 1.25, 120
#: Augmentation: scale of the crop window 1 +- SCALE_JITTER, shift +- SHIFT_JITTER of its side,
#: brightness +- BRIGHTNESS (in [0, 1] units), contrast 1 +- CONTRAST around each image's mean.
SCALE_JITTER, SHIFT_JITTER, BRIGHTNESS, CONTRAST = 0.10, 0.05, 0.10, 0.20
#: The View 2 folds (1-based, in pairs.txt order) kept for evaluation; see docs/distill.md.
HELD_OUT = (3, 5, 8)
#: Training images per prepared chunk.
CHUNK = 512
#: The exported model's name: <name>.weights.h5 and <name>.manifest.json.
EXPORT_NAME = "openface_nn4_small2_distilled"


def default_workdir() -> Path:
    """``$FR_CACHE_DIR/distill`` or ``~/.cache/fr_utils/distill``."""
    return fr_cache_dir() / "distill"


def _sha256_text(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DistillError(f"{path}: no {what} here") from None
    except (OSError, ValueError) as err:
        raise DistillError(f"{path}: cannot read the {what} ({err})") from err
    if not isinstance(obj, dict):
        raise DistillError(f"{path}: the {what} is not a JSON object")
    return obj


# --------------------------------------------------------------------------- the split


@dataclass
class Split:
    """Identity-disjoint training and evaluation sets of LFW.

    Attributes:
        lfw_dir: the LFW folder. held_out: the evaluation folds (1-based).
        train_files: training images, relative to ``lfw_dir`` (``Person/Person_0001.jpg``), sorted.
        eval_files: the held-out pairs' images, relative, sorted.
        pair_a, pair_b: each held-out pair's images (indices into ``eval_files``);
        same: whether it is one person; fold: its fold (1-based).
        held_out_people: the people of the held-out folds (none of them is in ``train_files``).
    """

    lfw_dir: Path
    held_out: tuple[int, ...]
    train_files: list[str]
    eval_files: list[str]
    pair_a: np.ndarray
    pair_b: np.ndarray
    same: np.ndarray
    fold: np.ndarray
    held_out_people: set[str] = field(default_factory=set)

    def summary(self) -> dict:
        """What the run's state and the manifest record of the split."""
        return {
            "lfw_dir": str(self.lfw_dir), "held_out_folds": list(self.held_out),
            "train_images": len(self.train_files),
            "train_people": len({f.split("/")[0] for f in self.train_files}),
            "train_files_sha256": _sha256_text(self.train_files),
            "eval_images": len(self.eval_files), "eval_pairs": int(len(self.same)),
            "eval_people": len(self.held_out_people),
            "eval_files_sha256": _sha256_text(self.eval_files),
        }


def _parse_folds(text: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(text, str):
        try:
            folds = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise DistillError(f"--held-out must be fold numbers separated by commas, got {text!r}") from None
    else:
        folds = tuple(int(v) for v in text)
    return tuple(sorted(set(folds)))


def make_split(lfw_dir: str | os.PathLike, pairs_file: str | os.PathLike,
               held_out: Sequence[int] | str = HELD_OUT, *, limit: int | None = None) -> Split:
    """Split LFW by View 2's folds: the held-out folds' people for evaluation, everyone else for training.

    Args:
        lfw_dir: the LFW folder (``<name>/<name>_<4 digits>.jpg``).
        pairs_file: View 2's ``pairs.txt`` (10 folds that share no person).
        held_out: the evaluation folds, 1-based (a sequence, or text such as ``"3,5,8"``).
        limit: keep only the first ``limit`` training images and the first ``limit``
            same- and different-person pairs of each held-out fold (quick trials and tests).
    Raises:
        DistillError: a fold number out of range, none held out, or every fold held out.
        PairsFileError: the pairs file or an image it names is missing or malformed.
    """
    from fr_utils.evaluate import read_pairs

    lfw_dir = Path(lfw_dir).expanduser().absolute()
    pairs = read_pairs(pairs_file, lfw_dir)
    n_folds = max(p.fold for p in pairs) + 1
    held = _parse_folds(held_out)
    if not held or any(f < 1 or f > n_folds for f in held):
        raise DistillError(f"held-out folds {list(held)}: each must be in 1..{n_folds} ({pairs_file} has "
                           f"{n_folds} folds), and at least one is needed")
    if len(held) == n_folds:
        raise DistillError(f"held-out folds {list(held)}: every fold is held out, nothing is left to train on")
    evaluation = [p for p in pairs if p.fold + 1 in held]
    if limit is not None:
        kept = []
        for f in held:
            for same in (True, False):
                kept += [p for p in evaluation if p.fold + 1 == f and p.same == same][:limit]
        evaluation = kept
    # every person of a held-out fold, also those whose pairs `limit` dropped
    people = {q.parent.name for p in pairs if p.fold + 1 in held for q in (p.path_a, p.path_b)}
    train = sorted(f"{d.name}/{f.name}" for d in lfw_dir.iterdir() if d.is_dir() and d.name not in people
                   for f in d.glob("*.jpg"))
    if limit is not None:
        train = train[:limit]
    if not train:
        raise DistillError(f"{lfw_dir}: no training image outside the held-out folds' people")
    rel = lambda p: f"{p.parent.name}/{p.name}"  # noqa: E731
    eval_files = sorted({rel(q) for p in evaluation for q in (p.path_a, p.path_b)})
    index = {f: i for i, f in enumerate(eval_files)}
    return Split(
        lfw_dir=lfw_dir, held_out=held, train_files=train, eval_files=eval_files,
        pair_a=np.array([index[rel(p.path_a)] for p in evaluation], dtype=np.int64),
        pair_b=np.array([index[rel(p.path_b)] for p in evaluation], dtype=np.int64),
        same=np.array([p.same for p in evaluation], dtype=bool),
        fold=np.array([p.fold + 1 for p in evaluation], dtype=np.int64),
        held_out_people=people,
    )


# --------------------------------------------------------------------------- crops


def _face(path: Path, detections: list[dict], img: np.ndarray) -> dict | None:
    from fr_utils.embedding_cache import choose_face

    return choose_face(detections, img.shape, FACE_RULE) if detections else None


def door_crop(img: np.ndarray, face: dict, size: int = STUDENT_SIZE) -> np.ndarray:
    """The door pipeline's crop (box + :data:`MARGIN`, :func:`fr_utils.align.crop_region`) at ``size``:
    the very pixels the door's encoders cut (``fr_utils.align._cut_box``)."""
    from fr_utils.align import _cut_box

    return _cut_box(img, face, size, MARGIN)


def context_crop(img: np.ndarray, face: dict) -> tuple[np.ndarray, np.ndarray]:
    """The door crop's region (:func:`fr_utils.align.crop_region`, to a fraction of a pixel)
    widened :data:`CONTEXT` times (black outside the photo), at :data:`CONTEXT_SIZE`, and
    where the door crop lies in it: (top, left, bottom, right) edges in that crop's pixels
    (pixel i spans [i, i + 1))."""
    from fr_utils.align import CROP_RESAMPLE, crop_region
    from fr_utils.images import resize_region

    x1, y1, x2, y2 = crop_region(img.shape, face, MARGIN)
    ex, ey = (CONTEXT - 1) / 2 * (x2 - x1), (CONTEXT - 1) / 2 * (y2 - y1)
    pad = int(math.ceil(max(ex, ey))) + 1  # black around the photo, so the widened region lies inside
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
    region = (x1 - ex + pad, y1 - ey + pad, x2 + ex + pad, y2 + ey + pad)
    out = resize_region(padded, region, CONTEXT_SIZE, CROP_RESAMPLE)
    edge = (CONTEXT - 1) / 2 / CONTEXT * CONTEXT_SIZE
    inner = np.array([edge, edge, CONTEXT_SIZE - edge, CONTEXT_SIZE - edge], dtype=np.float32)
    return out, inner


# --------------------------------------------------------------------------- prepare


def _prepared(workdir: Path) -> Path:
    return workdir / "prepared"


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _check_float32_teacher() -> None:
    """The targets and the teacher's figures are those of the float32 teacher."""
    from fr_utils.encoding import PRECISION_ENV, encoder_precision

    if encoder_precision() != "float32":
        raise DistillError(f"${PRECISION_ENV} is {encoder_precision()!r}: the teacher's targets and figures are "
                           f"the float32 encoder's; unset {PRECISION_ENV}")


def prepare(workdir: str | os.PathLike, lfw_dir: str | os.PathLike, pairs_file: str | os.PathLike,
            held_out: Sequence[int] | str = HELD_OUT, *, limit: int | None = None, teacher=None,
            progress: bool = True) -> dict:
    """Write the split, the held-out crops and the teacher's targets into ``workdir/prepared``.

    Resumes an interrupted run (chunks already written are kept). Returns the split summary
    with ``train_faces``/``train_without_face``, ``eval_without_face`` and ``teacher_seconds``.
    Raises:
        DistillError: the workdir holds another split (another --held-out, LFW or limit).
    """
    from fr_utils.embedding_cache import detect_files
    from fr_utils.encoding import encode_batch, progress_bar
    from fr_utils.images import load_image

    _check_float32_teacher()
    workdir = Path(workdir).expanduser()
    split = make_split(lfw_dir, pairs_file, held_out, limit=limit)
    summary = split.summary()
    out = _prepared(workdir)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "split.json"
    if meta_path.exists():
        old = _read_json(meta_path, "split")
        keys = ("held_out_folds", "train_files_sha256", "eval_files_sha256")
        if any(old["split"].get(k) != summary[k] for k in keys):
            raise DistillError(
                f"{workdir} holds another split (held-out folds {old['split'].get('held_out_folds')}, "
                f"{old['split'].get('train_images')} training images); choose another --workdir")
        if old.get("complete"):
            return old["split"]
    _write_json(meta_path, {"split": summary, "complete": False, "train_files": split.train_files,
                            "eval_files": split.eval_files, "margin": MARGIN, "face": FACE_RULE,
                            "min_confidence": MIN_CONFIDENCE, "context": CONTEXT, "context_size": CONTEXT_SIZE,
                            "teacher": TEACHER})
    lfw = split.lfw_dir

    # training: context crops and the teacher's targets (the slow part), chunk by chunk
    n_chunks = math.ceil(len(split.train_files) / CHUNK)
    todo = [c for c in range(n_chunks) if not (out / f"train-{c:04d}.npz").exists()]
    seconds = 0.0
    if todo:
        if teacher is None:
            from fr_utils.weights import load_facenet

            teacher = load_facenet(name=TEACHER)
        with progress_bar(len(todo) * CHUNK, progress, "teacher") as bar:
            for c in todo:
                start = time.perf_counter()
                names = split.train_files[c * CHUNK:(c + 1) * CHUNK]
                dets = detect_files([lfw / f for f in names], min_confidence=MIN_CONFIDENCE, progress=False)
                detected = time.perf_counter()
                index, ctx, inner, door = [], [], [], []
                for i, (f, faces) in enumerate(zip(names, dets)):
                    if not faces:
                        continue
                    img = load_image(lfw / f)
                    face = _face(lfw / f, faces, img)
                    a, b = context_crop(img, face)
                    index.append(c * CHUNK + i)
                    ctx.append(a)
                    inner.append(b)
                    door.append(door_crop(img, face, int(teacher.input_shape[1])))
                if door:
                    emb = encode_batch(door, teacher, crop=lambda a: a, flip=True, progress=False).embeddings
                    targets = np.stack([_unit(emb[:, :EMBEDDING]), _unit(emb[:, EMBEDDING:])], axis=1)
                else:
                    targets = np.zeros((0, 2, EMBEDDING), np.float32)
                tmp = out / f"train-{c:04d}.tmp.npz"
                np.savez(tmp, index=np.array(index, np.int64), n=len(names),
                         ctx=np.array(ctx, np.uint8).reshape(-1, CONTEXT_SIZE, CONTEXT_SIZE, 3),
                         inner=np.array(inner, np.float32).reshape(-1, 4), targets=targets)
                os.replace(tmp, out / f"train-{c:04d}.npz")
                seconds += time.perf_counter() - start
                bar.update(len(names))
                if progress:
                    print(f"\nchunk {c + 1}/{n_chunks}: {len(names)} images, {len(index)} faces; detection "
                          f"{detected - start:.0f} s, crops and teacher {time.perf_counter() - detected:.0f} s "
                          f"({time.strftime('%H:%M:%S')})", flush=True)
    # held-out: the door crop at 96 x 96 and the face's box (no teacher needed here)
    eval_path = out / "eval.npz"
    if not eval_path.exists():
        dets = detect_files([lfw / f for f in split.eval_files], min_confidence=MIN_CONFIDENCE, progress=progress)
        crops = np.zeros((len(split.eval_files), STUDENT_SIZE, STUDENT_SIZE, 3), np.uint8)
        has_face = np.zeros(len(split.eval_files), bool)
        boxes = np.full((len(split.eval_files), 4), -1, np.int64)
        for i, (f, faces) in enumerate(zip(split.eval_files, dets)):
            if faces:
                img = load_image(lfw / f)
                face = _face(lfw / f, faces, img)
                crops[i], has_face[i], boxes[i] = door_crop(img, face), True, face["box"]
        tmp = out / "eval.tmp.npz"
        np.savez(tmp, crops=crops, has_face=has_face, boxes=boxes, pair_a=split.pair_a, pair_b=split.pair_b,
                 same=split.same, fold=split.fold)
        os.replace(tmp, eval_path)

    data = load_prepared(workdir)
    ev = np.load(eval_path)
    summary.update(train_faces=int(len(data.index)), train_without_face=len(split.train_files) - len(data.index),
                   eval_without_face=int((~ev["has_face"]).sum()))
    meta = _read_json(meta_path, "split")
    meta["split"] = summary
    meta["complete"] = True
    meta["teacher_seconds"] = meta.get("teacher_seconds", 0.0) + seconds
    _write_json(meta_path, meta)
    return summary


@dataclass
class Prepared:
    """The training set in memory: context crops (n, 120, 120, 3) uint8, the door crop's edges
    in them (n, 4), the teacher's unit targets (n, 2, 128) (plain, mirrored), file indices."""

    ctx: np.ndarray
    inner: np.ndarray
    targets: np.ndarray
    index: np.ndarray
    meta: dict


def load_prepared(workdir: str | os.PathLike) -> Prepared:
    """What ``prepare`` wrote (all chunks).

    Raises:
        DistillError: nothing prepared, or a chunk is missing or unreadable (named).
    """
    out = _prepared(Path(workdir).expanduser())
    meta = _read_json(out / "split.json", "prepared split (run `python -m fr_utils.distill prepare` first)")
    n = len(meta["train_files"])
    parts = {k: [] for k in ("ctx", "inner", "targets", "index")}
    for c in range(math.ceil(n / CHUNK)):
        path = out / f"train-{c:04d}.npz"
        try:
            with np.load(path) as z:
                for k in parts:
                    parts[k].append(z[k])
        except FileNotFoundError:
            raise DistillError(f"{path} is missing: run `python -m fr_utils.distill prepare` to finish it") from None
        except (OSError, ValueError, KeyError) as err:
            raise DistillError(f"{path}: unreadable chunk ({err}); delete it and run prepare again") from err
    return Prepared(**{k: np.concatenate(v) for k, v in parts.items()}, meta=meta)


# --------------------------------------------------------------------------- training


def augmentation(rng: np.random.Generator, inner: np.ndarray) -> dict:
    """One batch's random augmentation, drawn from ``rng``.

    Returns ``boxes`` (m, 4) for ``tf.image.crop_and_resize`` on the context crops
    (normalised, sampling pixel centres), ``flip`` (m,) bool, ``brightness`` (m,),
    ``contrast`` (m,).
    """
    m = len(inner)
    scale = rng.uniform(1 - SCALE_JITTER, 1 + SCALE_JITTER, m)
    shift = rng.uniform(-SHIFT_JITTER, SHIFT_JITTER, (m, 2))
    flip = rng.random(m) < 0.5
    brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS, m)
    contrast = rng.uniform(1 - CONTRAST, 1 + CONTRAST, m)
    return {"boxes": window_boxes(inner, scale, shift), "flip": flip,
            "brightness": brightness.astype(np.float32), "contrast": contrast.astype(np.float32)}


def window_boxes(inner: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The crop windows (door crop edges ``inner``, scaled about their centre and shifted by
    ``shift`` x their side) as ``crop_and_resize`` boxes sampling STUDENT_SIZE pixel centres."""
    inner = np.asarray(inner, np.float64)
    cy, cx = (inner[:, 0] + inner[:, 2]) / 2, (inner[:, 1] + inner[:, 3]) / 2
    hh, hw = (inner[:, 2] - inner[:, 0]) / 2 * scale, (inner[:, 3] - inner[:, 1]) / 2 * scale
    cy, cx = cy + shift[:, 0] * 2 * hh, cx + shift[:, 1] * 2 * hw
    step_y, step_x = 2 * hh / STUDENT_SIZE, 2 * hw / STUDENT_SIZE
    # pixel centres of the window in the context crop's coordinates (centre of pixel i at i + 0.5)
    top, left = cy - hh + step_y / 2 - 0.5, cx - hw + step_x / 2 - 0.5
    bottom, right = cy + hh - step_y / 2 - 0.5, cx + hw - step_x / 2 - 0.5
    return (np.stack([top, left, bottom, right], 1) / (CONTEXT_SIZE - 1)).astype(np.float32)


def student_input(crops) -> "np.ndarray":
    """(m, 96, 96, 3) uint8 door crops -> the student's input (:data:`PREPROCESSING`)."""
    from fr_utils.images import unit_range

    return unit_range(crops)


class Trainer:
    """The student, its optimizer and the compiled training step."""

    def __init__(self, lr: float, seed: int = 0):
        import keras
        import tensorflow as tf

        from fr_utils.models import openface_nn4_small2

        self.tf = tf
        keras.utils.set_random_seed(seed)  # the initial weights of a new run
        self.model = openface_nn4_small2(STUDENT_SIZE, EMBEDDING)
        self.optimizer = keras.optimizers.Adam(learning_rate=lr)
        self.optimizer.build(self.model.trainable_variables)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._embed = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _train_step(self, ctx, boxes, flip, brightness, contrast, targets):
        tf = self.tf
        m = tf.shape(ctx)[0]
        x = tf.image.crop_and_resize(tf.cast(ctx, tf.float32) / 255.0, boxes, tf.range(m),
                                     (STUDENT_SIZE, STUDENT_SIZE))
        x = tf.where(flip[:, None, None, None], x[:, :, ::-1], x)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
        x = tf.clip_by_value(x, 0.0, 1.0)
        with tf.GradientTape() as tape:
            s = self.model(x, training=True)
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(s - targets), axis=-1))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def step(self, ctx, aug: dict, targets) -> float:
        return float(self._step(ctx, aug["boxes"], aug["flip"], aug["brightness"], aug["contrast"], targets))

    def embed(self, crops: np.ndarray, batch: int = 128) -> np.ndarray:
        """Unit embeddings of (m, 96, 96, 3) uint8 door crops."""
        out = [np.asarray(self._embed(student_input(crops[i:i + batch]))) for i in range(0, len(crops), batch)]
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING), np.float32)

    def save(self, folder: Path, tag: str) -> dict:
        folder.mkdir(parents=True, exist_ok=True)
        weights, opt = folder / f"model-{tag}.weights.h5", folder / f"optimizer-{tag}.npz"
        tmp = folder / f"model-{tag}.tmp.weights.h5"
        self.model.save_weights(tmp)
        os.replace(tmp, weights)
        tmp = folder / f"optimizer-{tag}.tmp.npz"
        np.savez(tmp, *[v.numpy() for v in self.optimizer.variables])
        os.replace(tmp, opt)
        return {"weights": weights.name, "optimizer": opt.name}

    def load(self, folder: Path, files: dict) -> None:
        weights, opt = folder / files["weights"], folder / files["optimizer"]
        try:
            self.model.load_weights(weights)
            with np.load(opt) as z:
                values = [z[f"arr_{i}"] for i in range(len(z.files))]
        except (OSError, ValueError, KeyError) as err:
            raise DistillError(f"{folder}: cannot read the checkpoint {files} ({err})") from err
        variables = self.optimizer.variables
        if len(values) != len(variables) or any(v.shape != tuple(w.shape) for v, w in zip(values, variables)):
            raise DistillError(f"{opt}: the optimizer state does not fit the student")
        for var, value in zip(variables, values):
            var.assign(value)


def _state_path(workdir: Path) -> Path:
    return workdir / "state.json"


def read_state(workdir: str | os.PathLike) -> dict | None:
    """The run's state (``state.json``), or None before the first checkpoint."""
    path = _state_path(Path(workdir).expanduser())
    return _read_json(path, "training state") if path.exists() else None


def evaluate_student(trainer_or_embed, workdir: Path) -> dict:
    """Held-out LFW accuracy of the student (each held-out fold tested with the threshold
    best on the other held-out folds; euclidean distance; a pair with a faceless image counts
    as "different")."""
    from fr_utils.evaluate import cross_validate

    with np.load(_prepared(workdir) / "eval.npz") as z:
        ev = {k: z[k] for k in z.files}
    embed = trainer_or_embed.embed if hasattr(trainer_or_embed, "embed") else trainer_or_embed
    emb = embed(ev["crops"]).astype(np.float32)
    emb[~ev["has_face"]] = np.nan
    res = cross_validate(emb[ev["pair_a"]], emb[ev["pair_b"]], ev["same"], ev["fold"])
    return {"accuracy": res["accuracy_mean"], "accuracy_std": res["accuracy_std"],
            "accuracy_per_fold": [float(a) for a in res["accuracy"]], "auc": float(res["auc"]),
            "threshold": res["threshold_mean"], "pairs": int(len(ev["same"]))}


def train(workdir: str | os.PathLike, *, epochs: int, batch_size: int = 64, lr: float | None = None,
          seed: int = 0, checkpoint_minutes: float = 10.0, max_steps: int | None = None,
          log=print) -> dict:
    """Train (or resume training) the student until ``epochs`` epochs are done.

    Args:
        workdir: where ``prepare`` wrote its data; checkpoints and ``state.json`` go there.
        epochs: the total number of epochs wanted (a resumed run continues up to it).
        batch_size, seed: fixed by the first run (a resumed run must not change them).
        lr: Adam's learning rate (default 1e-3 for a new run; a resumed run keeps its own
            unless given; every change is logged in the history).
        checkpoint_minutes: also checkpoint within an epoch this often.
        max_steps: stop (after a checkpoint) once this many steps were taken in this call.
    Returns:
        The state after the last checkpoint.
    Raises:
        DistillError: nothing prepared, a damaged checkpoint, or a resumed run given another
            batch size or seed.
    """
    workdir = Path(workdir).expanduser()
    data = load_prepared(workdir)
    if not data.meta.get("complete"):
        raise DistillError(f"{workdir}: prepare has not finished; run `python -m fr_utils.distill prepare`")
    state = read_state(workdir)
    if state is not None:
        for key, value in (("batch_size", batch_size), ("seed", seed)):
            if state[key] != value:
                raise DistillError(f"{_state_path(workdir)}: this run has {key} {state[key]}, "
                                   f"not {value}; resume with --{key.replace('_', '-')} {state[key]}")
        if lr is None:
            lr = state["lr"]
    else:
        lr = 1e-3 if lr is None else lr
        state = {"epoch": 0, "step": 0, "global_step": 0, "seed": seed, "batch_size": batch_size, "lr": lr,
                 "loss_sum": 0.0, "loss_count": 0, "history": [], "split": data.meta["split"],
                 "checkpoint": None, "seconds": 0.0, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    n = len(data.index)
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise DistillError(f"{workdir}: {n} training faces, fewer than one batch of {batch_size}")
    trainer = Trainer(lr, seed)
    ckpt = workdir / "checkpoints"
    if state["checkpoint"]:
        trainer.load(ckpt, state["checkpoint"])
    if not np.isclose(float(trainer.optimizer.learning_rate.numpy()), lr) or state["lr"] != lr:
        trainer.optimizer.learning_rate.assign(lr)
        log(f"learning rate {state['lr']:g} -> {lr:g} at epoch {state['epoch']} step {state['step']}")
        state["lr"] = lr

    def checkpoint() -> None:
        old = state["checkpoint"]
        state["checkpoint"] = trainer.save(ckpt, f"{state['global_step']:08d}")
        _write_json(_state_path(workdir), state)
        if old and old != state["checkpoint"]:
            for name in old.values():
                (ckpt / name).unlink(missing_ok=True)

    taken, last_ckpt, t0 = 0, time.monotonic(), time.monotonic()
    clock = time.monotonic()
    while state["epoch"] < epochs:
        epoch = state["epoch"]
        order = np.random.default_rng([seed, epoch]).permutation(n)
        while state["step"] < per_epoch:
            step = state["step"]
            idx = np.sort(order[step * batch_size:(step + 1) * batch_size])
            aug = augmentation(np.random.default_rng([seed, epoch, step]), data.inner[idx])
            targets = data.targets[idx, aug["flip"].astype(np.int64)]
            loss = trainer.step(data.ctx[idx], aug, targets)
            state["loss_sum"] += loss
            state["loss_count"] += 1
            state["step"] += 1
            state["global_step"] += 1
            taken += 1
            now = time.monotonic()
            state["seconds"] += now - clock
            clock = now
            if state["step"] % 20 == 0:
                log(f"epoch {epoch + 1} step {state['step']}/{per_epoch} loss {state['loss_sum'] / state['loss_count']:.4f} "
                    f"({taken * batch_size / (now - t0):.1f} images/s)")
            if max_steps is not None and taken >= max_steps:
                checkpoint()
                return state
            if now - last_ckpt > checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = now
        result = evaluate_student(trainer, workdir)
        entry = {"epoch": epoch + 1, "loss": state["loss_sum"] / max(state["loss_count"], 1),
                 "held_out_accuracy": result["accuracy"], "held_out_accuracy_std": result["accuracy_std"],
                 "held_out_auc": result["auc"], "lr": lr, "global_step": state["global_step"],
                 "seconds": state["seconds"], "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        state["history"].append(entry)
        log(f"epoch {epoch + 1} done: loss {entry['loss']:.4f}, held-out accuracy "
            f"{result['accuracy']:.4f} +- {result['accuracy_std']:.4f} ({result['pairs']} pairs)")
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_count=0)
        checkpoint()
        last_ckpt = time.monotonic()
    return state


def student_from_checkpoint(workdir: str | os.PathLike):
    """The student model with the last checkpoint's weights."""
    workdir = Path(workdir).expanduser()
    state = read_state(workdir)
    if state is None or not state.get("checkpoint"):
        raise DistillError(f"{workdir}: no checkpoint yet; run `python -m fr_utils.distill train`")
    from fr_utils.models import openface_nn4_small2

    model = openface_nn4_small2(STUDENT_SIZE, EMBEDDING)
    path = workdir / "checkpoints" / state["checkpoint"]["weights"]
    try:
        model.load_weights(path)
    except (OSError, ValueError) as err:
        raise DistillError(f"{path}: cannot load the student's weights ({err})") from err
    return model, state


# --------------------------------------------------------------------------- evaluate, export


def _embedder(model):
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda crops: np.concatenate([np.asarray(fn(student_input(crops[i:i + 128])))
                                         for i in range(0, len(crops), 128)])


def images_per_second(model, size: int, batch: int, seconds: float = 5.0) -> float:
    """Images per second of ``model(x, training=False)`` (a compiled tf.function) on random
    (batch, size, size, 3) input, after a warm-up call; at least 3 calls or ``seconds``."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), np.float32))
    fn(x).numpy()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn(x).numpy()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def evaluate(workdir: str | os.PathLike, *, speed: bool = True, teacher_accuracy: bool = True,
             progress: bool = True) -> dict:
    """The last checkpoint's held-out accuracy, the teacher's on the same pairs and crops, and
    images per second of both at batch 1 and 32. Written to ``workdir/evaluation.json``."""
    workdir = Path(workdir).expanduser()
    model, state = student_from_checkpoint(workdir)
    res = {"student": evaluate_student(_embedder(model), workdir), "epoch": state["epoch"],
           "step": state["step"], "global_step": state["global_step"]}
    teacher = None
    if teacher_accuracy or speed:
        from fr_utils.weights import load_facenet

        _check_float32_teacher()

        teacher = load_facenet(name=TEACHER)
    if teacher_accuracy:
        from fr_utils.encoding import encode_batch
        from fr_utils.evaluate import cross_validate
        from fr_utils.images import load_image

        meta = _read_json(_prepared(workdir) / "split.json", "prepared split")
        lfw = Path(meta["split"]["lfw_dir"])
        with np.load(_prepared(workdir) / "eval.npz") as z:
            ev = {k: z[k] for k in z.files}
        files = meta["eval_files"]
        size = int(teacher.input_shape[1])

        def crop(i):
            return door_crop(load_image(lfw / files[i]), {"box": [int(v) for v in ev["boxes"][i]]}, size)

        have = [int(i) for i in np.flatnonzero(ev["has_face"])]
        emb = np.full((len(files), EMBEDDING), np.nan, np.float32)
        emb[have] = encode_batch(have, teacher, crop=crop, progress=progress, desc="teacher").embeddings
        r = cross_validate(emb[ev["pair_a"]], emb[ev["pair_b"]], ev["same"], ev["fold"])
        res["teacher"] = {"accuracy": r["accuracy_mean"], "accuracy_std": r["accuracy_std"],
                          "accuracy_per_fold": [float(a) for a in r["accuracy"]], "auc": float(r["auc"])}
    if speed:
        res["speed"] = {}
        for b in (1, 32):
            res["speed"][f"student_batch{b}"] = images_per_second(model, STUDENT_SIZE, b)
            res["speed"][f"teacher_batch{b}"] = images_per_second(teacher, int(teacher.input_shape[1]), b)
        for b in (1, 32):
            res["speed"][f"ratio_batch{b}"] = res["speed"][f"student_batch{b}"] / res["speed"][f"teacher_batch{b}"]
        res["speed"]["note"] = ("model(x, training=False) compiled with tf.function, random input, "
                                "same process, teacher and student alternating; shared CPU")
    previous = workdir / "evaluation.json"
    if not teacher_accuracy and previous.exists():  # the teacher's figure depends on the split only
        before = _read_json(previous, "evaluation")
        if "teacher" in before and before.get("split_sha256") == state["split"]["eval_files_sha256"]:
            res["teacher"] = before["teacher"]
    res["split_sha256"] = state["split"]["eval_files_sha256"]
    res["time"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    _write_json(previous, res)
    return res


def export(workdir: str | os.PathLike, out: str | os.PathLike, name: str = EXPORT_NAME,
           command: str | None = None) -> Path:
    """Write ``out/<name>.weights.h5`` and ``out/<name>.manifest.json`` from the last checkpoint.

    Returns the manifest's path.
    """
    workdir, out = Path(workdir).expanduser(), Path(out).expanduser()
    model, state = student_from_checkpoint(workdir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.weights.h5"
    tmp = out / f"{name}.tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, weights)
    evaluation = workdir / "evaluation.json"
    figures = _read_json(evaluation, "evaluation") if evaluation.exists() else None
    if figures is not None and figures.get("global_step") != state["global_step"]:
        figures = {"note": f"measured at step {figures.get('global_step')}, not this checkpoint's "
                           f"{state['global_step']}", **figures}
    manifest = {
        "name": name,
        "architecture": f"fr_utils.models.openface_nn4_small2(input_size={STUDENT_SIZE}, embedding_size={EMBEDDING})",
        "input_size": STUDENT_SIZE, "embedding_size": EMBEDDING, "preprocessing": PREPROCESSING,
        "crop": {"margin": MARGIN, "face": FACE_RULE, "min_confidence": MIN_CONFIDENCE},
        "teacher": TEACHER, "method": "distillation: mean squared distance to the teacher's unit embeddings",
        "split": state["split"], "seed": state["seed"], "batch_size": state["batch_size"],
        "epochs": state["epoch"], "global_step": state["global_step"], "history": state["history"],
        "command": command or "python -m fr_utils.distill export", "weights_sha256": sha256_file(weights),
        "weights_file": weights.name, "figures": figures,
    }
    path = out / f"{name}.manifest.json"
    _write_json(path, manifest)
    return path


def find_student(name: str = EXPORT_NAME) -> Path:
    """The first folder of :func:`fr_utils.weights.weights_search_path` (``$FR_WEIGHTS_DIR``,
    the course's ``weights/`` under ``make``, then the per-user and shared folders) that holds
    ``<name>.manifest.json``.

    Raises:
        DistillError: none does (the message names every folder searched).
    """
    from fr_utils.weights import weights_search_path

    folders = weights_search_path()
    for folder in folders:
        if (folder / f"{name}.manifest.json").is_file():
            return folder
    raise DistillError(
        f"the distilled OpenFace nn4.small2 ({name}.weights.h5 and its manifest) is in none of the folders "
        f"searched: {', '.join(map(str, folders))}. The repository ships it in weights/ (set FR_WEIGHTS_DIR "
        "to that folder, as `make course` does), or make it with `python -m fr_utils.distill export --out DIR`.")


def load_student(directory: str | os.PathLike | None = None, name: str = EXPORT_NAME):
    """The exported student: ``openface_nn4_small2()`` with ``<name>.weights.h5`` (sha256 checked
    against ``<name>.manifest.json``), read-only. Returns (model, manifest).

    ``directory``: the folder holding them (default: :func:`find_student`, i.e. the course's
    ``weights/``). The model is entered in fr_utils' registry of encoders
    (:func:`fr_utils.weights.register`), so ``img_to_encoding(photo, model)`` and the other
    encoders of :mod:`fr_utils.encoding` give its embeddings with the door's crop at 96 x 96
    and its input scaling (RGB / 255): (m, 96, 96, 3) in [0, 1] -> (m, 128) unit vectors.

    Raises:
        DistillError: the manifest or weights are missing, or the sha256 differs (named).
    """
    from fr_utils.models import openface_nn4_small2
    from fr_utils.weights import register

    directory = find_student(name) if directory is None else Path(directory).expanduser()
    manifest = _read_json(directory / f"{name}.manifest.json", "student manifest")
    weights = directory / str(manifest.get("weights_file", f"{name}.weights.h5"))
    if not weights.is_file():
        raise DistillError(f"{weights}: the student's weights are missing")
    digest = sha256_file(weights)
    if digest != manifest.get("weights_sha256"):
        raise DistillError(f"{weights}: sha256 {digest} differs from the manifest's "
                           f"{manifest.get('weights_sha256')}")
    model = openface_nn4_small2(int(manifest["input_size"]), int(manifest["embedding_size"]))
    try:
        model.load_weights(weights)
    except (OSError, ValueError) as err:
        raise DistillError(f"{weights}: cannot load the student's weights ({err})") from err
    model.trainable = False
    register(model, manifest)
    return model, manifest


def status(workdir: str | os.PathLike) -> dict:
    """Where a run stands: prepared chunks (done / all), training state and its history."""
    workdir = Path(workdir).expanduser()
    out = _prepared(workdir)
    meta = _read_json(out / "split.json", "prepared split (run `python -m fr_utils.distill prepare` first)")
    n_chunks = math.ceil(len(meta["train_files"]) / CHUNK)
    done = sum((out / f"train-{c:04d}.npz").exists() for c in range(n_chunks))
    res = {"workdir": str(workdir), "split": meta["split"], "prepared_chunks": f"{done}/{n_chunks}",
           "eval_crops": (out / "eval.npz").exists(), "prepare_complete": bool(meta.get("complete")),
           "teacher_seconds": meta.get("teacher_seconds")}
    state = read_state(workdir)
    if state is not None:
        res["training"] = {k: state[k] for k in ("epoch", "step", "global_step", "seed", "batch_size", "lr",
                                                 "seconds", "history")}
    return res


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fr_utils.distill",
                                description="Distil OpenFace nn4.small2 from the 128-number FaceNet on LFW.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--workdir", type=Path, default=None,
                       help=f"the run's folder (default {default_workdir()})")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    q = sub.add_parser("prepare", help="split LFW, cut the crops, cache the teacher's embeddings")
    common(q)
    q.add_argument("--lfw-dir", type=Path, default=None, help="LFW (default $FR_DATASETS/lfw-deepfunneled)")
    q.add_argument("--pairs", type=Path, default=None, help="pairs.txt (default $FR_DATASETS/lfw-protocol/pairs.txt)")
    q.add_argument("--held-out", default=",".join(map(str, HELD_OUT)),
                   help="the evaluation folds of pairs.txt, 1-based (default %(default)s)")
    q.add_argument("--limit", type=int, default=None, help="only this many training images and pairs per kind "
                                                           "and fold (trials)")
    q = sub.add_parser("train", help="train or resume")
    common(q)
    q.add_argument("--epochs", type=int, default=100, help="total epochs wanted (default %(default)s)")
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--lr", type=float, default=None, help="Adam's learning rate (new run: 1e-3; resumed: kept)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--checkpoint-minutes", type=float, default=10.0)
    q.add_argument("--steps", type=int, default=None, help="stop after this many steps (trials)")
    q = sub.add_parser("evaluate", help="held-out accuracy, teacher's accuracy, images per second")
    common(q)
    q.add_argument("--no-speed", action="store_true")
    q.add_argument("--no-teacher", action="store_true")
    q = sub.add_parser("status", help="how far prepare and train are")
    common(q)
    q = sub.add_parser("export", help="write the weights and the manifest")
    common(q)
    q.add_argument("--out", type=Path, required=True, help="the weights folder to write into")
    q.add_argument("--name", default=EXPORT_NAME)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir = args.workdir or default_workdir()
    try:
        if args.command == "prepare":
            from fr_utils.datasets import dataset_path

            lfw = dataset_path("lfw-deepfunneled", given=args.lfw_dir)
            pairs = dataset_path("lfw-protocol", "pairs.txt", given=args.pairs)
            res = prepare(workdir, lfw, pairs, args.held_out, limit=args.limit, progress=not args.quiet)
            print(json.dumps(res, indent=1))
        elif args.command == "train":
            state = train(workdir, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          checkpoint_minutes=args.checkpoint_minutes, max_steps=args.steps,
                          log=lambda s: print(s, flush=True))
            print(f"checkpoint: epoch {state['epoch']}, step {state['step']} ({workdir / 'state.json'})")
        elif args.command == "status":
            print(json.dumps(status(workdir), indent=1))
        elif args.command == "evaluate":
            res = evaluate(workdir, speed=not args.no_speed, teacher_accuracy=not args.no_teacher,
                           progress=not args.quiet)
            print(json.dumps(res, indent=1))
        else:
            cmd = "python -m fr_utils.distill " + " ".join(sys.argv[1:] if argv is None else argv)
            print(export(workdir, args.out, args.name, command=cmd))
    except (FrUtilsError, FileNotFoundError) as err:
        return report(err, 2, "python -m fr_utils.distill")
    return 0


if __name__ == "__main__":
    sys.exit(main())
