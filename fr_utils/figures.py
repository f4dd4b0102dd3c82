"""Figures for the course, drawn with matplotlib from the formulas (no image files).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so nothing is left open in pyplot's global state.  In a notebook, run
``%matplotlib inline`` once and make the figure the last expression of a cell
(or ``display(fig)``); elsewhere, ``fig.savefig("name.png")``.

* :func:`triplet_training_figure` - what training on one triplet does;
* :func:`negative_zones_figure` - hard, semi-hard and easy negatives around an anchor;
* :func:`triplet_loss_curve_figure` - the loss of one triplet against the gap
  ``d(a, n)^2 - d(a, p)^2``, with and without the ``max(., 0)``;
* :func:`distance_matrices_figure` - distance matrices of the same photos side by
  side (pixels against embeddings), the nearest other photo of each row marked;
* :func:`false_accept_growth_figure` - how a per-comparison false-accept rate
  grows with the number of people enrolled;
* :func:`siamese_figure` - two faces, one shared encoder, a distance, a decision;
* :func:`standardisation_figure` - fixed standardisation against prewhitening.
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


# --------------------------------------------------------------------------
# Verification and recognition; the pretrained encoder
# --------------------------------------------------------------------------

SAME_COLOUR = EASY_COLOUR
DIFFERENT_COLOUR = HARD_COLOUR


def pairwise_distances(vectors) -> np.ndarray:
    """Euclidean distances between the rows of ``vectors``, shape (n, d) -> (n, n).

    Any array whose first axis counts the items is accepted (images of shape
    (n, H, W, 3) are flattened to (n, H*W*3))."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x.reshape(len(x), -1)
    squared = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    return np.sqrt(squared)


def _nearest_others(distances: np.ndarray) -> np.ndarray:
    """For each row, the column of the smallest distance to another item."""
    masked = np.where(np.eye(len(distances), dtype=bool), np.inf, distances)
    return masked.argmin(axis=1)


