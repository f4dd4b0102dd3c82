"""Labelled image sets for training an embedding: a folder of ``<person>/*`` images, or
scikit-learn's bundled handwritten digits (offline).

A data set is split by *identity*: the first ``n_train`` identities train the network,
the next ``n_eval`` identities are held out and only used to measure verification
accuracy on people (or digits) the network never saw.

* :func:`load_folder` - ``DIR/<person>/*.jpg|png|pgm|...``, identities in natural
  order (``s2`` before ``s10``), only those with at least 2 readable images;
* :func:`load_digits` - the 1,797 8x8 digits of ``sklearn.datasets.load_digits``,
  one "identity" per digit 0-9.

Bad input: a missing or empty folder, or too few usable identities, raises
:class:`DatasetError` (a ``ValueError``) naming the folder and the numbers;
unreadable images, files that are not images and identities with fewer than 2
images are skipped with one :class:`UserWarning` that counts them.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fr_utils.errors import DatasetError, DatasetsNotFound, FaceImageError
from fr_utils.images import IMAGE_SUFFIXES, load_image, resize

#: The environment variable naming the shared datasets folder (``lfw-deepfunneled/``,
#: ``lfw-protocol/``, ``orl-faces/``); read here and nowhere else.
DATASETS_ENV = "FR_DATASETS"


def dataset_path(*parts: str, given: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """``given`` when not None, else ``$FR_DATASETS/<parts...>``: where a shared data set lives.

    Args:
        parts: the path inside the datasets folder, e.g. ``"lfw-deepfunneled"``.
        given: a path the user gave explicitly (a command-line option); it wins.
        must_exist: also check that the path exists.
    Raises:
        DatasetsNotFound: ``$FR_DATASETS`` is not set (the message says what to
            set it to), or, with ``must_exist``, the path does not exist (named).
    """
    if given is not None:
        path = Path(given)
    else:
        root = os.environ.get(DATASETS_ENV)
        inside = "/".join(parts) or "the datasets"
        if not root:
            raise DatasetsNotFound(
                f"set {DATASETS_ENV} to the folder holding {inside} (e.g. ../shared/datasets)"
            )
        path = Path(root, *parts)
    if must_exist and not path.exists():
        raise DatasetsNotFound(f"{path} does not exist")
    return path


@dataclass
class Split:
    """Images of some identities.

    Attributes:
        images: (n, S, S, C) uint8 images (C = 3 for folders, 1 for digits).
        labels: (n,) int64, 0 .. len(names) - 1.
        names: identity names, indexed by label.
        paths: (n,) source file of each image (empty strings for digits).
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    """A training split and a held-out split of different identities."""

    train: Split
    heldout: Split
    source: str


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _center_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """The central square of side ``fraction`` x the shorter side."""
    h, w = image.shape[:2]
    side = max(1, int(round(min(h, w) * fraction)))
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def _check_counts(n_train: int, n_eval: int) -> None:
    if n_train < 2:
        raise DatasetError(f"--n-faces must be at least 2 (the triplet loss needs two identities), got {n_train}")
    if n_eval < 2:
        raise DatasetError(f"--n-eval must be at least 2 held-out identities, got {n_eval}")


