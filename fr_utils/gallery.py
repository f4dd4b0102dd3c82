"""Figures made of faces: thumbnails, cluster galleries, 2-D maps of embeddings,
and the distance figure that chooses a verification threshold.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot
(as :mod:`fr_utils.figures` does): make it the last expression of a notebook
cell to show it, or call ``fig.savefig(path)``.

* :func:`face_thumbnails` - the face of each photo (or crop) as a small RGB square;
* :func:`cluster_gallery` - one row of thumbnails per cluster;
* :func:`thumbnail_map` - 2-D points (PCA, t-SNE of embeddings) drawn as faces;
* :func:`threshold_figure` - same/different-person distances and ROC curves, with thresholds;
* :func:`face_row` - one row of faces with their names (the door's enrolled staff);
* :func:`door_shots` - camera shots at the door, each face boxed, with the door's answer.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from fr_utils.errors import NoFaceError
from fr_utils.images import ImageSource, as_rgb_array, resize
from fr_utils.matching import is_match

# Ten distinct colours (matplotlib's tab10), one per group; cycled beyond ten.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
SAME_COLOUR, DIFFERENT_COLOUR = "#2ca02c", "#d62728"


def colour(index: int) -> str:
    """The colour of group ``index`` (cycles through ten)."""
    return _COLOURS[int(index) % len(_COLOURS)]


def face_thumbnails(images: Sequence[ImageSource], size: int = 64, *, detect: bool = True) -> list[np.ndarray]:
    """Small square face images for galleries and maps.

    Args:
        images: n paths, bytes or RGB arrays (H, W, 3).
        size: side of each thumbnail, in pixels.
        detect: crop the face found by MTCNN (the door's: fr_utils.detect.choose_main) (the crop the encoder sees);
            a photo without a face is shown whole, resized. ``False``: resize the
            images as they are (they are crops already).
    Returns:
        n uint8 arrays of shape (size, size, 3), in order.
    Raises:
        FaceImageError: an image cannot be read (the message names it).
    """
    from fr_utils.encoding import face_crop

    thumbnails = []
    for image in images:
        rgb = as_rgb_array(image)
        if detect:
            try:
                rgb = face_crop(rgb)
            except NoFaceError:
                pass
        thumbnails.append(resize(rgb, size))
    return thumbnails


def _check_lengths(n: int, **named) -> None:
    for name, values in named.items():
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} thumbnails")


def cluster_gallery(
    thumbnails: Sequence[np.ndarray],
    clusters: Sequence[int] | np.ndarray,
    captions: Sequence[str] | None = None,
    *,
    title: str | None = None,
    per_row: int = 8,
) -> Figure:
    """One row of faces per cluster, largest cluster first; label -1 (noise) last.

    Args:
        thumbnails: n RGB arrays (h, w, 3), e.g. from :func:`face_thumbnails`.
        clusters: (n,) integer cluster labels (scikit-learn's ``labels_``).
        captions: n strings printed under the faces (e.g. the true names).
        per_row: faces shown per cluster at most; the row says how many were left out.
    Returns:
        A figure with one row per cluster and ``min(per_row, largest cluster)`` columns.
    """
    labels = np.asarray(clusters).ravel()
    _check_lengths(len(labels), thumbnails=thumbnails, captions=captions)
    if len(labels) == 0:
        raise ValueError("no faces to show")
    found = [c for c in np.unique(labels) if c != -1]
    order = sorted(found, key=lambda c: (-int(np.sum(labels == c)), int(c)))
    if np.any(labels == -1):
        order.append(-1)
    columns = min(per_row, max(int(np.sum(labels == c)) for c in order))
    fig = Figure(figsize=(1.45 * columns + 1.6, 1.65 * len(order)), layout="constrained")
    axes = np.asarray(fig.subplots(len(order), columns, squeeze=False))
    for row, cluster in enumerate(order):
        members = np.flatnonzero(labels == cluster)
        name = "no cluster" if cluster == -1 else f"cluster {row + 1}"
        for col in range(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col >= len(members):
                continue
            k = members[col]
            ax.imshow(thumbnails[k])
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_edgecolor("black" if cluster == -1 else colour(row))
                spine.set_linewidth(3)
            if captions is not None:
                ax.set_xlabel(str(captions[k]), fontsize=7)
        more = f" (+{len(members) - columns} more)" if len(members) > columns else ""
        axes[row, 0].set_ylabel(f"{name}\n{len(members)} face{'s' * (len(members) != 1)}{more}", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def thumbnail_map(
    points: np.ndarray,
    thumbnails: Sequence[np.ndarray],
    groups: Sequence[str] | None = None,
    *,
    title: str | None = None,
    zoom: float = 0.6,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
) -> Figure:
    """Faces drawn at their 2-D positions, framed in their group's colour.

    Args:
        points: (n, 2) coordinates, e.g. ``PCA(2).fit_transform(embeddings)``.
        thumbnails: n RGB arrays (h, w, 3).
        groups: n names (e.g. people); faces of one group share a frame colour and
            the legend names each group.
        zoom: thumbnail scale (1.0: one image pixel per screen pixel).
    Returns:
        A figure with one axes; its limits leave room for the thumbnails.
    """
    xy = np.asarray(points, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {xy.shape}")
    _check_lengths(len(xy), thumbnails=thumbnails, groups=groups)
    names = list(dict.fromkeys(groups)) if groups is not None else []
    fig = Figure(figsize=(9.5 if names else 8, 7), layout="constrained")
    ax = fig.subplots()
    for i, (x, y) in enumerate(xy):
        edge = colour(names.index(groups[i])) if groups is not None else "black"
        box = AnnotationBbox(OffsetImage(thumbnails[i], zoom=zoom), (x, y), frameon=True,
                             pad=0.15, bboxprops=dict(edgecolor=edge, linewidth=2.5))
        ax.add_artist(box)
    for k, name in enumerate(names):  # legend entries only
        ax.scatter([], [], color=colour(k), marker="s", label=name)
    if names:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="who it really is")
    span = np.ptp(xy, axis=0) if len(xy) > 1 else np.ones(2)
    span = np.where(span > 0, span, 1.0)
    low, high = xy.min(axis=0) - 0.12 * span, xy.max(axis=0) + 0.12 * span
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def threshold_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    thresholds: Mapping[str, float],
) -> Figure:
    """Choosing a verification threshold: distance histograms and ROC curves.

    Args:
        curves: ``{name: (distances, same)}``, each (n,) L2 distances and (n,)
            booleans (True: same person); one histogram panel per entry.
        thresholds: ``{label: threshold}`` drawn as vertical lines on every
            histogram and as points on the ROC curves.
    Returns:
        A figure with one histogram per entry of ``curves`` and one ROC panel.
    """
    from fr_utils.evaluate import plot_roc, roc_curve

    if not curves:
        raise ValueError("no distances to draw")
    fig = Figure(figsize=(5.2 * (len(curves) + 1), 4.2), layout="constrained")
    axes = fig.subplots(1, len(curves) + 1)
    styles = ("--", ":", "-.", "-")
    for ax, (name, (dist, same)) in zip(axes, curves.items()):
        d, s = np.asarray(dist, dtype=np.float64), np.asarray(same, dtype=bool)
        keep = np.isfinite(d)
        bins = np.linspace(0.0, max(2.0, float(d[keep].max(initial=0.0))), 41)
        ax.hist(d[keep & s], bins=bins, alpha=0.6, color=SAME_COLOUR, label=f"same person ({int(np.sum(keep & s))})")
        ax.hist(d[keep & ~s], bins=bins, alpha=0.6, color=DIFFERENT_COLOUR,
                label=f"different people ({int(np.sum(keep & ~s))})")
        for k, (label, t) in enumerate(thresholds.items()):
            ax.axvline(t, color="black", linestyle=styles[k % len(styles)], label=f"{label}: {t:.3f}")
        ax.set_xlabel("L2 distance between the two embeddings")
        ax.set_ylabel("pairs")
        ax.set_title(name)
        ax.legend(fontsize=8)
    roc_ax = axes[-1]
    for name, (dist, same) in curves.items():
        fpr, tpr, _ = roc_curve(dist, same)
        plot_roc(fpr, tpr, ax=roc_ax, label=name)
        d, s = _finite(dist), np.asarray(same, dtype=bool)
        for k, t in enumerate(thresholds.values()):
            accepted = is_match(d, t)  # the door's rule: a match is distance < threshold
            roc_ax.plot(max(accepted[~s].mean(), 1e-4), accepted[s].mean(), marker="osD^"[k % 4],
                        color="black", markersize=5)
    roc_ax.set_ylim(0.5, 1.005)
    roc_ax.set_title("ROC curves; markers: the thresholds")
    return fig


def _finite(dist) -> np.ndarray:
    d = np.asarray(dist, dtype=np.float64)
    return np.where(np.isnan(d), np.inf, d)


def face_row(images: Sequence[ImageSource], captions: Sequence[str], *, title: str | None = None,
             size: int = 96) -> Figure:
    """One row of faces (each photo's, as the encoder sees it), a caption under each.

    Args:
        images: n photos (paths, bytes or RGB arrays).
        captions: n texts, e.g. the enrolled names.
    Raises:
        ValueError: no images, or not one caption per image.
        FaceImageError: a photo cannot be read (named).
    """
    _check_lengths(len(images), captions=captions)
    if not len(images):
        raise ValueError("no faces to show")
    thumbnails = face_thumbnails(images, size)
    fig = Figure(figsize=(1.7 * len(images) + 0.4, 2.3), layout="constrained")
    for ax, thumb, caption in zip(np.atleast_1d(fig.subplots(1, len(images))), thumbnails, captions):
        ax.imshow(thumb)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(str(caption), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def door_shots(shots: Sequence[tuple], *, title: str | None = None) -> Figure:
    """Camera shots at the door: each photo with its face boxed (the one the door encodes), the door's answer above it.

    Args:
        shots: ``(photo, answer, opened)`` each: a path, bytes or RGB array; the text to show
            (e.g. ``"Barack_Obama, 0.71: OPEN"``); True (drawn green), False (red) or None (black).
            A photo without a face is shown without a box.
    Raises:
        ValueError: no shots. FaceImageError: a photo cannot be read (named).
    """
    from fr_utils.detect import main_face
    from fr_utils.draw import draw_faces

    if not len(shots):
        raise ValueError("no camera shots to show")
    fig = Figure(figsize=(3.4 * len(shots), 3.9), layout="constrained")
    for ax, (photo, answer, opened) in zip(np.atleast_1d(fig.subplots(1, len(shots))), shots):
        rgb = as_rgb_array(photo)
        face = main_face(rgb)
        colour_ = "black" if opened is None else SAME_COLOUR if opened else DIFFERENT_COLOUR
        box = tuple(round(255 * c) for c in to_rgb(colour_))
        ax.imshow(draw_faces(rgb, [face], labels=[None], keypoints=False, colours=[box]) if face else rgb)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(answer), color=colour_, fontsize=10)
        for spine in ax.spines.values():
            spine.set_edgecolor(colour_)
            spine.set_linewidth(3)
    if title:
        fig.suptitle(title)
    return fig
