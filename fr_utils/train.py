"""Train your own face embedding with the triplet loss and watch the identities separate.

    python -m fr_utils.train --path DIR --n-faces N --dim D --scale M --margin A \\
        --epochs E --batch-size B --output OUT [--network cnn|head] [--seed S] ...
    python -m fr_utils.train --dataset digits --output OUT ...      # offline, scikit-learn's digits

* Data: ``DIR/<person>/*`` images (see :mod:`fr_utils.datasets`): the first N
  identities with at least 2 images train, the next ``--n-eval`` are held out.
* Networks: ``cnn``, a small CNN trained from scratch on the images, or ``head``,
  two Dense layers trained on top of the frozen pretrained encoder
  (``fr_utils.load_facenet()``), whose 128-d embeddings are computed once.
  Both end in ``Dense(D)``, ``UnitNormalization`` and ``Rescaling(M)``: the
  embeddings lie on the sphere of radius M, squared distances in [0, 4 M^2],
  and the margin is in the same units.
* Loss: :mod:`fr_utils.triplet_mining`, online semi-hard mining on batches of
  P identities x K images (``--batch-size B = P x K``, ``--per-identity K``).
* Writes to OUT: ``model.keras``, ``history.json``, ``clusters/epoch_NNN.png``
  (epoch 0 = before training) and ``training.gif``.  Held-out verification
  accuracy (best threshold, 10-fold cross-validation, :mod:`fr_utils.evaluate`)
  is printed before and after.

Exit codes: 0 trained; 2 bad arguments, unusable data, or (``--network head``) missing
or damaged pretrained weights; the message names the value, folder or file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fr_utils.datasets import Dataset, Split, load_digits, load_folder
from fr_utils.errors import DatasetError, WeightsError, report

PLOT_IDENTITIES = 10  # identities drawn in each panel of the cluster plots
PLOT_PER_IDENTITY = 20  # images per identity drawn
MAX_PAIRS = 3000  # held-out pairs of each kind (same / different identity)


@dataclass
class TrainConfig:
    """Everything one training run depends on (the command line's options)."""

    output: str
    path: str | None = None
    dataset: str = "folder"  # "folder" or "digits"
    n_faces: int = 7
    n_eval: int = 3
    dim: int = 2
    scale: float = 1.0
    margin: float = 0.2
    epochs: int = 10
    batch_size: int = 56
    per_identity: int = 8
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    network: str = "cnn"  # "cnn" or "head"
    image_size: int = 64
    center_crop: float = 1.0
    max_per_identity: int | None = None
    augment: bool = False
    seed: int = 0


@dataclass
class TrainResult:
    """What :func:`train` produced: the trained model and the history written to history.json."""

    model: object
    history: dict = field(default_factory=dict)


# -- networks -------------------------------------------------------------------


def _embedding_top(x, dim: int, scale: float):
    import keras

    x = keras.layers.Dense(dim, name="embedding")(x)
    x = keras.layers.UnitNormalization(name="unit_norm")(x)
    return keras.layers.Rescaling(scale, name="scale")(x)


def small_cnn(input_shape: tuple[int, int, int], dim: int, scale: float = 1.0, augment: bool = False):
    """A small CNN: (m, S, S, C) images in 0-255 -> (m, dim) embeddings of length ``scale``.

    Conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool; 32, 64, 128, ... filters)
    halve the image until it is at most 4 pixels wide (one block for 8x8 digits,
    four for 64x64 faces), then Flatten, Dense(dim), UnitNormalization and
    Rescaling(scale).  ``augment`` adds random horizontal flips, shifts (up to 8%)
    and zooms (up to 10%), active only in training.  Batch norm uses momentum 0.9,
    so its statistics follow short trainings.  Plain Keras layers only, so the
    saved model loads anywhere.
    """
    import keras

    size = min(input_shape[:2])
    blocks = max(1, int(math.ceil(math.log2(size / 4))))
    inputs = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Rescaling(1.0 / 255.0, name="to_unit_range")(inputs)
    if augment:
        x = keras.layers.RandomFlip("horizontal", name="flip")(x)
        x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", name="shift")(x)
        x = keras.layers.RandomZoom(0.1, fill_mode="nearest", name="zoom")(x)
    for block in range(blocks):
        x = keras.layers.Conv2D(32 * 2**block, 3, padding="same", use_bias=False, name=f"conv{block + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{block + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{block + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{block + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _embedding_top(x, dim, scale), name="small_cnn")


def embedding_head(dim: int, scale: float = 1.0, input_dim: int = 128, hidden: int = 256):
    """A small head for the frozen encoder: (m, input_dim) embeddings -> (m, dim) of length ``scale``.

    Dense(hidden, ReLU), Dense(dim), UnitNormalization, Rescaling(scale).
    """
    import keras

    inputs = keras.Input(shape=(input_dim,), name="facenet_embeddings")
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, _embedding_top(x, dim, scale), name="embedding_head")


# -- batches of P identities x K images ------------------------------------------


def identity_batch(labels: np.ndarray, identities: int, per_identity: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one batch: ``identities`` distinct labels, ``per_identity`` rows of each
    (without replacement when the identity has that many rows, else with).

    Returns:
        (identities * per_identity,) int64 indices into ``labels``, grouped by identity.
    """
    by_label = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    chosen = rng.choice(len(by_label), size=identities, replace=False)
    return np.concatenate(
        [rng.choice(by_label[c], size=per_identity, replace=len(by_label[c]) < per_identity) for c in chosen]
    )


def _batches(inputs: np.ndarray, labels: np.ndarray, config: TrainConfig, steps: int):
    import keras

    identities = config.batch_size // config.per_identity

    class IdentityBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int):
            rng = np.random.default_rng([config.seed, self.epoch, index])
            rows = identity_batch(labels, identities, config.per_identity, rng)
            return inputs[rows], labels[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return IdentityBatches()


# -- held-out verification -----------------------------------------------------------


def verification_pairs(labels: np.ndarray, max_pairs: int = MAX_PAIRS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows for verification: every same-identity pair (at most ``max_pairs``,
    drawn at random beyond that) and as many different-identity pairs, drawn at random.

    Returns:
        pairs (p, 2) int64 row indices, same (p,) bool.
    """
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    positives = np.flatnonzero(same)
    negatives = np.flatnonzero(~same)
    n = min(len(positives), len(negatives), max_pairs)
    keep = np.concatenate([rng.choice(positives, n, replace=False), rng.choice(negatives, n, replace=False)])
    return np.stack([i[keep], j[keep]], axis=1), same[keep]


def verification_accuracy(embeddings: np.ndarray, pairs: np.ndarray, same: np.ndarray) -> float:
    """Held-out verification accuracy: LFW-style 10-fold cross-validation, each fold
    judged with the best threshold on L2 distance found on the other nine
    (:func:`fr_utils.evaluate.cross_validate`).

    Args:
        embeddings: (n, d); pairs: (p, 2) row indices; same: (p,) bool.
    """
    from fr_utils.evaluate import cross_validate

    result = cross_validate(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]], same, np.zeros(len(same), dtype=int))
    return result["accuracy_mean"]


