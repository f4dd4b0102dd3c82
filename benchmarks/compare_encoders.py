"""The two pretrained encoders side by side: 512-number 20180408-102900 and 128-number 20170512-110547.

    FR_DATASETS=../shared/datasets python benchmarks/compare_encoders.py [--published] [--seconds 10] [--no-lfw]

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
    between them, and each side's distance to the encoder's own threshold.
Asserts nothing. Without ``$FR_DATASETS`` the LFW rows are skipped, saying why.
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
    emb = embed_files(files, model, flip=published, face="central" if published else "largest",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per speed contender (default 10)")
    parser.add_argument("--published", action="store_true", help="also LFW with Sandberg's options (flip: 2x encoding)")
    parser.add_argument("--no-lfw", action="store_true", help="skip LFW")
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
    print("\nside by side:")
    for name in MODELS:
        print(f"== {name}")
        for text in rows[name]:
            print(f"   {text}")


if __name__ == "__main__":
    main()
