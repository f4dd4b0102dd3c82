"""Drawing detected faces on a photo, for the notebooks."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from fr_utils.images import ImageSource, as_rgb_array

#: Box colours, one per face in turn (RGB).
PALETTE = [(0, 200, 80), (255, 160, 0), (0, 150, 255), (230, 40, 120), (150, 90, 255)]


def draw_faces(
    image: ImageSource,
    faces: Sequence[Mapping],
    labels: Optional[Sequence[Optional[str]]] = None,
    keypoints: bool = True,
    width: Optional[int] = None,
    colours: Optional[Sequence[tuple[int, int, int]]] = None,
) -> np.ndarray:
    """A copy of the photo with each face's box (and label, and keypoints) drawn.

    Args:
        image: the photo (path, bytes or RGB array); it is not modified.
        faces: dicts from :func:`fr_utils.detect.detect_faces` (only ``'box'`` is
            required; ``'keypoints'`` are drawn when present).
        labels: one text per face, e.g. a name and a distance; ``None`` entries
            draw no label. By default faces are numbered from 1.
        keypoints: whether to mark the eyes, nose and mouth corners.
        width: line width in pixels; by default about 1/200 of the image's size.
        colours: one RGB colour per face; by default :data:`PALETTE` in turn.
    Returns:
        (H, W, 3) uint8 RGB array.
    """
    img = Image.fromarray(as_rgb_array(image).copy())
    if width is None:
        width = max(1, round(max(img.size) / 200))
    if labels is None:
        labels = [str(i + 1) for i in range(len(faces))]
    draw = ImageDraw.Draw(img)
    for i, face in enumerate(faces):
        color = tuple(colours[i]) if colours is not None else PALETTE[i % len(PALETTE)]
        x, y, w, h = (int(round(float(v))) for v in face["box"])
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=width)
        if keypoints:
            r = max(1, width)
            for px, py in (face.get("keypoints") or {}).values():
                draw.ellipse([px - r, py - r, px + r, py + r], fill=color)
        label = labels[i] if i < len(labels) else None
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), label)
            tw, th = right - left, bottom - top
            ty = y - th - 2 * width if y - th - 2 * width >= 0 else y + h
            draw.rectangle([x, ty, x + tw + 2 * width, ty + th + 2 * width], fill=color)
            draw.text((x + width - left, ty + width - top), label, fill=(255, 255, 255))
    return np.asarray(img, dtype=np.uint8)