# -- cluster plots ------------------------------------------------------------------


def _plot_rows(split: Split, seed: int) -> np.ndarray:
    """Rows drawn in the cluster plots: up to PLOT_PER_IDENTITY images of each of the
    first PLOT_IDENTITIES identities."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in range(min(PLOT_IDENTITIES, len(split.names))):
        of_label = np.flatnonzero(split.labels == label)
        rows.append(np.sort(rng.choice(of_label, min(PLOT_PER_IDENTITY, len(of_label)), replace=False)))
    return np.concatenate(rows)


def project_2d(frames: list[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """Per-epoch (n, D) embeddings -> (n, 2) coordinates.  D = 2: as they are;
    D > 2: onto the first two principal axes of the *last* frame (PCA fitted once,
    on the final embeddings, so every frame is drawn in the same coordinates)."""
    if frames[-1].shape[1] == 2:
        return frames, "embedding coordinates"
    final = frames[-1]
    mean = final.mean(axis=0)
    _, _, vt = np.linalg.svd(final - mean, full_matrices=False)
    return [(f - mean) @ vt[:2].T for f in frames], "PCA of the final embeddings (first two axes)"


def save_cluster_plots(
    frames: list[tuple[np.ndarray, np.ndarray]],
    labels: tuple[np.ndarray, np.ndarray],
    names: tuple[list[str], list[str]],
    accuracies: list[float],
    out_dir: Path,
) -> list[Path]:
    """One PNG per epoch (two panels: training and held-out identities) and
    ``training.gif`` of them all.

    Args:
        frames: per epoch, (train (n1, D), held-out (n2, D)) embeddings of the plotted rows.
        labels: their labels, (n1,) and (n2,); names: identity names by label.
        accuracies: held-out verification accuracy per epoch.
    Returns:
        the PNG paths, epoch 0 first; the GIF is ``out_dir / "training.gif"``.
    """
    from matplotlib.figure import Figure
    from PIL import Image

    n1 = len(labels[0])
    stacked, how = project_2d([np.concatenate([a, b]) for a, b in frames])
    everything = np.concatenate(stacked)
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.08 * (high - low).max() + 1e-6
    (out_dir / "clusters").mkdir(parents=True, exist_ok=True)
    paths = []
    for epoch, (points, accuracy) in enumerate(zip(stacked, accuracies)):
        fig = Figure(figsize=(10, 5), layout="constrained")
        for ax, xy, lab, nm, title in zip(
            fig.subplots(1, 2),
            (points[:n1], points[n1:]),
            labels,
            names,
            ("training identities", f"held-out identities (verification accuracy {accuracy:.3f})"),
        ):
            for label in np.unique(lab):
                mask = lab == label
                ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color=f"C{label % 10}", label=nm[label][:18])
            ax.set_xlim(low[0] - pad, high[0] + pad)
            ax.set_ylim(low[1] - pad, high[1] + pad)
            ax.set_aspect("equal")
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=7, loc="upper right", markerscale=1.2)
        fig.suptitle(f"epoch {epoch}{' (before training)' if epoch == 0 else ''} - {how}")
        path = out_dir / "clusters" / f"epoch_{epoch:03d}.png"
        fig.savefig(path, dpi=72)
        paths.append(path)
    images = [Image.open(p).convert("RGB") for p in paths]
    images[0].save(out_dir / "training.gif", save_all=True, append_images=images[1:], duration=600, loop=0)
    return paths


# -- training ----------------------------------------------------------------------------


def _check(config: TrainConfig) -> None:
    problems = []
    if config.dim < 2:
        problems.append(f"--dim must be at least 2, got {config.dim}")
    if not config.scale > 0:
        problems.append(f"--scale must be positive, got {config.scale}")
    if not config.margin > 0:
        problems.append(f"--margin must be positive, got {config.margin}")
    if config.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {config.epochs}")
    if config.per_identity < 2:
        problems.append(f"--per-identity must be at least 2 (anchor and positive), got {config.per_identity}")
    elif config.batch_size % config.per_identity or config.batch_size // config.per_identity < 2:
        problems.append(
            f"--batch-size {config.batch_size} must be a multiple of --per-identity {config.per_identity} "
            "holding at least 2 identities (B = P x K)"
        )
    elif config.batch_size // config.per_identity > config.n_faces:
        problems.append(
            f"--batch-size {config.batch_size} / --per-identity {config.per_identity} = "
            f"{config.batch_size // config.per_identity} identities per batch, more than --n-faces {config.n_faces}"
        )
    if config.image_size < 8:
        problems.append(f"--image-size must be at least 8, got {config.image_size}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        problems.append(f"--steps-per-epoch must be at least 1, got {config.steps_per_epoch}")
    if config.dataset not in ("folder", "digits"):
        problems.append(f"--dataset must be 'folder' or 'digits', got {config.dataset!r}")
    elif config.dataset == "folder" and not config.path:
        problems.append("--path DIR is required for a folder data set (or use --dataset digits)")
    elif config.dataset == "digits" and config.path:
        problems.append("--path is for folder data sets; --dataset digits needs none")
    if config.network not in ("cnn", "head"):
        problems.append(f"--network must be 'cnn' or 'head', got {config.network!r}")
    elif config.network == "head" and config.dataset == "digits":
        problems.append("--network head runs the pretrained face encoder: it needs a folder of faces, not digits")
    if problems:
        raise DatasetError("; ".join(problems))


def load_dataset(config: TrainConfig) -> Dataset:
    """The data set the configuration names (images sized for its network)."""
    if config.dataset == "digits":
        return load_digits(config.n_faces, config.n_eval)
    size = 160 if config.network == "head" else config.image_size
    return load_folder(
        config.path, config.n_faces, config.n_eval, image_size=size,
        center_crop=config.center_crop, max_per_identity=config.max_per_identity,
    )


def _network_inputs(dataset: Dataset, config: TrainConfig, verbose: int):
    """(model, training inputs, held-out inputs): images for the CNN, the embeddings of
    the frozen encoder (128-d for the default; computed once) for the head."""
    if config.network == "cnn":
        model = small_cnn(dataset.train.images.shape[1:], config.dim, config.scale, config.augment)
        return model, dataset.train.images.astype("float32"), dataset.heldout.images.astype("float32")
    from fr_utils.encoding import encode_images
    from fr_utils.weights import load_facenet

    encoder = load_facenet()
    features = [encode_images(list(s.images), encoder, detect=False, progress=verbose == 1) for s in (dataset.train, dataset.heldout)]
    return embedding_head(config.dim, config.scale, input_dim=features[0].shape[1]), features[0], features[1]


def train(config: TrainConfig, verbose: int = 1) -> TrainResult:
    """Train an embedding as ``config`` says and write everything to ``config.output``.

    ``verbose``: 0 silent, 1 a progress bar, 2 one line per epoch; with 1 and 2 the
    held-out accuracy is printed before and after training.

    Returns:
        :class:`TrainResult` with the trained model and the history (also in history.json).
    Raises:
        DatasetError: a bad option or unusable data, with a message naming it.
    """
    started = time.perf_counter()
    _check(config)
    dataset = load_dataset(config)  # before TensorFlow starts, so bad data fails fast

    import keras

    from fr_utils.triplet_mining import SemiHardTripletLoss, active_triplets_metric

    keras.utils.set_random_seed(config.seed)
    model, train_inputs, heldout_inputs = _network_inputs(dataset, config, verbose)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)

    pairs, same = verification_pairs(dataset.heldout.labels, seed=config.seed)
    train_rows, heldout_rows = _plot_rows(dataset.train, config.seed), _plot_rows(dataset.heldout, config.seed)
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    accuracies: list[float] = []

    def snapshot() -> None:
        heldout = model.predict(heldout_inputs, batch_size=256, verbose=0)
        accuracies.append(verification_accuracy(heldout, pairs, same))
        frames.append((model.predict(train_inputs[train_rows], batch_size=256, verbose=0), heldout[heldout_rows]))

    snapshot()
    baseline = None
    if config.network == "head":  # the frozen encoder's own embeddings
        baseline = verification_accuracy(heldout_inputs, pairs, same)
    if verbose:
        print(f"{dataset.source}: {len(dataset.train.names)} training identities ({len(dataset.train)} images), "
              f"{len(dataset.heldout.names)} held-out ({len(dataset.heldout)} images, {len(pairs)} pairs)")
        if baseline is not None:
            print(f"held-out verification accuracy of the frozen encoder alone ({heldout_inputs.shape[1]}-d): {baseline:.4f}")
        print(f"held-out verification accuracy before training: {accuracies[0]:.4f}")

    steps = config.steps_per_epoch or max(1, math.ceil(len(dataset.train) / config.batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=SemiHardTripletLoss(config.margin),
        metrics=[active_triplets_metric(config.margin)],
    )
    fit = model.fit(
        _batches(train_inputs, dataset.train.labels, config, steps),
        epochs=config.epochs,
        verbose=verbose,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshot())],
    )

    # saved without the compiled loss, so keras.models.load_model needs no custom objects
    keras.Model(model.inputs, model.outputs, name=model.name).save(out / "model.keras")
    save_cluster_plots(
        frames,
        (dataset.train.labels[train_rows], dataset.heldout.labels[heldout_rows]),
        (dataset.train.names, dataset.heldout.names),
        accuracies,
        out,
    )
    history = {
        "config": asdict(config),
        "data": {
            "source": dataset.source,
            "train_identities": len(dataset.train.names),
            "train_images": len(dataset.train),
            "heldout_identities": dataset.heldout.names,
            "heldout_images": len(dataset.heldout),
            "heldout_pairs": len(pairs),
        },
        "steps_per_epoch": steps,
        "epoch": list(range(1, config.epochs + 1)),
        "loss": [float(v) for v in fit.history["loss"]],
        "active_triplets": [float(v) for v in fit.history["active_triplets"]],
        "heldout_accuracy": accuracies,  # index 0: before training, then after each epoch
        "heldout_accuracy_before": accuracies[0],
        "heldout_accuracy_after": accuracies[-1],
        "encoder_alone_accuracy": baseline,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "history.json").write_text(json.dumps(history, indent=2))
    if verbose:
        print(f"held-out verification accuracy after {config.epochs} epoch{'s' * (config.epochs != 1)}: {accuracies[-1]:.4f} "
              f"(before: {accuracies[0]:.4f}); {history['seconds']} s; written to {out}")
    return TrainResult(model, history)


# -- command line ------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fr_utils.train",
        description="Train an embedding with the triplet loss (online semi-hard mining) and plot it.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--path", help="folder of <person>/<images> (jpg, png, pgm, ...)")
    data.add_argument("--dataset", choices=("folder", "digits"), help="'digits': scikit-learn's handwritten digits, offline (default: folder)")
    data.add_argument("--n-faces", type=int, default=None, help="training identities: the first N with >= 2 images (default 7 digits, 30 for folders)")
    data.add_argument("--n-eval", type=int, default=None, help="held-out identities, the next ones after the first N (default 3 digits, 10 for folders)")
    data.add_argument("--image-size", type=int, default=64, help="folder images are resized to PX x PX for the CNN (default 64; digits stay 8x8)")
    data.add_argument("--center-crop", type=float, default=1.0, help="keep the central square of this fraction of the shorter side first (e.g. 0.5 for LFW)")
    data.add_argument("--max-per-identity", type=_positive_int, default=None, help="read at most this many images per identity")
    net = parser.add_argument_group("network and loss")
    net.add_argument("--network", choices=("cnn", "head"), default="cnn", help="cnn: small CNN from scratch; head: Dense head on the frozen pretrained encoder")
    net.add_argument("--dim", type=int, default=2, help="embedding size D (default 2)")
    net.add_argument("--scale", type=float, default=1.0, help="embeddings have length M: squared distances in [0, 4 M^2] (default 1)")
    net.add_argument("--margin", type=float, default=0.2, help="triplet margin alpha, a squared distance (default 0.2)")
    net.add_argument("--augment", action="store_true", help="random flips, shifts and zooms while training (faces, CNN)")
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=10)
    fit.add_argument("--batch-size", type=int, default=None, help="B = P identities x K images (default 56 digits, 64 folders)")
    fit.add_argument("--per-identity", type=int, default=None, help="K images of each identity in a batch (default 8 digits, 4 folders)")
    fit.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: training images / B, rounded up)")
    fit.add_argument("--learning-rate", type=float, default=1e-3)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    parser.add_argument("--output", required=True, help="folder for model.keras, history.json, clusters/*.png, training.gif")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The command line's options as a :class:`TrainConfig`, with per-data-set defaults."""
    dataset = args.dataset or "folder"
    digits = dataset == "digits"
    return TrainConfig(
        output=args.output, path=args.path, dataset=dataset,
        n_faces=args.n_faces if args.n_faces is not None else (7 if digits else 30),
        n_eval=args.n_eval if args.n_eval is not None else (3 if digits else 10),
        dim=args.dim, scale=args.scale, margin=args.margin, epochs=args.epochs,
        batch_size=args.batch_size if args.batch_size is not None else (56 if digits else 64),
        per_identity=args.per_identity if args.per_identity is not None else (8 if digits else 4),
        steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate, network=args.network,
        image_size=args.image_size, center_crop=args.center_crop, max_per_identity=args.max_per_identity,
        augment=args.augment, seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 trained, 2 bad input or weights)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = lambda message, *rest: print(f"warning: {message}", file=sys.stderr)
            train(config_from_args(args), verbose=2 if args.quiet else 1)
    except (DatasetError, WeightsError) as error:
        return report(error, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
