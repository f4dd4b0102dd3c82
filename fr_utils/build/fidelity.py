"""Fidelity of the converted Keras encoders against their originals.

``python -m fr_utils.build.fidelity --model facenet_20180408-102900`` (``make fidelity``) encodes
real face images with the 512-number encoder and with its original frozen graph and prints
the largest absolute difference between their embeddings, per image source:

* LFW (``--lfw-dir``, default ``$FR_DATASETS/lfw-deepfunneled``): the first
  image of ``--n`` people spread evenly over the alphabet; skipped when absent;
* the sample cast shipped in ``fr_utils/cast/people`` (fr_utils.data): each photo whole and centre-cropped,
  each as is and mirrored.

The Keras side is checked twice: through ``model.predict_on_batch`` and through
the inference path ``img_to_encoding`` uses (weights folded into constants).

Without ``--model`` (or ``--model facenet_20170512-110547``) it checks the default 128-number encoder, against
its source HDF5 file's own layer graph rebuilt in plain TensorFlow ops
(:func:`fr_utils.build.keras_h5.h5_reference`, batch norms unfolded), on
prewhitened inputs; the file's output is L2-normalised for the comparison, and the
unnormalised bottlenecks are compared too (:attr:`FidelityReport.max_abs_diff_raw`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fr_utils.data import cast_dir
from fr_utils.datasets import dataset_path
from fr_utils.errors import DatasetsNotFound
from fr_utils.images import as_rgb_array, is_image_file

TOLERANCE = 1e-5


@dataclass
class FidelityReport:
    source: str
    n_images: int
    max_abs_diff: float  # over every embedding coordinate of every image, both Keras paths
    max_abs_diff_predict: float  # model.predict_on_batch only
    max_abs_diff_inference: float  # fr_utils' inference path only
    #: 128-number encoder only: the bottleneck before L2 normalisation, Keras against the file's graph,
    #: and the largest |value| of that bottleneck (for scale).
    max_abs_diff_raw: float | None = None
    max_abs_raw: float | None = None


def lfw_dir_from_env() -> Path | None:
    """``$FR_DATASETS/lfw-deepfunneled``, or None (saying why) when it is not there."""
    try:
        return dataset_path("lfw-deepfunneled")
    except DatasetsNotFound as err:
        print(f"LFW: skipped ({err})")
        return None


def lfw_images(lfw_dir: Path, n: int = 50) -> list[Path]:
    """The first image of ``n`` people spread evenly over LFW's sorted names."""
    people = sorted(p for p in Path(lfw_dir).iterdir() if p.is_dir())
    if not people:
        raise FileNotFoundError(f"{lfw_dir}: no person folders (expected LFW's <Name>/<Name>_0001.jpg)")
    picks = [people[int(i)] for i in np.linspace(0, len(people) - 1, min(n, len(people)))]
    return [sorted(p.glob("*.jpg"))[0] for p in picks]


def shipped_images(images_dir: Path | None = None) -> list[np.ndarray]:
    """Every photo of the sample cast (``fr_utils/cast/people``) as four inputs: whole and
    centre-cropped, each as is and mirrored."""
    images_dir = images_dir or cast_dir() / "people"
    out: list[np.ndarray] = []
    for path in sorted(images_dir.rglob("*")):
        if not is_image_file(path):
            continue
        img = as_rgb_array(path)
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = img[top : top + side, left : left + side]
        out += [img, img[:, ::-1], crop, crop[:, ::-1]]
    return out


def compare(images: list, source: str, model=None, graph_encoder=None) -> FidelityReport:
    """Encode ``images`` (paths or RGB arrays) with the 512-number Keras encoder and with its frozen graph."""
    from fr_utils.build.convert import reference_graph_def
    from fr_utils.build.frozen_graph import frozen_encoder
    from fr_utils.build.sources import GRAPH_MODEL
    from fr_utils.encoding import _model_input, inference_function
    from fr_utils.images import fixed_image_standardization
    from fr_utils.weights import load_facenet

    model = model or load_facenet(name=GRAPH_MODEL)
    graph_encoder = graph_encoder or frozen_encoder(reference_graph_def())
    # the input the frozen graph expects, whatever ``model`` is
    x = np.stack([_model_input(as_rgb_array(img), 160, fixed_image_standardization) for img in images])
    reference = np.concatenate([graph_encoder(x[i : i + 1]) for i in range(len(x))])
    by_predict = np.concatenate([model.predict_on_batch(x[i : i + 16]) for i in range(0, len(x), 16)])
    by_inference = inference_function(model)(x)
    d_predict = float(np.max(np.abs(by_predict - reference)))
    d_inference = float(np.max(np.abs(by_inference - reference)))
    return FidelityReport(source, len(x), max(d_predict, d_inference), d_predict, d_inference)


