"""Shared fixtures: the pretrained encoder and the frozen reference graph, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tests use the shipped sample cast; those about another cast set FR_CAST_DIR themselves
# (an instructor's own cast exported in the shell must not change what they expect).
os.environ.pop("FR_CAST_DIR", None)


@pytest.fixture(scope="session")
def facenet():
    from fr_utils import load_facenet

    return load_facenet()


#: The 512-number encoder, selected by name (the default is the 128-number one).
M512 = "facenet_20180408-102900"


@pytest.fixture(scope="session")
def facenet512():
    """The 512-number encoder converted from the frozen graph (selectable by name)."""
    from fr_utils import load_facenet

    return load_facenet(name=M512)


@pytest.fixture(scope="session")
def graph_def():
    from fr_utils.build.convert import reference_graph_def

    return reference_graph_def()


@pytest.fixture(scope="session")
def graph_encoder(graph_def):
    from fr_utils.build.frozen_graph import frozen_encoder

    return frozen_encoder(graph_def)


#: $FR_DATASETS as the session started. The session's data-set fixtures read this value, not
#: the variable: tests unset it for the kernels they start (test_autograde_door's module-wide
#: ``no_lfw``), and a session fixture first asked for while it is unset would skip LFW for every
#: later test of that worker (it did: the LFW door cycle and test_fidelity were skipped in CI).
DATASETS_AT_START = os.environ.get("FR_DATASETS")


def _shared_dataset(folder: str, what: str) -> Path:
    """``$FR_DATASETS/<folder>`` (the variable as the session started); the test is skipped,
    saying why, when it is absent."""
    from fr_utils.datasets import DATASETS_ENV, dataset_path
    from fr_utils.errors import DatasetsNotFound

    if not DATASETS_AT_START:
        pytest.skip(f"{what} not available: set {DATASETS_ENV} to the folder holding {folder} (e.g. ../shared/datasets)")
    try:
        return dataset_path(given=Path(DATASETS_AT_START, folder))
    except DatasetsNotFound as err:
        pytest.skip(f"{what} not available: {err}")


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """LFW images from $FR_DATASETS (skipped when absent)."""
    return _shared_dataset("lfw-deepfunneled", "LFW")


@pytest.fixture(scope="session")
def protocol_dir() -> Path:
    """LFW's pairs files from $FR_DATASETS (skipped when absent)."""
    return _shared_dataset("lfw-protocol", "LFW protocol files")


@pytest.fixture(scope="session")
def orl_dir() -> Path:
    """ORL from $FR_DATASETS (skipped when absent)."""
    return _shared_dataset("orl-faces", "ORL")


@pytest.fixture(scope="session")
def cast_photos() -> list[Path]:
    """Every photo of the sample cast that ships in fr_utils (fr_utils.data)."""
    from fr_utils.data import cast_dir

    CAST_DIR = cast_dir() / "people"
    photos = sorted(p for p in CAST_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert photos, f"the sample cast is missing: no photos under {CAST_DIR}"
    return photos
