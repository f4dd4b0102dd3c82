"""Encoder throughput: the Keras model against the original frozen graph, and what bfloat16 changes.

    python benchmarks/encoder_throughput.py [--seconds 10] [--model NAME] [--lfw-pairs N] [--lfw-detect-sides 160]

Prints images/second for
  * the frozen graph (TensorFlow graph import), batch 1: its reshapes fix the batch at 1, so
    "the frozen graph at batch 32" is 32 batch-1 calls: the same images per second;
  * the Keras model through fr_utils' inference path (what img_to_encoding, encode_images and the
    door use), float32 (the default) and bfloat16 (``FR_ENCODER_PRECISION=bfloat16``), batch 1 and 32;
  * the Keras model through plain ``model.predict_on_batch``, batch 1 and batch 32;
then both ratios the issue asks for (Keras batch 1 / frozen graph batch 1, Keras batch 32 / frozen
graph batch 1), the machine, its load and the peak memory. The runs are interleaved in rounds so that a
busy machine slows every contender alike.

``--lfw-pairs N`` (needs ``FR_DATASETS``) then measures what bfloat16 does to verification: N pairs of
LFW's pairs.txt (spread over its 10 folds), each photo's largest face cropped once by MTCNN, every crop
encoded in float32 and in bfloat16: the largest embedding difference, the largest distance difference,
the pairs whose verdict at the model's threshold differs, and the accuracy of each.
``--lfw-detect-sides 160``: the same again with each face found on the photo resized to 160 px on its
longest side (``facedoor serve --detect-side 160``). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _machine import machine, peak_memory_mib


def throughput(contenders: dict, seconds: float, rounds: int) -> dict[str, float]:
    """Images/second of each ``name: (function, batch)``, timed in interleaved rounds."""
    for fn, x in contenders.values():  # warm-up: tracing, grappler, oneDNN primitives
        fn(x)
        fn(x)
    images = dict.fromkeys(contenders, 0)
    spent = dict.fromkeys(contenders, 0.0)
    budget = seconds / rounds
    for _ in range(rounds):
        for name, (fn, x) in contenders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < budget:
                fn(x)
                images[name] += len(x)
            spent[name] += time.perf_counter() - start
    return {name: images[name] / spent[name] for name in contenders}


def lfw_precision(model, n_pairs: int, detect_sides: list[int] = ()) -> None:
    """float32 against bfloat16 on ``n_pairs`` LFW pairs (same crops, only the encoder's arithmetic differs);
    then, for each of ``detect_sides``, both again with the faces found on the photos resized to that side
    (``facedoor serve --detect-side``)."""
    from fr_utils.encoding import _model_input, face_crop, standardization
    from fr_utils.errors import NoFaceError
    from fr_utils.evaluate import read_pairs

    root = os.environ.get("FR_DATASETS")
    if not root:
        print("LFW check skipped: set FR_DATASETS to the folder holding lfw-deepfunneled and lfw-protocol")
        return
    pairs = read_pairs(Path(root) / "lfw-protocol" / "pairs.txt", Path(root) / "lfw-deepfunneled")
    per_fold = max(1, n_pairs // 20)  # as many same-person as different-person pairs from each fold
    chosen = []
    for fold in range(10):
        in_fold = [p for p in pairs if p.fold == fold]
        chosen += [p for p in in_fold if p.same][:per_fold] + [p for p in in_fold if not p.same][:per_fold]
    files = list(dict.fromkeys([p.path_a for p in chosen] + [p.path_b for p in chosen]))
    size, standardize = int(model.input_shape[1]), standardization(model)
    everyone = chosen
    for side in [None, *detect_sides]:
        crops, faceless = {}, 0
        start = time.perf_counter()
        for f in files:
            try:
                crops[f] = _model_input(face_crop(f, max_side=side), size, standardize)
            except NoFaceError:
                faceless += 1
        print(f"LFW: {len(everyone)} pairs, {len(files)} photos, {faceless} without a face, faces found on the "
              f"photos resized to {side or 'the default'} px (MTCNN crops in {time.perf_counter() - start:.0f} s)")
        _compare_precisions(model, [p for p in everyone if p.path_a in crops and p.path_b in crops], crops)


def _compare_precisions(model, chosen, crops) -> None:
    from fr_utils.encoding import inference_function
    from fr_utils.matching import default_threshold, is_match

    x = np.stack(list(crops.values()))
    emb = {}
    for precision in ("float32", "bfloat16"):
        run = inference_function(model, precision)
        out = np.concatenate([run(x[i : i + 32]) for i in range(0, len(x), 32)])
        row = dict(zip(crops, out))
        a = np.stack([row[p.path_a] for p in chosen])
        b = np.stack([row[p.path_b] for p in chosen])
        emb[precision] = (out, np.linalg.norm(a - b, axis=1))
    threshold = default_threshold("euclidean", model=model)
    same = np.array([p.same for p in chosen])
    d32, d16 = emb["float32"][1], emb["bfloat16"][1]
    v32, v16 = is_match(d32, threshold), is_match(d16, threshold)
    print(f"LFW, {len(chosen)} pairs with faces, threshold {threshold}:")
    print(f"  max |embedding float32 - bfloat16| = {np.abs(emb['float32'][0] - emb['bfloat16'][0]).max():.2e}, "
          f"max |distance difference| = {np.abs(d32 - d16).max():.2e}")
    print(f"  verdicts that differ: {int((v32 != v16).sum())}; accuracy float32 {np.mean(v32 == same):.4f}, "
          f"bfloat16 {np.mean(v16 == same):.4f}; closest distance to the threshold {np.abs(d32 - threshold).min():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per contender (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default=None, help="encoder name (default: the default encoder)")
    parser.add_argument("--lfw-pairs", type=int, default=0, help="then compare float32 and bfloat16 on N LFW pairs")
    parser.add_argument("--lfw-detect-sides", default="", help="and again with faces found at these sides, e.g. 160")
    args = parser.parse_args()

    import tensorflow as tf

    from fr_utils.encoding import inference_function
    from fr_utils.weights import load_facenet

    model = load_facenet(name=args.model)
    rng = np.random.default_rng(0)
    side = int(model.input_shape[1])
    x1 = rng.uniform(-1, 1, (1, side, side, 3)).astype(np.float32)
    x32 = rng.uniform(-1, 1, (32, side, side, 3)).astype(np.float32)
    contenders = {}
    if args.model is None:  # the reference graph is the default encoder's
        from fr_utils.build.convert import reference_graph_def
        from fr_utils.build.frozen_graph import frozen_encoder

        contenders["frozen graph, batch 1"] = (frozen_encoder(reference_graph_def()), x1)
    built = {}
    for precision in ("float32", "bfloat16"):
        start = time.perf_counter()
        run = inference_function(model, precision)
        run(x1)
        built[precision] = time.perf_counter() - start
        contenders[f"Keras {precision}, batch 1"] = (run, x1)
        contenders[f"Keras {precision}, batch 32"] = (run, x32)
    contenders["Keras predict_on_batch, batch 1"] = (model.predict_on_batch, x1)
    contenders["Keras predict_on_batch, batch 32"] = (model.predict_on_batch, x32)
    diff = np.abs(inference_function(model, "bfloat16")(x32) - inference_function(model, "float32")(x32)).max()
    before = os.getloadavg()
    rate = throughput(contenders, args.seconds, args.rounds)

    print(f"machine: {machine()}")
    print(f"load average before {before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"TensorFlow {tf.__version__}, intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    print(f"first call (build + trace + first run): float32 {built['float32']:.1f} s, bfloat16 {built['bfloat16']:.1f} s")
    print(f"max |float32 - bfloat16| on 32 random inputs: {diff:.2e}")
    reference = rate.get("frozen graph, batch 1")
    for name in contenders:
        ratio = f"  {rate[name] / reference:5.2f}x frozen graph" if reference else ""
        print(f"{name:36s} {rate[name]:7.1f} images/s  {1000 / rate[name]:6.1f} ms/image{ratio}")
    if reference:
        for precision in ("float32", "bfloat16"):
            b1, b32 = rate[f"Keras {precision}, batch 1"], rate[f"Keras {precision}, batch 32"]
            print(f"Keras {precision}: batch 1 / frozen graph batch 1 = {b1 / reference:.2f}; "
                  f"batch 32 / frozen graph (32 batch-1 calls) = {b32 / reference:.2f}")
    print(f"peak memory (this process): {peak_memory_mib():.0f} MiB")
    if args.lfw_pairs:
        lfw_precision(model, args.lfw_pairs, [int(v) for v in args.lfw_detect_sides.split(",") if v])


if __name__ == "__main__":
    main()