def load_folder(
    path: str | os.PathLike,
    n_train: int,
    n_eval: int,
    *,
    image_size: int = 64,
    center_crop: float = 1.0,
    max_per_identity: int | None = None,
) -> Dataset:
    """Read ``path/<person>/*`` images: the first ``n_train`` usable identities train,
    the next ``n_eval`` are held out.

    Identities are the sub-folders of ``path`` in natural order; one is usable when
    at least 2 of its images can be read.  Each image is read as RGB, cropped to
    its central square (``center_crop`` x the shorter side) and resized to
    ``image_size`` x ``image_size`` (bilinear).  With ``max_per_identity`` only the
    first that many images (in natural order) of each identity are read.

    Returns:
        a :class:`Dataset`; ``train.images`` has shape (n, image_size, image_size, 3), uint8.
    Raises:
        DatasetError: ``path`` is missing, not a folder, has no identity sub-folders,
            or has fewer than ``n_train + n_eval`` usable identities.
    Warns:
        UserWarning: once, counting the unreadable images, non-image files and
            identities with fewer than 2 images that were skipped.
    """
    _check_counts(n_train, n_eval)
    if not 0.0 < center_crop <= 1.0:
        raise DatasetError(f"--center-crop must be in (0, 1], got {center_crop}")
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected {root}/<person>/<images>)")
    people = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: _natural_key(p.name))
    if not people:
        raise DatasetError(f"{root}: no identity sub-folders (expected {root}/<person>/<images>)")

    needed = n_train + n_eval
    unreadable: list[str] = []
    not_images: list[str] = []
    too_few: list[str] = []
    chosen: list[tuple[str, list[np.ndarray], list[str]]] = []
    for person in people:
        if len(chosen) == needed:
            break
        files = sorted((f for f in person.iterdir() if f.is_file() and not f.name.startswith(".")), key=lambda f: _natural_key(f.name))
        not_images += [str(f) for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
        files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES][:max_per_identity]
        images, paths = [], []
        for file in files:
            try:
                image = load_image(file)
            except FaceImageError:
                unreadable.append(str(file))
                continue
            images.append(resize(np.ascontiguousarray(_center_crop(image, center_crop)), image_size))
            paths.append(str(file))
        if len(images) < 2:
            too_few.append(person.name)
            continue
        chosen.append((person.name, images, paths))

    skipped = _skipped_message(unreadable, not_images, too_few)
    if len(chosen) < needed:
        raise DatasetError(
            f"{root}: --n-faces {n_train} plus --n-eval {n_eval} needs {needed} identities with at least "
            f"2 readable images, found {len(chosen)}" + (f" ({skipped})" if skipped else "")
        )
    if skipped:
        warnings.warn(f"{root}: {skipped}", UserWarning, stacklevel=2)
    return Dataset(_split(chosen[:n_train]), _split(chosen[n_train:]), str(root))


def _skipped_message(unreadable: list[str], not_images: list[str], too_few: list[str]) -> str:
    parts = []
    if unreadable:
        parts.append(f"skipped {len(unreadable)} unreadable image(s), e.g. {unreadable[0]}")
    if not_images:
        parts.append(f"ignored {len(not_images)} file(s) that are not images, e.g. {not_images[0]}")
    if too_few:
        parts.append(f"skipped {len(too_few)} identit{'y' if len(too_few) == 1 else 'ies'} with fewer than 2 images, e.g. {too_few[0]}")
    return "; ".join(parts)


def _split(chosen: list[tuple[str, list[np.ndarray], list[str]]]) -> Split:
    images = np.stack([image for _, imgs, _ in chosen for image in imgs])
    labels = np.concatenate([np.full(len(imgs), i, dtype=np.int64) for i, (_, imgs, _) in enumerate(chosen)])
    paths = [p for _, _, ps in chosen for p in ps]
    return Split(images, labels, [name for name, _, _ in chosen], paths)


def load_digits(n_train: int = 7, n_eval: int = 3) -> Dataset:
    """scikit-learn's handwritten digits (bundled with the package, no download).

    Digits ``0 .. n_train - 1`` train, the next ``n_eval`` digits are held out.

    Returns:
        a :class:`Dataset` of (n, 8, 8, 1) uint8 images (0-255, about 180 per digit).
    Raises:
        DatasetError: ``n_train + n_eval`` is more than the 10 digits.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    _check_counts(n_train, n_eval)
    if n_train + n_eval > 10:
        raise DatasetError(f"digits: --n-faces {n_train} plus --n-eval {n_eval} is more than the 10 digits")
    data = sklearn_digits()
    images = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # 0-16 -> 0-255

    def split(digits: range) -> Split:
        keep = np.isin(data.target, list(digits))
        return Split(images[keep], (data.target[keep] - digits.start).astype(np.int64), [str(d) for d in digits], [""] * int(keep.sum()))

    return Dataset(split(range(n_train)), split(range(n_train, n_train + n_eval)), "digits")
