"""Encoder throughput: the Keras model against the original frozen graph.

    python benchmarks/encoder_throughput.py [--seconds 10]

Prints images/second for
  * the frozen graph (TensorFlow graph import), batch 1 (its reshapes fix the batch at 1);
  * the Keras model through fr_utils' inference path (what img_to_encoding and
    encode_images use: weights folded into constants), batch 1 and batch 32;
  * the Keras model through plain ``model.predict_on_batch``, batch 1 and batch 32;
and the ratios to the frozen graph, the machine and the peak memory. The runs are interleaved in rounds so that a
busy machine slows every contender alike. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _machine import machine, peak_memory_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per contender (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from fr_utils.build.convert import reference_graph_def
    from fr_utils.build.frozen_graph import frozen_encoder
    from fr_utils.encoding import inference_function
    from fr_utils.weights import load_facenet

    model = load_facenet()
    graph = frozen_encoder(reference_graph_def())
    fast = inference_function(model)
    rng = np.random.default_rng(0)
    x1 = rng.uniform(-1, 1, (1, 160, 160, 3)).astype(np.float32)
    x32 = rng.uniform(-1, 1, (32, 160, 160, 3)).astype(np.float32)
    contenders = {
        "frozen graph, batch 1": (graph, x1),
        "Keras (fr_utils inference), batch 1": (fast, x1),
        "Keras (fr_utils inference), batch 32": (fast, x32),
        "Keras (predict_on_batch), batch 1": (model.predict_on_batch, x1),
        "Keras (predict_on_batch), batch 32": (model.predict_on_batch, x32),
    }
    for fn, x in contenders.values():  # warm-up: tracing, grappler, oneDNN primitives
        fn(x)
        fn(x)
    images = dict.fromkeys(contenders, 0)
    seconds = dict.fromkeys(contenders, 0.0)
    budget = args.seconds / args.rounds
    for _ in range(args.rounds):
        for name, (fn, x) in contenders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < budget:
                fn(x)
                images[name] += len(x)
            seconds[name] += time.perf_counter() - start

    print(f"machine: {machine()}")
    print(f"TensorFlow {tf.__version__}, intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    rate = {name: images[name] / seconds[name] for name in contenders}
    reference = rate["frozen graph, batch 1"]
    for name in contenders:
        print(f"{name:40s} {rate[name]:7.1f} images/s  {1000 / rate[name]:6.1f} ms/image  "
              f"{rate[name] / reference:5.2f}x frozen graph")
    b1, b32 = rate["Keras (fr_utils inference), batch 1"], rate["Keras (fr_utils inference), batch 32"]
    print(f"Keras batch 1 / frozen graph batch 1 = {b1 / reference:.2f}")
    print(f"Keras batch 32 / Keras batch 1 (per image) = {b32 / b1:.2f}")
    print(f"peak memory (this process, both models loaded): {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
