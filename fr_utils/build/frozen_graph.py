"""The original frozen TensorFlow graph, run through TensorFlow's own graph import.

This is the reference the Keras model is converted from and checked against
(``python -m fr_utils.build.fidelity``); the course itself never needs it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import tensor_util

INPUT_TENSOR = "input:0"
OUTPUT_TENSOR = "embeddings:0"


def parse_graph_def(data: bytes) -> tf.compat.v1.GraphDef:
    """Serialized ``GraphDef`` bytes (a ``.pb`` file's content) -> ``GraphDef``."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    return graph_def


def constants(graph_def: tf.compat.v1.GraphDef) -> dict[str, np.ndarray]:
    """Every ``Const`` node of the graph, by node name, as a numpy array."""
    return {
        node.name: tensor_util.MakeNdarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const"
    }


def frozen_encoder(graph_def: tf.compat.v1.GraphDef) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the imported graph: (1, 160, 160, 3) float32 -> (1, 512).

    The graph's reshapes are fixed to batch 1, so it takes one image per call.
    """

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    pruned = wrapped.prune(
        wrapped.graph.get_tensor_by_name(INPUT_TENSOR),
        wrapped.graph.get_tensor_by_name(OUTPUT_TENSOR),
    )

    def encode(images: np.ndarray) -> np.ndarray:
        return pruned(tf.constant(images, dtype=tf.float32)).numpy()

    return encode
