"""Face verification on LFW: the pairs files, the metrics, the 10-fold protocol.

Library use::

    from fr_utils.evaluate import read_pairs, embed_files, distances, roc_curve, best_threshold
    pairs = read_pairs("lfw-protocol/pairs.txt", "lfw-deepfunneled")
    emb = embed_files([p.path_a for p in pairs] + [p.path_b for p in pairs])   # cached on disk
    n = len(pairs)
    d = distances(emb[:n], emb[n:])                                           # (n,), NaN: no face
    same = np.array([p.same for p in pairs])
    threshold, accuracy = best_threshold(d, same)

Command line (see :func:`main`)::

    python -m fr_utils.evaluate lfw [--lfw-dir DIR] [--pairs FILE] [--flip] [--subtract-mean]
                                    [--metric cosine] [--alignment similarity] [--folds K] [--out DIR]
    python -m fr_utils.evaluate threshold [--pairs pairsDevTrain.txt] [--test-pairs pairsDevTest.txt]

Conventions: a *distance* is small for the same person; a pair is predicted
"same" when its distance is ``< threshold`` (:func:`fr_utils.matching.is_match`,
the door's one rule). A pair where either image has no
detected face has a NaN distance, and every metric here scores it as infinitely
far: predicted "different" at every threshold, as a real door would (it cannot
say yes to a photo without a face). Such pairs are therefore wrong when they
are same-person pairs and right when they are different-person pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fr_utils.datasets import dataset_path
from fr_utils.detect import MIN_CONFIDENCE
from fr_utils.embedding_cache import ALIGNMENTS, FACE_CHOICES, embed_files
from fr_utils.errors import DatasetsNotFound, FaceImageError, PairsFileError, report
from fr_utils.matching import METRICS, check_metric, is_match
from fr_utils.weights import MODEL_NAME, MODELS, WeightsError

__all__ = [
    "Pair", "PairsFileError", "read_pairs", "embed_files", "distances", "roc_curve", "auc",
    "best_threshold", "accuracy_at", "val_far", "threshold_at_far", "eer", "plot_roc",
    "cross_validate", "main",
]


# --------------------------------------------------------------------------- pairs files


@dataclass(frozen=True)
class Pair:
    """One verification pair: two image files, whether they show the same person, its fold (0-based)."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int


def _image(lfw_dir: Path, name: str, number: str, where: str) -> Path:
    try:
        n = int(number)
    except ValueError:
        raise PairsFileError(f"{where}: image number {number!r} is not an integer") from None
    path = lfw_dir / name / f"{name}_{n:04d}.jpg"
    if not path.is_file():
        raise PairsFileError(f"{where}: image {path} does not exist (is --lfw-dir the right folder?)")
    return path


