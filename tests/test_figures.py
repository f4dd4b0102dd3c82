"""fr_utils.figures: the course's figures are drawn from the formulas they show."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from fr_utils import figures


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "draw",
    [figures.triplet_training_figure, figures.negative_zones_figure, figures.triplet_loss_curve_figure],
)
def test_each_figure_renders(draw):
    fig = draw()
    assert isinstance(fig, Figure)
    assert _png(fig).startswith(b"\x89PNG")
    assert all(ax.get_title() for ax in fig.axes)


def test_loss_curve_is_the_hinge_of_the_formula():
    alpha = 0.3
    fig = figures.triplet_loss_curve_figure(alpha=alpha)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    gap, loss = lines["triplet loss"].get_data()
    np.testing.assert_allclose(loss, np.maximum(alpha - gap, 0.0))
    _, unclipped = lines["without max(·, 0)"].get_data()
    np.testing.assert_allclose(unclipped, alpha - gap)
    assert unclipped.min() < 0 <= loss.min()


def test_training_figure_labels_the_squared_distances():
    fig = figures.triplet_training_figure()
    before, after = fig.axes
    texts = lambda ax: {text.get_text() for text in ax.texts}  # noqa: E731
    # before: negative (0.9, -0.7) closer than positive (1.6, 0.9); after: the reverse
    assert {"d² = 3.37", "d² = 1.30"} <= texts(before)
    assert {"d² = 0.48", "d² = 5.71"} <= texts(after)


def test_negative_zones_are_bounded_by_the_band():
    d_ap2, alpha = 1.0, 0.5
    fig = figures.negative_zones_figure(d_ap2=d_ap2, alpha=alpha)
    radii = {patch.get_label(): patch.get_radius() for patch in fig.axes[0].patches}
    assert radii["hard"] == pytest.approx(np.sqrt(d_ap2))
    assert radii["semi-hard"] == pytest.approx(np.sqrt(d_ap2 + alpha))
    assert radii["easy"] > radii["semi-hard"]
    assert "1 < d²(a, n) < 1.5" in fig.axes[0].get_title()
    with pytest.raises(ValueError):
        figures.negative_zones_figure(alpha=0)
