"""The figures of the introductory notebooks (fr_utils.figures), on the sample cast."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from fr_utils import figures


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cast(cast_photos):
    from fr_utils import face_crop

    faces = np.stack([face_crop(path) for path in cast_photos])
    names = [path.parent.name for path in cast_photos]
    return faces, names


def test_pairwise_distances_are_euclidean():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(figures.pairwise_distances(x), [[0, 5, 1], [5, 0, np.sqrt(18)], [1, np.sqrt(18), 0]])
    images = np.zeros((2, 4, 4, 3))
    images[1] = 1.0
    np.testing.assert_allclose(figures.pairwise_distances(images), [[0, np.sqrt(48)], [np.sqrt(48), 0]])


def test_pixels_fail_where_the_encoder_succeeds(cast, facenet):
    """The lesson of the verification notebook, measured: in pixels one Obama photo of
    three has another Obama as its nearest neighbour; between embeddings every one does."""
    from fr_utils import encode_images

    faces, names = cast
    pixels = figures.pairwise_distances(faces / 255.0)
    embeddings = figures.pairwise_distances(encode_images(faces, facenet, detect=False))
    fig = figures.distance_matrices_figure(faces, names, {"pixels": pixels, "encoder": embeddings})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["pixels\nnearest other photo is the same person in 1 of 3 rows",
                      "encoder\nnearest other photo is the same person in 3 of 3 rows"]
    assert len(fig.axes[0].texts) == len(names) ** 2
    assert _png(fig).startswith(b"\x89PNG")


def test_distance_matrix_refuses_mismatched_inputs(cast):
    faces, names = cast
    with pytest.raises(ValueError, match="faces but"):
        figures.distance_matrices_figure(faces[:2], names, {"d": np.zeros((6, 6))})
    with pytest.raises(ValueError, match=r"expected a \(6, 6\) matrix"):
        figures.distance_matrices_figure(faces, names, {"d": np.zeros((5, 5))})


def test_false_accept_growth_is_the_formula():
    fig = figures.false_accept_growth_figure(rates=(1e-3,), k_max=10_000)
    curve, linear = fig.axes[0].get_lines()[:2]
    k, system = curve.get_data()
    np.testing.assert_allclose(system, 1 - (1 - 1e-3) ** k, rtol=1e-9)
    assert system.max() < 1 < linear.get_data()[1].max()


def test_siamese_figure_states_the_decision(cast):
    faces, _ = cast
    a, b = np.eye(4)[0], np.eye(4)[1]  # distance sqrt(2)
    texts = lambda fig: " ".join(t.get_text() for t in fig.axes[0].texts)  # noqa: E731
    assert "= 1.41" in texts(figures.siamese_figure(faces[0], faces[1], a, b, threshold=1.0))
    assert "different people" in texts(figures.siamese_figure(faces[0], faces[1], a, b, threshold=1.0))
    assert "same person" in texts(figures.siamese_figure(faces[0], faces[1], a, b, threshold=1.5))
    with pytest.raises(ValueError, match="different lengths"):
        figures.siamese_figure(faces[0], faces[1], a, b[:3], threshold=1.0)


def test_standardisation_figure_renders(cast):
    faces, names = cast
    fig = figures.standardisation_figure(faces[:2], names[:2])
    assert sorted(len(ax.get_lines()) for ax in fig.axes) == [0, 0, 4]  # two crops, one histogram
    assert _png(fig).startswith(b"\x89PNG")
