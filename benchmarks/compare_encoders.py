"""The two pretrained encoders side by side: 512-number 20180408-102900 and 128-number 20170512-110547.

    FR_DATASETS=../shared/datasets python benchmarks/compare_encoders.py [--published] [--seconds 10] [--no-lfw]
        [--no-orl | --orl-only]

Prints, for each encoder of ``fr_utils.weights.MODELS``:
  * LFW ``pairs.txt``, 10 folds, the default pipeline of ``python -m fr_utils.evaluate lfw``
    (largest face, MTCNN confidence >= 0.9, box + 32 px, no flip, L2), and with
    ``--published`` Sandberg's options (``--published``: central face, 0.8, flip,
    mean subtracted, cosine); both through the embedding cache (the MTCNN detections
    are shared by both encoders, so the second one only encodes);
  * its View 1 threshold and accuracies, as recorded in its manifest;
  * images per second through fr_utils' inference path, batch 1 and batch 32
    (interleaved rounds, so that a busy machine slows both alike);
  * peak memory of a fresh process that loads the encoder and encodes 32 faces
    (and the weights file's size, the parameter count);
  * the sample cast (``fr_utils/cast/people``, MTCNN largest face): the largest
    genuine (same-person) distance, the smallest impostor distance, the margin
    between them, and each side's distance to the encoder's own threshold;
  * ORL (``orl-faces``: 40 people x 10 gray 92x112 photos), two pipelines: the
    whole photo as the face crop (ORL's photos are already framed on the head;
    stretched to 160 x 160) and the door's (MTCNN largest face, confidence 0.9,
    the proportional box crop, through the embedding cache). For each: faces
    found; one-shot identification (photo k of each person enrolled, the other
    360 identified by the nearest enrolled face, L2; mean, min and max over
    k = 1..10); verification over all 79,800 pairs (1,800 genuine) at the
    encoder's own View-1 threshold (TAR, FAR, accuracy), and with thresholds
    chosen by 10-fold cross-validation over identity-disjoint folds (4 people
    each; the 780 pairs inside each fold: 180 genuine, 600 impostor); AUC and
    EER over all pairs. A photo without a face counts as a miss everywhere.
Asserts nothing. Without ``$FR_DATASETS`` the LFW and ORL rows are skipped, saying why.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _machine import machine, shared_dataset

# The child reads its peak from /proc/self/status (VmHWM): on Linux, ru_maxrss survives
# exec, so a child started by this big process would report the parent's peak.
_CHILD = """
import json, resource, sys, numpy as np
from fr_utils.encoding import inference_function
from fr_utils.weights import load_facenet
m = load_facenet(name=sys.argv[1])
inference_function(m)(np.zeros((32, 160, 160, 3), np.float32))
try:
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mib": peak, "params": int(m.count_params())}))
"""


def memory(name: str) -> dict:
    """Peak RSS (MiB) of a fresh process that loads encoder ``name`` and encodes a batch of 32."""
    out = subprocess.run([sys.executable, "-c", _CHILD, name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(models: dict, seconds: float, rounds: int = 5) -> dict:
    """images/s of each model's inference path, batch 1 and 32, interleaved over ``rounds``."""
    from fr_utils.encoding import inference_function

    rng = np.random.default_rng(0)
    x1 = rng.uniform(-1, 1, (1, 160, 160, 3)).astype(np.float32)
    x32 = rng.uniform(-1, 1, (32, 160, 160, 3)).astype(np.float32)
    contenders = {(name, len(x)): (inference_function(m), x) for name, m in models.items() for x in (x1, x32)}
    for fn, x in contenders.values():  # warm-up
        fn(x)
        fn(x)
    images = dict.fromkeys(contenders, 0)
    spent = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for key, (fn, x) in contenders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / rounds:
                fn(x)
                images[key] += len(x)
            spent[key] += time.perf_counter() - start
    return {key: images[key] / spent[key] for key in contenders}


def lfw(model, lfw_dir: Path, pairs_file: Path, published: bool) -> dict:
    """The 10-fold protocol on ``pairs_file``, as ``python -m fr_utils.evaluate lfw [--published]``."""
    from fr_utils.embedding_cache import embed_files
    from fr_utils.evaluate import cross_validate, read_pairs

    pairs = read_pairs(pairs_file, lfw_dir)
    files = list(dict.fromkeys([p.path_a for p in pairs] + [p.path_b for p in pairs]))
    start = time.perf_counter()
    emb = embed_files(files, model, flip=published, face="central" if published else "main",
                      min_confidence=0.8 if published else 0.9, progress=False)
    row = {f: i for i, f in enumerate(files)}
    a, b = emb[[row[p.path_a] for p in pairs]], emb[[row[p.path_b] for p in pairs]]
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    res = cross_validate(a, b, same, folds, metric="cosine" if published else "euclidean", subtract_mean=published)
    res["seconds"] = time.perf_counter() - start
    return res