def read_pairs(pairs_file: str | os.PathLike, lfw_dir: str | os.PathLike) -> list[Pair]:
    """Read an LFW pairs file.

    View 2 (``pairs.txt``) starts with ``"10<TAB>300"``: 10 folds, each of 300
    same-person lines ``name i j`` then 300 different-person lines
    ``name1 i name2 j``. View 1 (``pairsDevTrain.txt``: ``1100``,
    ``pairsDevTest.txt``: ``500``) has a single count: that many same-person
    lines, then as many different-person lines, all in fold 0.

    Args:
        pairs_file: the protocol file.
        lfw_dir: the folder holding ``<name>/<name>_<4-digit number>.jpg``.
    Returns:
        The pairs in file order (length 2 x folds x count).
    Raises:
        PairsFileError: (a ``ValueError``) the file is missing or malformed, or
            an image is missing; the message names the file and line.
    """
    pairs_file, lfw_dir = Path(pairs_file), Path(lfw_dir)
    if not lfw_dir.is_dir():
        raise PairsFileError(f"{lfw_dir}: the LFW image folder does not exist")
    try:
        lines = pairs_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PairsFileError(f"{pairs_file}: cannot read the pairs file ({err})") from err
    lines = [(i, line.split()) for i, line in enumerate(lines, 1) if line.strip()]
    if not lines:
        raise PairsFileError(f"{pairs_file}: empty pairs file")
    _, header = lines[0]
    try:
        counts = [int(v) for v in header]
    except ValueError:
        counts = []
    if len(counts) == 1:
        folds, per = 1, counts[0]
    elif len(counts) == 2:
        folds, per = counts
    else:
        raise PairsFileError(f"{pairs_file}:{lines[0][0]}: expected a header 'folds<TAB>count' or 'count', "
                             f"got {' '.join(header)!r}")
    body = lines[1:]
    if len(body) != 2 * folds * per or folds < 1 or per < 1:
        raise PairsFileError(f"{pairs_file}: the header announces {folds} fold(s) of {per} same and {per} "
                             f"different pairs ({2 * folds * per} lines), but the file has {len(body)} pair lines")
    pairs = []
    for k, (lineno, fields) in enumerate(body):
        where = f"{pairs_file}:{lineno}"
        same = (k % (2 * per)) < per
        if same and len(fields) == 3:
            a = _image(lfw_dir, fields[0], fields[1], where)
            b = _image(lfw_dir, fields[0], fields[2], where)
        elif not same and len(fields) == 4:
            a = _image(lfw_dir, fields[0], fields[1], where)
            b = _image(lfw_dir, fields[2], fields[3], where)
        else:
            kind = "same-person 'name i j'" if same else "different-person 'name1 i name2 j'"
            raise PairsFileError(f"{where}: expected a {kind} line, got {' '.join(fields)!r}")
        pairs.append(Pair(a, b, same, k // (2 * per)))
    return pairs


# --------------------------------------------------------------------------- metrics


def distances(emb_a: np.ndarray, emb_b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Row-wise distance between two (n, d) arrays of embeddings -> (n,) float64.

    ``"euclidean"``: the L2 distance ``||a - b||`` (not squared);
    ``"cosine"``: ``1 - cos(a, b)``, in [0, 2]. A row holding NaN gives NaN.
    """
    a, b = np.asarray(emb_a, dtype=np.float64), np.asarray(emb_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (n, d) arrays of the same shape, got {a.shape} and {b.shape}")
    if check_metric(metric) == "euclidean":
        return np.linalg.norm(a - b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.sum(a * b, axis=1) / norms


def _scores(dist, same) -> tuple[np.ndarray, np.ndarray]:
    """(distances with NaN -> +inf, same as bool), checked."""
    d = np.asarray(dist, dtype=np.float64).ravel()
    s = np.asarray(same).ravel()
    if d.shape != s.shape:
        raise ValueError(f"distances {d.shape} and same {s.shape} differ in length")
    if s.dtype != bool:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("same must hold booleans (or 0/1)")
        s = s.astype(bool)
    return np.where(np.isnan(d), np.inf, d), s


def roc_curve(dist: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: the rates of the pairs at or below each distinct distance.

    The door's rule is ``distance < threshold`` (``is_match``); the point at a
    listed threshold ``t`` is that rule's at any threshold just above ``t``.

    Args:
        dist: (n,) distances (NaN: no face, never accepted below +inf).
        same: (n,) booleans, True for same-person pairs (at least one of each kind).
    Returns:
        (fpr, tpr, thresholds), each (k,): false and true positive rates at each
        threshold, thresholds increasing from -inf (nothing accepted, (0, 0))
        through every distinct distance to the largest (everything accepted, (1, 1)).
    """
    d, s = _scores(dist, same)
    pos, neg = np.sort(d[s]), np.sort(d[~s])
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("an ROC curve needs at least one same-person and one different-person pair")
    thresholds = np.concatenate([[-np.inf], np.unique(d)])
    tpr = np.searchsorted(pos, thresholds, side="right") / len(pos)
    fpr = np.searchsorted(neg, thresholds, side="right") / len(neg)
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a curve given by (k,) points with ``fpr`` non-decreasing (trapezoidal rule)."""
    x, y = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"expected two (k,) arrays with k >= 2, got {x.shape} and {y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError("fpr must be non-decreasing")
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def accuracy_at(dist: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of the (n,) pairs classified right by "same when distance < threshold" (``is_match``)."""
    d, s = _scores(dist, same)
    return float(np.mean(is_match(d, threshold) == s))


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest accuracy on these (n,) pairs, and that accuracy.

    Any threshold between two consecutive distinct distances classifies the
    pairs alike; the midpoint of the best such gap is returned (the smallest
    best one when several tie), so the threshold sits as far as it can from
    the pairs it separates.
    """
    fpr, tpr, thresholds = roc_curve(dist, same)
    d, s = _scores(dist, same)
    n_pos, n_neg = int(s.sum()), int((~s).sum())
    acc = (tpr * n_pos + (1.0 - fpr) * n_neg) / (n_pos + n_neg)
    k = int(np.argmax(acc))
    lo = thresholds[k]
    hi = thresholds[k + 1] if k + 1 < len(thresholds) else np.inf
    if np.isinf(lo) and np.isinf(hi):
        t = np.inf
    elif np.isinf(lo):
        t = float(np.nextafter(hi, -np.inf))
    elif np.isinf(hi):
        t = float(np.nextafter(lo, np.inf))  # everything accepted: just above the largest distance
    else:
        t = (lo + hi) / 2.0
        t = hi if t <= lo else t  # adjacent floats: "< hi" accepts exactly the pairs up to lo
    return float(t), float(acc[k])


def val_far(dist: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(VAL, FAR) at a threshold: the fraction of same-person pairs accepted, and
    of different-person pairs accepted (false accepts)."""
    d, s = _scores(dist, same)
    accepted = is_match(d, threshold)
    if not s.any() or s.all():
        raise ValueError("VAL and FAR need at least one same-person and one different-person pair")
    return float(accepted[s].mean()), float(accepted[~s].mean())


def threshold_at_far(dist: np.ndarray, same: np.ndarray, far: float) -> float:
    """The threshold whose false accept rate on these pairs is ``far``, by linear interpolation.

    The empirical FAR rises by 1/N (N different-person pairs) at each of their
    sorted distances; between those points it is interpolated linearly (as
    Sandberg's ``calculate_val`` does on its threshold grid). Below one false
    accept the threshold is just under the smallest different-person distance.
    """
    d, s = _scores(dist, same)
    neg = np.sort(d[~s])
    neg = neg[np.isfinite(neg)]
    if len(neg) == 0:
        return float(np.inf)
    rates = np.arange(1, len(neg) + 1) / int((~s).sum())
    if far < rates[0]:
        return float(np.nextafter(neg[0], -np.inf))
    # one ulp up: "distance < t" then accepts exactly the pairs at or below the interpolated point
    if far >= rates[-1]:
        return float(np.nextafter(neg[-1], np.inf))
    return float(np.nextafter(np.interp(far, rates, neg), np.inf))


def eer(dist: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false accept rate equals the false reject rate
    (1 - TPR) on the ROC curve, linearly interpolated between its points."""
    fpr, tpr, _ = roc_curve(dist, same)
    gap = fpr - (1.0 - tpr)  # rises from -1 to +1 along the curve
    k = int(np.argmax(gap >= 0))
    if k == 0 or gap[k] == 0:
        return float(fpr[k])
    w = -gap[k - 1] / (gap[k] - gap[k - 1])
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, ax=None, label: str | None = None):
    """Draw an ROC curve (false accept rate on a log axis) and return the matplotlib Axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 4))
    fpr = np.asarray(fpr, dtype=np.float64)
    ax.plot(np.maximum(fpr, 1e-4), tpr, label=label)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (different people accepted)")
    ax.set_ylabel("true accept rate (same person accepted)")
    ax.grid(True, which="both", alpha=0.3)
    if label:
        ax.legend(loc="lower right")
    return ax


# --------------------------------------------------------------------------- the protocol


def _cv_folds(folds: np.ndarray, same: np.ndarray, parts: int = 10) -> np.ndarray:
    """The folds to cross-validate over: the given ones, or, when they are all one fold
    (View 1, or one fold of View 2), ``parts`` parts of it taking every ``parts``-th
    same-person and every ``parts``-th different-person pair."""
    if len(np.unique(folds)) > 1:
        return folds
    out = np.empty(len(same), dtype=int)
    for group in (same, ~same):
        idx = np.flatnonzero(group)
        out[idx] = np.arange(len(idx)) % parts
    return out


def cross_validate(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    *,
    metric: str = "euclidean",
    subtract_mean: bool = False,
    far_target: float = 1e-3,
) -> dict:
    """The LFW protocol: each fold is tested with thresholds chosen on the others.

    For each fold: the mean embedding of the other folds' images is subtracted
    (when ``subtract_mean``), distances are computed, the best-accuracy
    threshold of the other folds is applied to this fold (accuracy), and the
    threshold giving FAR = ``far_target`` on the other folds (by
    :func:`threshold_at_far`) gives this fold's VAL and FAR. When every pair is
    in one fold, it is split into 10 parts (see :func:`_cv_folds`).

    Args:
        emb_a, emb_b: (n, d) embeddings of each pair's two images (NaN rows: no face).
        same: (n,) booleans. folds: (n,) fold number of each pair.
    Returns:
        dict with per-fold lists ``accuracy``, ``threshold``, ``val``, ``far``
        (NaN where the test fold lacks same- or different-person pairs);
        their means and standard deviations; ``distances`` (n,) as tested;
        ``fpr``, ``tpr`` of the pooled test distances; ``auc``; ``eer``.
    """
    same = np.asarray(same, dtype=bool)
    folds = _cv_folds(np.asarray(folds), same)
    emb_a, emb_b = np.asarray(emb_a, dtype=np.float64), np.asarray(emb_b, dtype=np.float64)
    tested = np.full(len(same), np.nan)
    res: dict = {"accuracy": [], "threshold": [], "val": [], "far": [], "far_threshold": []}
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        mean = 0.0
        if subtract_mean:
            mean = np.nanmean(np.concatenate([emb_a[train], emb_b[train]]), axis=0)
        d = distances(emb_a - mean, emb_b - mean, metric)
        t, _ = best_threshold(d[train], same[train])
        res["threshold"].append(t)
        res["accuracy"].append(accuracy_at(d[test], same[test], t))
        t_far = threshold_at_far(d[train], same[train], far_target)
        both = same[test].any() and not same[test].all()
        val, far = val_far(d[test], same[test], t_far) if both else (np.nan, np.nan)
        res["far_threshold"].append(t_far)
        res["val"].append(val)
        res["far"].append(far)
        tested[test] = d[test]
    for key in ("accuracy", "val", "far", "threshold"):  # VAL, FAR: NaN for a fold lacking a kind of pair
        res[f"{key}_mean"] = float(np.nanmean(res[key])) if not np.isnan(res[key]).all() else np.nan
        res[f"{key}_std"] = float(np.nanstd(res[key])) if not np.isnan(res[key]).all() else np.nan
    fpr, tpr, _ = roc_curve(tested, same)
    res.update(distances=tested, fpr=fpr, tpr=tpr, auc=auc(fpr, tpr), eer=eer(tested, same),
               folds=int(len(np.unique(folds))))
    return res


# --------------------------------------------------------------------------- command line


def _dataset_path(given: Path | None, *parts: str, what: str, flag: str) -> Path:
    try:
        return dataset_path(*parts, given=given, must_exist=False)
    except DatasetsNotFound as err:
        raise PairsFileError(f"where is {what}? Pass {flag}, or {err}") from None


def _embed_pairs(pairs: Sequence[Pair], args) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(emb_a, emb_b) (n, d) for the pairs, and the images where no face was found."""
    files = list(dict.fromkeys([p.path_a for p in pairs] + [p.path_b for p in pairs]))
    from fr_utils.weights import load_facenet

    model = load_facenet(name=getattr(args, "model", None))
    emb = embed_files(files, model, alignment=args.alignment, flip=args.flip, cache_dir=args.cache_dir,
                      progress=not args.quiet, face=args.face, min_confidence=args.min_confidence)
    row = {f: i for i, f in enumerate(files)}
    faceless = [f for f in files if np.isnan(emb[row[f]]).any()]
    a = emb[[row[p.path_a] for p in pairs]]
    b = emb[[row[p.path_b] for p in pairs]]
    return a, b, faceless


def _options(args) -> str:
    return (f"encoder {getattr(args, 'model', None) or MODEL_NAME}, {args.face} face (confidence >= {args.min_confidence:g}), alignment {args.alignment}, "
            f"flip {'yes' if args.flip else 'no'}, "
            f"mean subtracted {'yes' if getattr(args, 'subtract_mean', False) else 'no'}, metric {args.metric}")


def _run_lfw(args) -> dict:
    import time

    start = time.perf_counter()
    lfw_dir = _dataset_path(args.lfw_dir, "lfw-deepfunneled", what="LFW", flag="--lfw-dir")
    pairs_file = _dataset_path(args.pairs, "lfw-protocol", "pairs.txt", what="the pairs file", flag="--pairs")
    pairs = [p for p in read_pairs(pairs_file, lfw_dir) if p.fold < args.folds]
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    a, b, faceless = _embed_pairs(pairs, args)
    options = dict(metric=args.metric, subtract_mean=args.subtract_mean, far_target=args.far)
    res = cross_validate(a, b, same, folds, **options)
    no_face = np.isnan(res["distances"])
    if no_face.any():  # for comparison with protocols that drop such pairs (Sandberg's does)
        kept = cross_validate(a[~no_face], b[~no_face], same[~no_face], folds[~no_face], **options)
        res.update(accuracy_with_faces_mean=kept["accuracy_mean"], accuracy_with_faces_std=kept["accuracy_std"])
    res.update(
        pairs_file=str(pairs_file), lfw_dir=str(lfw_dir), pairs=len(pairs), folds_used=args.folds,
        face=args.face, min_confidence=args.min_confidence, alignment=args.alignment, flip=args.flip,
        model=args.model or MODEL_NAME, subtract_mean=args.subtract_mean, metric=args.metric, far_target=args.far,
        images=len(set([p.path_a for p in pairs] + [p.path_b for p in pairs])),
        images_without_face=[str(f) for f in faceless], pairs_without_face=int(no_face.sum()),
        pairs_without_face_same=int((no_face & same).sum()), seconds=time.perf_counter() - start,
    )
    return res


def _report_lfw(res: dict) -> None:
    pm = "+-"
    print(f"LFW {res['pairs_file']}: {res['pairs']} pairs, {res['folds']} folds "
          f"(threshold chosen on the other folds, tested on each)")
    print(f"pipeline: {_options(argparse.Namespace(**res))}")
    print(f"accuracy:        {res['accuracy_mean']:.4f} {pm} {res['accuracy_std']:.4f}")
    print(f"VAL @ FAR={res['far_target']:g}:  {res['val_mean']:.4f} {pm} {res['val_std']:.4f} "
          f"(FAR {res['far_mean']:.5f} {pm} {res['far_std']:.5f})")
    print(f"AUC:             {res['auc']:.5f}")
    print(f"EER:             {res['eer']:.4f}")
    print(f"threshold:       {res['threshold_mean']:.4f} {pm} {res['threshold_std']:.4f} ({res['metric']})")
    print(f"no face found in {len(res['images_without_face'])} of {res['images']} images; "
          f"{res['pairs_without_face']} pairs hold one, scored 'different' at every threshold "
          f"({res['pairs_without_face_same']} of them are same-person pairs, so counted wrong)")
    if "accuracy_with_faces_mean" in res:
        print(f"accuracy over the {res['pairs'] - res['pairs_without_face']} pairs with both faces found "
              f"(those pairs dropped): {res['accuracy_with_faces_mean']:.4f} {pm} {res['accuracy_with_faces_std']:.4f}")
    print(f"seconds:         {res['seconds']:.1f}")


def _save_lfw(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.8))
    plot_roc(res["fpr"], res["tpr"], ax=ax,
             label=f"accuracy {res['accuracy_mean']:.4f}, AUC {res['auc']:.4f}, EER {res['eer']:.4f}")
    ax.set_title(f"LFW, {res['pairs']} pairs: {_options(argparse.Namespace(**res))}", fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)
    skip = {"distances", "fpr", "tpr"}
    data = {k: v for k, v in res.items() if k not in skip}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, out / "results.json")
    print(f"saved {out / 'roc.png'} and {out / 'results.json'}")


def _run_threshold(args) -> dict:
    lfw_dir = _dataset_path(args.lfw_dir, "lfw-deepfunneled", what="LFW", flag="--lfw-dir")
    train_file = _dataset_path(args.pairs, "lfw-protocol", "pairsDevTrain.txt", what="the pairs file",
                               flag="--pairs")
    test_file = args.test_pairs
    if test_file is None and (train_file.parent / "pairsDevTest.txt").is_file():
        test_file = train_file.parent / "pairsDevTest.txt"
    out = {"pairs_file": str(train_file), "model": args.model or MODEL_NAME, "metric": args.metric, "face": args.face,
           "min_confidence": args.min_confidence, "alignment": args.alignment, "flip": args.flip}
    pairs = read_pairs(train_file, lfw_dir)
    a, b, _ = _embed_pairs(pairs, args)
    same = np.array([p.same for p in pairs])
    out["threshold"], out["train_accuracy"] = best_threshold(distances(a, b, args.metric), same)
    out["train_pairs"] = len(pairs)
    if test_file is not None:
        test = read_pairs(test_file, lfw_dir)
        a, b, _ = _embed_pairs(test, args)
        out["test_pairs_file"], out["test_pairs"] = str(test_file), len(test)
        out["test_accuracy"] = accuracy_at(distances(a, b, args.metric), [p.same for p in test], out["threshold"])
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fr_utils.evaluate",
        description="Face verification on LFW with the pretrained encoder. Exit status: 0 done, "
                    "2 bad arguments or data (missing LFW, malformed pairs file, unreadable image).")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lfw-dir", type=Path, default=None,
                       help="LFW images, <name>/<name>_0001.jpg (default: $FR_DATASETS/lfw-deepfunneled)")
        p.add_argument("--alignment", choices=ALIGNMENTS, default="box",
                       help="box: MTCNN box + a margin of 0.30 of its side, Sandberg's LFW crop at any size "
                            "(default); similarity: 5-point similarity transform")
        p.add_argument("--face", choices=FACE_CHOICES, default=None,
                       help="which face of a photo with several: main (default, the door's: the largest, or the most "
                            "central of faces about as large); largest; central (--published: Sandberg's rule, "
                            "large and near the centre)")
        p.add_argument("--min-confidence", type=float, default=None,
                       help=f"ignore faces MTCNN is less sure of (default {MIN_CONFIDENCE:g}; --published: 0.8, the lowest the "
                            "mtcnn package reports, nearest to the 0.7 of Sandberg's alignment script)")
        p.add_argument("--flip", action="store_true", help="concatenate the embeddings of the crop and its mirror")
        p.add_argument("--metric", choices=METRICS, default="euclidean", help="distance (default euclidean, L2)")
        p.add_argument("--cache-dir", type=Path, default=None,
                       help="embedding cache (default $FR_CACHE_DIR/embeddings or ~/.cache/fr_utils/embeddings)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--model", default=None, choices=list(MODELS),
                       help=f"the encoder, by name (default {MODEL_NAME})")

    lfw = sub.add_parser("lfw", help="the 10-fold LFW protocol on pairs.txt")
    common(lfw)
    lfw.add_argument("--pairs", type=Path, default=None,
                     help="pairs file (default: $FR_DATASETS/lfw-protocol/pairs.txt)")
    lfw.add_argument("--subtract-mean", action="store_true",
                     help="subtract the mean embedding of the training folds before the distance")
    lfw.add_argument("--published", action="store_true",
                     help="Sandberg's validate_on_lfw options: --face central --min-confidence 0.8 --flip "
                          "--subtract-mean --metric cosine")
    lfw.add_argument("--folds", type=int, default=10, choices=range(1, 11), metavar="K",
                     help="use only the first K folds (1..10, default 10); one fold is split in 10 parts")
    lfw.add_argument("--far", type=float, default=1e-3, help="false accept rate for VAL (default 1e-3)")
    lfw.add_argument("--out", type=Path, default=Path("lfw-results"),
                     help="folder for roc.png and results.json (default ./lfw-results)")

    thr = sub.add_parser("threshold", help="the best-accuracy threshold on View 1 (pairsDevTrain.txt)")
    common(thr)
    thr.add_argument("--pairs", type=Path, default=None,
                     help="training pairs (default: $FR_DATASETS/lfw-protocol/pairsDevTrain.txt)")
    thr.add_argument("--test-pairs", type=Path, default=None,
                     help="pairs to test the threshold on (default: pairsDevTest.txt beside --pairs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 done, 2 bad arguments or data)."""
    args = _parser().parse_args(argv)
    if getattr(args, "published", False):
        args.flip, args.subtract_mean, args.metric = True, True, "cosine"
        args.face = args.face or "central"
        args.min_confidence = 0.8 if args.min_confidence is None else args.min_confidence
    args.face = args.face or "main"
    args.min_confidence = MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
    try:
        if args.command == "lfw":
            res = _run_lfw(args)
            _report_lfw(res)
            _save_lfw(res, args.out)
        else:
            res = _run_threshold(args)
            print(f"pipeline: {_options(args)}")
            print(f"best-accuracy threshold on {res['pairs_file']} ({res['train_pairs']} pairs): "
                  f"{res['threshold']:.4f} ({args.metric}), accuracy {res['train_accuracy']:.4f}")
            if "test_accuracy" in res:
                print(f"the same threshold on {res['test_pairs_file']} ({res['test_pairs']} pairs): "
                      f"accuracy {res['test_accuracy']:.4f}")
    except (PairsFileError, FaceImageError, WeightsError) as err:
        return report(err, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