def compare_h5(images: list, source: str, model=None, reference=None) -> FidelityReport:
    """Encode ``images`` with the converted 128-number encoder and with its source file's own graph."""
    import keras

    from fr_utils.build.keras_h5 import NAME, h5_model, h5_reference, l2_normalize
    from fr_utils.encoding import inference_function
    from fr_utils.weights import load_facenet

    model = model or load_facenet(name=NAME)
    reference = reference or h5_reference(h5_model())
    from fr_utils.encoding import _model_input
    from fr_utils.images import prewhiten

    # the input the source file expects, whatever ``model`` is
    x = np.stack([_model_input(as_rgb_array(img), 160, prewhiten) for img in images])
    raw_reference = reference(x)
    unit_reference = l2_normalize(raw_reference)
    by_predict = np.concatenate([model.predict_on_batch(x[i : i + 16]) for i in range(0, len(x), 16)])
    by_inference = inference_function(model)(x)
    bottleneck = keras.Model(model.input, model.get_layer("Bottleneck.BatchNorm").output)
    raw = np.concatenate([bottleneck.predict_on_batch(x[i : i + 16]) for i in range(0, len(x), 16)])
    d_predict = float(np.max(np.abs(by_predict - unit_reference)))
    d_inference = float(np.max(np.abs(by_inference - unit_reference)))
    return FidelityReport(source, len(x), max(d_predict, d_inference), d_predict, d_inference,
                          float(np.max(np.abs(raw - raw_reference))), float(np.max(np.abs(raw_reference))))


def _main_h5(args) -> int:
    from fr_utils.build.keras_h5 import NAME, h5_model, h5_reference
    from fr_utils.weights import load_facenet

    model = load_facenet(name=NAME)
    reference = h5_reference(h5_model())
    reports = [compare_h5(shipped_images(), "fr_utils/cast/people (shipped photos x4)", model, reference)]
    lfw = args.lfw_dir or lfw_dir_from_env()
    if lfw is not None:
        reports.append(compare_h5(lfw_images(lfw, args.n), f"LFW ({lfw})", model, reference))
    worst = 0.0
    for r in reports:
        print(
            f"{r.source}: {r.n_images} images, max |Keras - the h5's own graph| = {r.max_abs_diff:.3g} "
            f"(unit embeddings; predict_on_batch {r.max_abs_diff_predict:.3g}, inference path "
            f"{r.max_abs_diff_inference:.3g}); before L2 normalisation {r.max_abs_diff_raw:.3g} "
            f"(largest |value| {r.max_abs_raw:.3g})"
        )
        worst = max(worst, r.max_abs_diff)
    verdict = "OK" if worst <= TOLERANCE else "FAIL"
    print(f"{NAME}: overall max |difference| = {worst:.3g} (tolerance {TOLERANCE:g}): {verdict}")
    return 0 if verdict == "OK" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fr_utils.build.fidelity", description=__doc__.split("\n")[0])
    parser.add_argument("--lfw-dir", type=Path, default=None, help="LFW folder (default: $FR_DATASETS/lfw-deepfunneled)")
    parser.add_argument("--n", type=int, default=50, help="number of LFW images (default 50)")
    parser.add_argument("--model", default=None, help="the encoder, by name (default: the default encoder, "
                        "facenet_20170512-110547, against its HDF5 file's own graph; facenet_20180408-102900: "
                        "against its frozen TensorFlow graph)")
    args = parser.parse_args(argv)
    from fr_utils.build.sources import GRAPH_MODEL
    from fr_utils.weights import check_model_name

    if check_model_name(args.model) != GRAPH_MODEL:
        return _main_h5(args)

    from fr_utils.build.convert import reference_graph_def
    from fr_utils.build.frozen_graph import frozen_encoder
    from fr_utils.weights import load_facenet

    model = load_facenet(name=GRAPH_MODEL)
    graph = frozen_encoder(reference_graph_def())
    reports = [compare(shipped_images(), "fr_utils/cast/people (shipped photos x4)", model, graph)]
    lfw = args.lfw_dir or lfw_dir_from_env()
    if lfw is not None:
        reports.append(compare(lfw_images(lfw, args.n), f"LFW ({lfw})", model, graph))
    worst = 0.0
    for r in reports:
        print(
            f"{r.source}: {r.n_images} images, max |Keras - frozen graph| = {r.max_abs_diff:.3g} "
            f"(predict_on_batch {r.max_abs_diff_predict:.3g}, inference path {r.max_abs_diff_inference:.3g})"
        )
        worst = max(worst, r.max_abs_diff)
    verdict = "OK" if worst <= TOLERANCE else "FAIL"
    print(f"overall max |difference| = {worst:.3g} (tolerance {TOLERANCE:g}): {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