def cast_margins(model, threshold: float) -> dict:
    """Genuine and impostor L2 distances over the sample cast's photos (largest face of each)."""
    from fr_utils.data import sample_cast
    from fr_utils.encoding import encode_images

    people = [(name, p) for name, photos in sample_cast().items() for p in photos]
    emb = encode_images([p for _, p in people], model, progress=False)
    genuine, impostor = [], []
    for (i, (ni, _)), (j, (nj, _)) in itertools.combinations(enumerate(people), 2):
        d = float(np.linalg.norm(emb[i] - emb[j]))
        (genuine if ni == nj else impostor).append(d)
    g, im = max(genuine), min(impostor)
    return {"photos": len(people), "genuine_pairs": len(genuine), "impostor_pairs": len(impostor),
            "max_genuine": g, "min_impostor": im, "margin": im - g,
            "genuine_below_threshold": threshold - g, "impostor_above_threshold": im - threshold}


def orl_photos(orl_dir: Path) -> tuple[list[Path], np.ndarray]:
    """ORL's photos, person by person (``s1``..``s40``, each ``1.pgm``..``10.pgm`` in natural
    order), and each photo's person index. ValueError naming the folder when a person has
    not exactly 10 photos."""
    def natural(p: Path) -> tuple:
        digits = "".join(c for c in p.stem if c.isdigit())
        return (int(digits) if digits else -1, p.name)

    people = sorted((d for d in Path(orl_dir).iterdir() if d.is_dir() and not d.name.startswith(".")), key=natural)
    paths, labels = [], []
    for i, person in enumerate(people):
        photos = sorted((p for p in person.iterdir() if p.suffix.lower() == ".pgm"), key=natural)
        if len(photos) != 10:
            raise ValueError(f"{person}: expected 10 .pgm photos (ORL's layout), found {len(photos)}")
        paths += photos
        labels += [i] * len(photos)
    if len(people) < 10:
        raise ValueError(f"{orl_dir}: expected ORL's 40 person folders s1..s40, found {len(people)}")
    return paths, np.array(labels)