def _thumbnails_above(ax, faces, zoom: float) -> None:
    """Each face drawn above its column of a matrix shown with ``imshow``."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    for i, face in enumerate(faces):
        image = OffsetImage(np.asarray(face), zoom=zoom)
        ax.add_artist(AnnotationBbox(image, (i, -0.5), xybox=(0, 2), boxcoords="offset points",
                                     box_alignment=(0.5, 0.0), frameon=False, annotation_clip=False))


def distance_matrices_figure(faces, labels, matrices: dict, *, thumbnail_zoom: float = 0.28) -> Figure:
    """Side-by-side distance matrices of the same photos, one panel per entry of ``matrices``.

    Each cell shows the distance between photos i and j; cells of the same
    person (equal ``labels``) are outlined in green. In the row of every photo
    whose person has another photo, the nearest OTHER photo is marked with a
    thick frame: green if it is the same person (a lookup would be right), red if
    it is someone else (it would be wrong).

    Args:
        faces: n face crops (H, W, 3) uint8, drawn along the axes.
        labels: n names, one per face.
        matrices: ``{panel title: (n, n) distances}``.
        thumbnail_zoom: size of the thumbnails (1.0 = one pixel per pixel).
    Returns:
        the figure; one axes per matrix, each with one text per cell.
    """
    from matplotlib.patches import Rectangle

    labels = list(labels)
    n = len(labels)
    if len(faces) != n:
        raise ValueError(f"{len(faces)} faces but {n} labels")
    fig = Figure(figsize=(5.6 * len(matrices), 5.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (title, matrix) in zip(axes, matrices.items()):
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (n, n):
            raise ValueError(f"{title!r}: expected a ({n}, {n}) matrix, got shape {matrix.shape}")
        ax.imshow(matrix, cmap="viridis_r")
        top = matrix.max()
        for i in range(n):
            for j in range(n):
                colour = "white" if matrix[i, j] > 0.55 * top else "black"
                ax.text(j, i, f"{matrix[i, j]:.3g}", ha="center", va="center", fontsize=8, color=colour)
                if i != j and labels[i] == labels[j]:
                    ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False,
                                           edgecolor=SAME_COLOUR, linewidth=1.5, linestyle=":"))
        nearest = _nearest_others(matrix)
        rows = [i for i in range(n) if labels.count(labels[i]) > 1]
        right = 0
        for i in rows:
            j = nearest[i]
            right += labels[i] == labels[j]
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=3,
                                   edgecolor=SAME_COLOUR if labels[i] == labels[j] else DIFFERENT_COLOUR))
        ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        _thumbnails_above(ax, faces, thumbnail_zoom)
        summary = (f"\nnearest other photo is the same person in {right} of {len(rows)} rows"
                   if rows else "")
        ax.set_title(title + summary, pad=4 + 160 * thumbnail_zoom)
    return fig


def false_accept_growth_figure(rates=(1e-2, 1e-3, 1e-4, 1e-6), k_max: int = 10**6) -> Figure:
    """The system's false-accept rate, 1 - (1 - far)^K, against the number K of
    people enrolled, for several per-comparison rates ``far`` (log-scaled K),
    with the straight line far * K dashed beside each curve."""
    k = np.unique(np.round(np.logspace(0, np.log10(k_max), 400)).astype(int))
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    for rate in rates:
        system = -np.expm1(k * np.log1p(-rate))
        line, = ax.plot(k, system, linewidth=2.2, label=f"far = {rate:g}")
        ax.plot(k, np.minimum(rate * k, 1.2), linestyle="--", linewidth=1, color=line.get_color())
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("K, people enrolled (one comparison each)")
    ax.set_ylabel("system false-accept rate")
    ax.set_title("A stranger needs only one false match: 1 - (1 - far)^K\n(dashed: far × K, "
                 "fine while small, then meaningless)")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return fig


def siamese_figure(face_a, face_b, embedding_a, embedding_b, threshold: float) -> Figure:
    """A Siamese network at work: two faces, one shared encoder, two embeddings
    (drawn as strips of their values), their distance and the decision.

    Args:
        face_a, face_b: face crops (H, W, 3) uint8.
        embedding_a, embedding_b: their embeddings, shape (d,) or (1, d).
        threshold: the distance below which the two are called the same person.
    Returns:
        the figure (one axes, no ticks).
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from matplotlib.patches import FancyBboxPatch

    ea, eb = (np.asarray(e, dtype=float).ravel() for e in (embedding_a, embedding_b))
    if ea.shape != eb.shape:
        raise ValueError(f"embeddings of different lengths: {ea.shape} and {eb.shape}")
    d = float(np.linalg.norm(ea - eb))
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    limit = max(np.abs(ea).max(), np.abs(eb).max())
    for y, face, emb, name in ((3.1, face_a, ea, "x₁"), (1.1, face_b, eb, "x₂")):
        zoom = 0.9 / max(np.asarray(face).shape[:2]) * 72
        ax.add_artist(AnnotationBbox(OffsetImage(np.asarray(face), zoom=zoom), (0.7, y), frameon=False))
        ax.text(0.7, y - 0.75, name, ha="center")
        ax.add_patch(FancyBboxPatch((2.2, y - 0.45), 2.2, 0.9, boxstyle="round,pad=0.05",
                                    facecolor="#dde8f5", edgecolor=ANCHOR_COLOUR))
        ax.text(3.3, y, "encoder f", ha="center", va="center")
        ax.annotate("", (2.15, y), (1.35, y), arrowprops=dict(arrowstyle="->"))
        ax.annotate("", (5.0, y), (4.5, y), arrowprops=dict(arrowstyle="->"))
        ax.imshow(emb[None, :], extent=(5.1, 7.1, y - 0.18, y + 0.18), aspect="auto",
                  cmap="coolwarm", vmin=-limit, vmax=limit)
        ax.text(6.1, y + 0.3, f"f({name}), {len(emb)} numbers", ha="center", fontsize=9)
    ax.text(3.3, 2.1, "the same weights", ha="center", va="center", fontsize=9, style="italic",
            color=ANCHOR_COLOUR)
    ax.annotate("", (3.3, 2.6), (3.3, 2.3), arrowprops=dict(arrowstyle="<->", color=ANCHOR_COLOUR))
    ax.annotate("", (3.3, 1.6), (3.3, 1.9), arrowprops=dict(arrowstyle="<->", color=ANCHOR_COLOUR))
    same = d < threshold
    ax.annotate("", (7.9, 2.1), (7.2, 3.0), arrowprops=dict(arrowstyle="->"))
    ax.annotate("", (7.9, 2.1), (7.2, 1.2), arrowprops=dict(arrowstyle="->"))
    ax.text(8.85, 2.1, f"d = ‖f(x₁) − f(x₂)‖ = {d:.2f}\n"
            f"{'<' if same else '≥'} τ = {threshold:g}:\n{'same person' if same else 'different people'}",
            ha="center", va="center",
            bbox=dict(boxstyle="round", facecolor="white",
                      edgecolor=SAME_COLOUR if same else DIFFERENT_COLOUR, linewidth=2))
    ax.set_title("A Siamese network: one encoder applied twice, then a distance and a threshold")
    return fig


def standardisation_figure(crops, labels) -> Figure:
    """How two standardisations map the pixel values of face crops.

    Left: the crops. Right: for each crop, the histogram of its values after the
    model's fixed standardisation, (x - 127.5) / 128 (solid), and after per-image
    prewhitening, (x - mean) / std (dashed). Fixed standardisation keeps a dark
    photo dark; prewhitening gives every photo mean 0 and standard deviation 1.

    Args:
        crops: face crops (H, W, 3) uint8.
        labels: one name per crop.
    """
    from fr_utils.images import fixed_image_standardization, prewhiten

    crops = [np.asarray(c) for c in crops]
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    grid = fig.add_gridspec(1, len(crops) + 3)
    bins = np.linspace(-3, 3, 61)
    hist = fig.add_subplot(grid[0, len(crops):])
    for i, (crop, label) in enumerate(zip(crops, labels)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(crop)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
        fixed = fixed_image_standardization(crop).ravel()
        white = prewhiten(crop).ravel()
        line, = hist.plot(bins[:-1], np.histogram(fixed, bins, density=True)[0], label=f"{label}: fixed")
        hist.plot(bins[:-1], np.histogram(white, bins, density=True)[0], linestyle="--",
                  color=line.get_color(), label=f"{label}: prewhitened")
    hist.set_xlabel("value fed to the encoder")
    hist.set_ylabel("density")
    hist.legend(fontsize=8)
    hist.set_title("fixed (x − 127.5) / 128 (solid) vs per-image (x − mean) / std (dashed)", fontsize=9)
    return fig
