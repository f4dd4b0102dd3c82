"""1:K identification on LFW with one enrolled photo per person (the door without badges).

    FR_DATASETS=../shared/datasets python benchmarks/lfw_identification.py [--timed 100]

Gallery: for every LFW person with at least 2 photos, their first photo
(sorted by file name) is enrolled in an in-memory :class:`FaceDatabase`
(1,680 people). Probes: their other photos (7,484). Unenrolled probes: the
photos of the people with exactly one photo (4,069), who are not in the gallery.

Printed:

* top-1 accuracy: the nearest enrolled person is the right one (threshold ignored);
* open set at the default threshold (the model's, from its manifest): probes
  accepted as the right person, accepted as someone else, rejected;
* false-accept rate for unenrolled people: the fraction of their photos
  identified as someone (nearest distance < threshold, ``fr_utils.matching.is_match``);
* the same figures at a few other thresholds, and at the thresholds where 1% and
  0.1% of the unenrolled people's photos are accepted;
* milliseconds per query: ``FaceDatabase.identify(photo)`` end to end (reading,
  detection, encoding, search) on ``--timed`` random probes, and the search
  alone (``FaceDatabase.nearest``) against the whole gallery, over every probe.

Embeddings come from :func:`fr_utils.evaluate.embed_files` (cached on disk,
same pipeline as ``FaceDatabase``: MTCNN, largest face, 32-px margin); a photo
with no detected face is never accepted (a person whose gallery photo has no
face cannot be enrolled, and all their probes count as errors). Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from _machine import shared_dataset


def split(lfw: Path, limit: int | None = None) -> tuple[dict[str, Path], list[tuple[str, Path]], list[Path]]:
    """(gallery {name: first photo}, probes [(name, photo)], unenrolled photos) of the
    first ``limit`` person folders (sorted; all by default)."""
    gallery, probes, unenrolled = {}, [], []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:limit]:
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2:
            gallery[person.name] = photos[0]
            probes.extend((person.name, p) for p in photos[1:])
        elif photos:
            unenrolled.append(photos[0])
    return gallery, probes, unenrolled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw-dir", type=Path, default=None)
    parser.add_argument("--timed", type=int, default=100, help="probes timed end to end (default 100)")
    parser.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    parser.add_argument("--limit", type=int, default=None, help="only the first N people (sorted), for a quick run")
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default: embed_files')")
    args = parser.parse_args()
    lfw = shared_dataset("lfw-deepfunneled", given=args.lfw_dir, flag="--lfw-dir")
    if lfw is None:
        return 0

    from fr_utils.database import FaceDatabase
    from fr_utils.evaluate import embed_files
    from fr_utils.matching import is_match

    gallery, probes, unenrolled = split(lfw, args.limit)
    paths = list(gallery.values()) + [p for _, p in probes] + unenrolled
    print(f"gallery {len(gallery)} people (one photo each), {len(probes)} probes of them, "
          f"{len(unenrolled)} photos of {len(unenrolled)} people not enrolled")
    start = time.perf_counter()
    emb = embed_files(paths, cache_dir=args.cache_dir, progress=True)
    print(f"embeddings of {len(paths)} photos: {time.perf_counter() - start:.0f} s (cached on disk)")
    g_emb = emb[: len(gallery)]
    p_emb = emb[len(gallery) : len(gallery) + len(probes)]
    u_emb = emb[len(gallery) + len(probes) :]

    db = FaceDatabase(None, metric=args.metric)
    no_face_gallery = 0
    for (name, path), e in zip(gallery.items(), g_emb):
        if np.isnan(e).any():
            no_face_gallery += 1
            continue
        db.add_embeddings(name, e, sources=[str(path)])
    threshold = db.threshold
    print(f"enrolled {len(db)} people ({no_face_gallery} gallery photos without a detected face); "
          f"metric {args.metric}, default threshold {threshold:.4f}")

    def search(rows: np.ndarray) -> tuple[list[str | None], np.ndarray, float]:
        names, dists, seconds = [], np.full(len(rows), np.inf), 0.0
        for i, e in enumerate(rows):
            if np.isnan(e).any():
                names.append(None)
                continue
            t0 = time.perf_counter()
            name, d = db.nearest(e)[0]
            seconds += time.perf_counter() - t0
            names.append(name)
            dists[i] = d
        return names, dists, seconds

    p_names, p_dist, p_seconds = search(p_emb)
    _, u_dist, u_seconds = search(u_emb)
    truth = np.array([n for n, _ in probes])
    right = np.array([n == t for n, t in zip(p_names, truth)])
    no_face = int(np.isinf(p_dist).sum())
    print(f"probes without a detected face: {no_face} of {len(probes)}, unenrolled: {int(np.isinf(u_dist).sum())} "
          f"of {len(unenrolled)} (never accepted)")
    print(f"top-1 accuracy (nearest person, threshold ignored): {right.mean():.4f} ({right.sum()}/{len(probes)})")

    def open_set(t: float) -> str:
        accepted = is_match(p_dist, t)
        correct = (accepted & right).mean()
        wrong = (accepted & ~right).mean()
        far = is_match(u_dist, t).mean()
        return (f"threshold {t:.3f}: enrolled probes accepted as the right person {correct:.4f}, "
                f"as someone else {wrong:.4f}, rejected {1 - correct - wrong:.4f}; "
                f"unenrolled people accepted (false-accept rate) {far:.4f}")

    print("open set at the default threshold:\n  " + open_set(threshold))
    print("other thresholds:")
    for t in sorted({0.8, 0.9, 1.0, 1.1, 1.2} - {threshold}):
        print("  " + open_set(t if args.metric == "euclidean" else t * t / 2))
    for far in (0.01, 0.001):
        t = float(np.nextafter(np.quantile(u_dist, far, method="lower"), np.inf))  # "<": that photo included
        print(f"threshold for a {far:.1%} false-accept rate of unenrolled people:\n  " + open_set(t))
    searched = int(np.isfinite(p_dist).sum() + np.isfinite(u_dist).sum())
    print(f"search alone (FaceDatabase.nearest, {len(db)} people): "
          f"{(p_seconds + u_seconds) / searched * 1000:.3f} ms/query over {searched} queries")

    timed = random.Random(0).sample(probes, min(args.timed, len(probes)))
    db.identify(timed[0][1])  # warm-up: loads the model, builds the detector and the inference graph
    times, agree = [], []
    for (name, path) in timed:
        t0 = time.perf_counter()
        db.identify(path)
        times.append(time.perf_counter() - t0)
    for (name, path) in timed[:10]:  # the cache's pipeline is the database's
        i = len(gallery) + probes.index((name, path))
        if not np.isnan(emb[i]).any():
            agree.append(float(np.abs(db.encode(path) - emb[i]).max()))
    ms = np.array(times) * 1000
    print(f"identify(photo) end to end (read, detect, encode, search): mean {ms.mean():.1f} ms, "
          f"median {np.median(ms):.1f} ms per query over {len(ms)} probes")
    print(f"cached embeddings vs FaceDatabase.encode on {len(agree)} probes: max |difference| {max(agree):.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
