"""Figures for the course, drawn with matplotlib from the formulas (no image files).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so nothing is left open in pyplot's global state.  In a notebook, run
``%matplotlib inline`` once and make the figure the last expression of a cell
(or ``display(fig)``); elsewhere, ``fig.savefig("name.png")``.

* :func:`triplet_training_figure` - what training on one triplet does;
* :func:`negative_zones_figure` - hard, semi-hard and easy negatives around an anchor;
* :func:`triplet_loss_curve_figure` - the loss of one triplet against the gap
  ``d(a, n)^2 - d(a, p)^2``, with and without the ``max(., 0)``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

# One colour per kind of negative, shared by the figures so they read together.
HARD_COLOUR = "#d62728"
SEMI_HARD_COLOUR = "#ff7f0e"
EASY_COLOUR = "#2ca02c"
ANCHOR_COLOUR = "#1f77b4"
POSITIVE_COLOUR = "#9467bd"


def _squared_distance(u, v) -> float:
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    return float(np.sum((u - v) ** 2))


def _draw_triplet(ax, anchor, positive, negative) -> None:
    """Points, labels and the two anchor distances of one triplet."""
    for point, colour, label in (
        (anchor, ANCHOR_COLOUR, "anchor"),
        (positive, POSITIVE_COLOUR, "positive"),
        (negative, HARD_COLOUR, "negative"),
    ):
        ax.scatter(*point, s=160, color=colour, zorder=3)
        ax.annotate(label, point, xytext=(8, 8), textcoords="offset points", fontsize=11)
    # distance labels beside the dashed lines: above-left for the positive, below-left for the negative
    for other, colour, offset in ((positive, POSITIVE_COLOUR, (-6, 10)), (negative, HARD_COLOUR, (-6, -18))):
        ax.plot(*zip(anchor, other), linestyle="--", color=colour, linewidth=1.5)
        middle = (np.asarray(anchor) + np.asarray(other)) / 2
        ax.annotate(
            f"d² = {_squared_distance(anchor, other):.2f}",
            middle,
            xytext=offset,
            textcoords="offset points",
            ha="right",
            color=colour,
            fontsize=10,
        )


def triplet_training_figure() -> Figure:
    """Two panels: a triplet before training (the negative is closer than the
    positive) and after (positive pulled in, negative pushed beyond the margin)."""
    anchor = (0.0, 0.0)
    before_positive, before_negative = (1.6, 0.9), (0.9, -0.7)
    after_positive, after_negative = (0.6, 0.35), (1.9, -1.45)

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    before, after = fig.subplots(1, 2, sharex=True, sharey=True)

    _draw_triplet(before, anchor, before_positive, before_negative)
    before.annotate(
        "", xy=after_positive, xytext=before_positive,
        arrowprops=dict(arrowstyle="->", color=POSITIVE_COLOUR, linewidth=2),
    )
    before.annotate(
        "", xy=after_negative, xytext=before_negative,
        arrowprops=dict(arrowstyle="->", color=HARD_COLOUR, linewidth=2),
    )
    before.set_title("Before: the negative is closer than the positive\n(arrows: where training moves them)")

    _draw_triplet(after, anchor, after_positive, after_negative)
    after.set_title("After: d²(a, p) + α < d²(a, n), this triplet's loss is 0")

    for ax in (before, after):
        ax.set_aspect("equal")
        ax.set_xlim(-0.6, 2.6)
        ax.set_ylim(-1.9, 1.5)
        ax.set_xlabel("embedding, dimension 1")
        ax.grid(alpha=0.3)
    before.set_ylabel("embedding, dimension 2")
    fig.suptitle("The triplet loss pulls the same person together and pushes other people away")
    return fig


def negative_zones_figure(d_ap2: float = 1.0, alpha: float = 0.5) -> Figure:
    """Hard, semi-hard and easy negatives around one anchor, in squared distances.

    The positive sits at squared distance ``d_ap2`` from the anchor.  A negative is

    * hard if ``d(a, n)^2 < d_ap2`` (closer than the positive),
    * semi-hard if ``d_ap2 < d(a, n)^2 < d_ap2 + alpha`` (farther, but inside the margin),
    * easy if ``d(a, n)^2 > d_ap2 + alpha`` (its loss is already 0).
    """
    if d_ap2 <= 0 or alpha <= 0:
        raise ValueError("d_ap2 and alpha must be positive")
    inner, outer = np.sqrt(d_ap2), np.sqrt(d_ap2 + alpha)
    reach = outer * 1.6

    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.subplots()
    ax.add_patch(Circle((0, 0), reach * 1.5, color=EASY_COLOUR, alpha=0.12, label="easy"))
    ax.add_patch(Circle((0, 0), outer, color=SEMI_HARD_COLOUR, alpha=0.35, label="semi-hard"))
    ax.add_patch(Circle((0, 0), inner, color=HARD_COLOUR, alpha=0.30, label="hard"))

    ax.scatter(0, 0, s=160, color=ANCHOR_COLOUR, zorder=3)
    ax.annotate("anchor", (0, 0), xytext=(8, 8), textcoords="offset points")
    positive = (inner * np.cos(2.4), inner * np.sin(2.4))
    ax.scatter(*positive, s=160, color=POSITIVE_COLOUR, zorder=3)
    ax.annotate("positive", positive, xytext=(-10, 10), textcoords="offset points", ha="right")

    examples = (
        (0.55 * inner, 0.5, "hard", HARD_COLOUR),
        ((inner + outer) / 2, -1.0, "semi-hard", SEMI_HARD_COLOUR),
        (outer + 0.35 * (reach - outer), -1.9, "easy", EASY_COLOUR),
    )
    for radius, angle, kind, colour in examples:
        point = (radius * np.cos(angle), radius * np.sin(angle))
        ax.scatter(*point, s=110, marker="X", color=colour, edgecolor="black", zorder=3)
        ax.annotate(f"{kind} negative", point, xytext=(8, -4), textcoords="offset points")

    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", title="negatives")
    ax.set_title(
        f"Around one anchor: d²(a, p) = {d_ap2:g}, margin α = {alpha:g}\n"
        f"semi-hard band: {d_ap2:g} < d²(a, n) < {d_ap2 + alpha:g}"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def triplet_loss_curve_figure(alpha: float = 0.2) -> Figure:
    """The loss of one triplet, ``max(d(a,p)^2 - d(a,n)^2 + alpha, 0)``, against the
    gap ``d(a,n)^2 - d(a,p)^2``, next to the same line without the ``max``."""
    gap = np.linspace(-3 * alpha - 0.4, 3 * alpha + 0.4, 401)
    without_max = alpha - gap
    loss = np.maximum(without_max, 0.0)

    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.axvspan(gap[0], 0, color=HARD_COLOUR, alpha=0.15, label="hard negatives")
    ax.axvspan(0, alpha, color=SEMI_HARD_COLOUR, alpha=0.25, label="semi-hard negatives")
    ax.axvspan(alpha, gap[-1], color=EASY_COLOUR, alpha=0.15, label="easy negatives")
    ax.plot(gap, without_max, linestyle="--", color="grey", label="without max(·, 0)")
    ax.plot(gap, loss, color="black", linewidth=2.5, label="triplet loss")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.annotate(f"loss = α = {alpha:g} when the distances are equal", (0, alpha),
                xytext=(12, 24), textcoords="offset points",
                arrowprops=dict(arrowstyle="->"))
    ax.set_xlabel("gap = d²(anchor, negative) − d²(anchor, positive)")
    ax.set_ylabel("loss of one triplet")
    ax.set_title("Zero only once the negative is farther than the positive by the margin α")
    ax.legend(loc="upper right", fontsize=9)
    return fig