def one_shot(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank-1 identification rate for each k: photo k of every person enrolled, every other
    photo identified by its nearest enrolled face (L2). NaN rows (no face) are misses, as
    probes and as enrolled photos."""
    people = np.unique(labels)
    index = [np.flatnonzero(labels == p) for p in people]
    rates = []
    for k in range(min(len(i) for i in index)):
        gallery = np.array([i[k] for i in index])
        probes = np.setdiff1d(np.arange(len(labels)), gallery)
        d = np.linalg.norm(emb[probes][:, None, :] - emb[gallery][None, :, :], axis=2)
        d = np.where(np.isnan(d), np.inf, d)
        best = np.argmin(d, axis=1)
        hit = (people[best] == labels[probes]) & np.isfinite(d[np.arange(len(probes)), best])
        rates.append(float(hit.mean()))
    return np.array(rates)


def orl_verification(emb: np.ndarray, labels: np.ndarray, threshold: float, folds: int = 10) -> dict:
    """Every pair of photos: TAR, FAR and accuracy at ``threshold`` (door's rule, distance <
    threshold), AUC and EER; and the accuracy with thresholds chosen by cross-validation over
    ``folds`` identity-disjoint folds (person ``p`` in fold ``p % folds``; the pairs inside each fold)."""
    from fr_utils.evaluate import auc, cross_validate, distances, eer, roc_curve

    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    d = np.where(np.isnan(dist := distances(emb[i], emb[j])), np.inf, dist)
    accept = d < threshold
    fpr, tpr, _ = roc_curve(d, same)
    people = np.unique(labels, return_inverse=True)[1]
    inside = people[i] % folds == people[j] % folds
    cv = cross_validate(emb[i][inside], emb[j][inside], same[inside], (people[i] % folds)[inside])
    return {"pairs": len(same), "genuine": int(same.sum()), "tar": float(accept[same].mean()),
            "far": float(accept[~same].mean()), "accuracy": float((accept == same).mean()),
            "auc": auc(fpr, tpr), "eer": eer(d, same), "cv_accuracy": cv["accuracy_mean"],
            "cv_std": cv["accuracy_std"], "cv_threshold": cv["threshold_mean"], "cv_pairs": int(inside.sum())}


def orl(model, orl_dir: Path, threshold: float, pipeline: str) -> dict:
    """ORL with one encoder: ``pipeline`` ``"whole"`` (the photo is the crop) or ``"mtcnn"``
    (the door's detection and crop, cached)."""
    from fr_utils.embedding_cache import embed_files
    from fr_utils.encoding import encode_images

    paths, labels = orl_photos(orl_dir)
    start = time.perf_counter()
    if pipeline == "whole":
        emb = encode_images(paths, model, detect=False, progress=False)
    else:
        emb = embed_files(paths, model, progress=False)
    found = int((~np.isnan(emb).any(axis=1)).sum())
    rates = one_shot(emb, labels)
    res = orl_verification(emb, labels, threshold)
    res.update(found=found, photos=len(paths), one_shot=float(rates.mean()), one_shot_min=float(rates.min()),
               one_shot_max=float(rates.max()), seconds=time.perf_counter() - start)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per speed contender (default 10)")
    parser.add_argument("--published", action="store_true", help="also LFW with Sandberg's options (flip: 2x encoding)")
    parser.add_argument("--no-lfw", action="store_true", help="skip LFW")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--no-orl", action="store_true", help="skip ORL")
    parts.add_argument("--orl-only", action="store_true",
                       help="only the manifests' rows and ORL (no cast, speed, memory or LFW)")
    args = parser.parse_args()

    from fr_utils.weights import MODELS, find_weights_dir, load_facenet, read_manifest, weights_path

    models = {name: load_facenet(name=name) for name in MODELS}
    manifests = {name: read_manifest(name=name) for name in MODELS}
    print(f"machine: {machine()}")
    rows: dict[str, list[str]] = {name: [] for name in MODELS}

    def line(name: str, text: str) -> None:
        rows[name].append(text)
        print(f"{name}: {text}", flush=True)

    for name in MODELS:
        v = manifests[name]["verification"]
        line(name, f"{manifests[name]['embedding_size']} numbers, preprocessing {manifests[name]['preprocessing'].split(':')[0]}; "
                   f"View 1 threshold L2 {v['threshold']} (pairsDevTrain accuracy {v['accuracy']}; {v['chosen_on']})")
    if not args.no_orl:
        orl_dir = shared_dataset("orl-faces")
        if orl_dir is not None:
            for pipeline, label in (("whole", "whole photo as the crop"),
                                    ("mtcnn", "MTCNN largest face + proportional box crop")):
                for name in MODELS:
                    r = orl(models[name], orl_dir, float(manifests[name]["verification"]["threshold"]), pipeline)
                    line(name, f"ORL, {label}: faces {r['found']}/{r['photos']}; one-shot identification "
                               f"{r['one_shot']:.4f} (min {r['one_shot_min']:.4f}, max {r['one_shot_max']:.4f} over "
                               f"the enrolled photo); {r['pairs']:,} pairs ({r['genuine']:,} genuine) at the threshold "
                               f"{manifests[name]['verification']['threshold']}: TAR {r['tar']:.4f}, FAR {r['far']:.4f}, "
                               f"accuracy {r['accuracy']:.4f}; 10-fold CV (identity-disjoint, {r['cv_pairs']:,} pairs) "
                               f"accuracy {r['cv_accuracy']:.4f} +- {r['cv_std']:.4f} at {r['cv_threshold']:.3f}; "
                               f"AUC {r['auc']:.5f}, EER {r['eer']:.4f} ({r['seconds']:.0f} s)")
    if args.orl_only:
        return _side_by_side(rows)
    for name in MODELS:
        c = cast_margins(models[name], float(manifests[name]["verification"]["threshold"]))
        line(name, f"cast ({c['photos']} photos, {c['genuine_pairs']} genuine / {c['impostor_pairs']} impostor pairs): "
                   f"max genuine {c['max_genuine']:.3f}, min impostor {c['min_impostor']:.3f}, margin {c['margin']:.3f}; "
                   f"threshold - max genuine {c['genuine_below_threshold']:.3f}, "
                   f"min impostor - threshold {c['impostor_above_threshold']:.3f}")
    rates = throughput(models, args.seconds)
    for name in MODELS:
        mem = memory(name)
        size = weights_path(find_weights_dir(name), name).stat().st_size / 1e6
        line(name, f"{rates[(name, 1)]:.1f} images/s at batch 1, {rates[(name, 32)]:.1f} at batch 32 (fr_utils inference path); "
                   f"peak memory {mem['peak_mib']:.0f} MiB (fresh process: load + 32 faces), {mem['params']:,} parameters, weights file {size:.1f} MB")
    if not args.no_lfw:
        lfw_dir = shared_dataset("lfw-deepfunneled")
        pairs_file = shared_dataset("lfw-protocol", "pairs.txt")
        if lfw_dir is not None and pairs_file is not None:
            for published in ([False, True] if args.published else [False]):
                label = "published options (central, 0.8, flip, mean subtracted, cosine)" if published else \
                    "plain (largest, 0.9, box, no flip, L2)"
                for name in MODELS:
                    r = lfw(models[name], lfw_dir, pairs_file, published)
                    line(name, f"LFW pairs.txt {label}: accuracy {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}, "
                               f"VAL@FAR=1e-3 {r['val_mean']:.4f}, AUC {r['auc']:.5f}, EER {r['eer']:.4f} "
                               f"({r['seconds']:.0f} s)")
    _side_by_side(rows)


def _side_by_side(rows: dict[str, list[str]]) -> None:
    print("\nside by side:")
    for name, texts in rows.items():
        print(f"== {name}")
        for text in texts:
            print(f"   {text}")


if __name__ == "__main__":
    main()
