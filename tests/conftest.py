"""Shared fixtures: the pretrained encoder and the frozen reference graph, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def facenet():
    from fr_utils import load_facenet

    return load_facenet()


@pytest.fixture(scope="session")
def graph_def():
    from fr_utils.weights import reference_graph_def

    return reference_graph_def()


@pytest.fixture(scope="session")
def graph_encoder(graph_def):
    from fr_utils.frozen_graph import frozen_encoder

    return frozen_encoder(graph_def)


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """LFW from $FR_DATASETS; the test is skipped, saying why, when it is absent."""
    root = os.environ.get("FR_DATASETS")
    if not root:
        pytest.skip("LFW not available: set FR_DATASETS to a folder holding lfw-deepfunneled/ (e.g. ../shared/datasets)")
    path = Path(root) / "lfw-deepfunneled"
    if not path.is_dir():
        pytest.skip(f"LFW not available: {path} does not exist")
    return path


@pytest.fixture(scope="session")
def cast_photos() -> list[Path]:
    """Every photo of the sample cast that ships in fr_utils (fr_utils.data)."""
    from fr_utils.data import cast_dir

    CAST_DIR = cast_dir() / "people"
    photos = sorted(p for p in CAST_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert photos, f"the sample cast is missing: no photos under {CAST_DIR}"
    return photos
