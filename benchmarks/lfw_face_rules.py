"""Which face of a photo should the door take? LFW accuracy of face-choice rules.

    FR_DATASETS=../shared/datasets python benchmarks/lfw_face_rules.py [--model NAME] [--min-confidence 0.9]

For every image of LFW ``pairs.txt``, every face MTCNN finds (the detection cache
of ``fr_utils.embedding_cache``, confidence >= ``--min-confidence``) is cropped as
the door crops (``fr_utils.align``) and encoded, then each rule below picks one
face per photo, and the plain door pipeline is scored on the 10 folds (L2, no
mean subtraction, threshold chosen on the other folds): accuracy, AUC and how
many photos the rule answers with another face than the largest. The last rows
use the embedding of the crop plus its mirror (test-time flip). The rule the
door uses is ``fr_utils.detect.choose_main`` ("main", ``MAIN_FACE_SHARE``);
``docs/lfw.md`` ("Which face the door takes") gives a run's figures.
Without ``$FR_DATASETS`` it is skipped, saying why. About 4 min on 2 cores once
the detections are cached (two encodings of 8,771 faces).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine, shared_dataset  # noqa: E402


def _area(face: dict) -> float:
    return face["box"][2] * face["box"][3]


def _off_centre(face: dict, shape) -> float:
    x, y, w, h = face["box"]
    return float(np.hypot(x + w / 2 - shape[1] / 2, y + h / 2 - shape[0] / 2))


def _touches_border(face: dict, shape) -> bool:
    x, y, w, h = face["box"]
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]


def rules() -> dict:
    """name -> rule(faces (largest first), image shape) -> index of the face taken."""
    from fr_utils.detect import MAIN_FACE_SHARE, choose_main
    from fr_utils.embedding_cache import choose_face

    def nearest_centre_among(share: float):
        return lambda fs, s: fs.index(choose_main(fs, s, share=share))

    table = {
        "the largest": lambda fs, s: 0,
        "the largest of confidence >= 0.99": lambda fs, s: next((j for j, f in enumerate(fs) if f["confidence"] >= 0.99), 0),
        "area x confidence": lambda fs, s: max(range(len(fs)), key=lambda j: _area(fs[j]) * fs[j]["confidence"]),
        "the largest not touching the border": lambda fs, s: next((j for j, f in enumerate(fs) if not _touches_border(f, s)), 0),
        "Sandberg's central rule": lambda fs, s: fs.index(choose_face(fs, s, "central")),
    }
    for share in (0.1, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        mark = " (the door's)" if share == MAIN_FACE_SHARE else ""
        table[f"nearest the centre among >= {share:g} of the largest{mark}"] = nearest_centre_among(share)
    return table


def main() -> int:
    from fr_utils.detect import MIN_CONFIDENCE, MAIN_FACE_SHARE

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="encoder name (default: the default encoder)")
    parser.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    args = parser.parse_args()
    print(machine())
    lfw = shared_dataset("lfw-deepfunneled")
    pairs_file = shared_dataset("lfw-protocol", "pairs.txt")
    if lfw is None or pairs_file is None:
        return 0

    from fr_utils.align import _cut_box
    from fr_utils.embedding_cache import detect_files
    from fr_utils.encoding import encode_batch
    from fr_utils.evaluate import cross_validate, read_pairs
    from fr_utils.images import load_image
    from fr_utils.weights import load_facenet

    pairs = read_pairs(pairs_file, lfw)
    files = list(dict.fromkeys([p.path_a for p in pairs] + [p.path_b for p in pairs]))
    detections = detect_files(files, min_confidence=args.min_confidence)
    model = load_facenet(name=args.model)
    size = int(model.input_shape[1])
    crops, where, shapes = [], {}, {}
    for i, (path, faces) in enumerate(zip(files, detections)):
        if faces:
            img = load_image(path)
            shapes[i] = img.shape
            for j, face in enumerate(faces):
                where[i, j] = len(crops)
                crops.append(_cut_box(img, face, size))
    plain = encode_batch(crops, model, detect=False, progress=True).embeddings
    mirrored = encode_batch([c[:, ::-1] for c in crops], model, detect=False, progress=True).embeddings
    flipped = plain + mirrored
    flipped /= np.linalg.norm(flipped, axis=1, keepdims=True)
    several = sum(len(faces) > 1 for faces in detections)
    print(f"{len(files)} photos, {len(crops)} faces at confidence >= {args.min_confidence:g}; "
          f"{several} photos hold several (MAIN_FACE_SHARE = {MAIN_FACE_SHARE})")
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    row = {f: i for i, f in enumerate(files)}
    table = rules()
    runs = [(name, rule, plain) for name, rule in table.items()]
    runs += [("mirror too: the largest", table["the largest"], flipped),
             ("mirror too: the door's", table[next(n for n in table if "the door's" in n)], flipped)]
    print(f"{'the face taken':62s} accuracy (10 folds)   AUC      photos not the largest")
    for name, rule, embeddings in runs:
        emb = np.full((len(files), embeddings.shape[1]), np.nan, np.float32)
        other = 0
        for i, faces in enumerate(detections):
            if faces:
                j = rule(faces, shapes[i])
                other += j != 0
                emb[i] = embeddings[where[i, j]]
        res = cross_validate(emb[[row[p.path_a] for p in pairs]], emb[[row[p.path_b] for p in pairs]], same, folds)
        print(f"{name:62s} {res['accuracy_mean']:.4f} +- {res['accuracy_std']:.4f}   {res['auc']:.5f}  {other}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
