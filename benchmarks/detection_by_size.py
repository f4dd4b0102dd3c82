"""MTCNN detection time per photo, by photo size; and the detection size chosen on LFW.

    python benchmarks/detection_by_size.py [--repeats 5] [--photo fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg]
    FR_DATASETS=../shared/datasets python benchmarks/detection_by_size.py --lfw 150 [--scale 3] [--sides 200,320,480,640]

Resizes one sample-cast photo (bicubic, up or down) so that its long side is
250, 500, 1000, 2000 and 4000 px and times ``fr_utils.detect_faces`` on each
(the image already decoded; default settings, so photos over
``fr_utils.detect.MAX_SIDE`` px are first downscaled to it, which is part of
the time), and separately the JPEG decoding of the same size. Prints the median
of ``--repeats`` runs after a warm-up, the faces found, the machine and the
peak memory.

With ``--lfw N``: N LFW photos (the first photo of people drawn with seed 0)
enlarged ``--scale`` times (bicubic) are analysed downscaled to each of
``--sides`` (minimum face 20 px); prints, per side, the photos with a face at
confidence 0.9 and 0.8, milliseconds per photo, and how well the largest box
(mapped back to 1x) overlaps the box found in the 250-px original (median and
10th percentile of the intersection over union). Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _machine import machine, peak_memory_mib

REPO = Path(__file__).resolve().parents[1]
SIZES = (250, 500, 1000, 2000, 4000)


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


def lfw_sides(count: int, scale: float, sides: list[int]) -> None:
    """Faces found, time and box agreement on ``count`` LFW photos enlarged ``scale`` times, per analysis side."""
    import random

    from _machine import shared_dataset
    from fr_utils.detect import _faces_in
    from fr_utils.images import load_image

    lfw = shared_dataset("lfw-deepfunneled")
    if lfw is None:
        return
    rng = random.Random(0)
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    photos = [load_image(sorted(rng.choice(people).glob("*.jpg"))[0]) for _ in range(count)]
    _faces_in(photos[0], min_confidence=0.0)  # warm-up
    base = [_faces_in(img, min_confidence=0.0, max_side=None) for img in photos]
    print(f"machine: {machine()}")
    print(f"{count} LFW photos at {scale:g}x (250 px -> {round(250 * scale)} px), analysed at each side, min face 20 px")
    print(f"{'side':>5}  {'found @0.9':>10}  {'found @0.8':>10}  {'ms/photo':>8}  IoU with the 1x box: median, 10th pct")
    for side in sides:
        found9 = found8 = 0
        ious, seconds = [], 0.0
        for img, ref in zip(photos, base):
            big = np.asarray(Image.fromarray(img).resize((round(img.shape[1] * scale), round(img.shape[0] * scale)),
                                                         Image.BICUBIC))
            start = time.perf_counter()
            faces = _faces_in(big, min_confidence=0.8, max_side=side)
            seconds += time.perf_counter() - start
            sure = [f for f in faces if f["confidence"] >= 0.9]
            found8 += bool(faces)
            found9 += bool(sure)
            if sure and ref:
                ious.append(_iou([v / scale for v in sure[0]["box"]], ref[0]["box"]))
        print(f"{side:5d}  {found9:4d}/{count:<5d}  {found8:4d}/{count:<5d}  {seconds / count * 1000:8.0f}  "
              f"{np.median(ious):.3f}, {np.percentile(ious, 10):.3f}", flush=True)
    print(f"peak memory: {peak_memory_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, default=REPO / "fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lfw", type=int, default=0, metavar="N", help="measure on N LFW photos instead")
    parser.add_argument("--scale", type=float, default=3.0, help="with --lfw: enlarge the photos this much")
    parser.add_argument("--sides", default="200,320,480,640", help="with --lfw: analysis sides to compare")
    args = parser.parse_args()
    if args.lfw:
        lfw_sides(args.lfw, args.scale, [int(v) for v in args.sides.split(",")])
        return

    from fr_utils.detect import detect_faces
    from fr_utils.images import load_image

    photo = Image.fromarray(load_image(args.photo))
    detect_faces(np.asarray(photo))  # warm-up: builds MTCNN
    print(f"machine: {machine()}")
    print(f"photo: {args.photo.relative_to(REPO) if args.photo.is_relative_to(REPO) else args.photo} "
          f"({photo.width}x{photo.height}), median of {args.repeats} runs")
    print(f"{'long side':>9}  {'size':>11}  {'detect ms':>9}  {'decode ms':>9}  faces")
    for side in SIZES:
        scale = side / max(photo.size)
        img = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
        arr = np.asarray(img)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        faces = detect_faces(arr)
        detect = _median_seconds(lambda: detect_faces(arr), args.repeats)
        decode = _median_seconds(lambda: load_image(data), args.repeats)
        print(f"{side:9d}  {img.width:5d}x{img.height:<5d}  {detect * 1000:9.1f}  {decode * 1000:9.1f}  {len(faces)}")
    print(f"peak memory: {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
