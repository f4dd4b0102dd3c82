"""MTCNN detection time per photo, by photo size.

    python benchmarks/detection_by_size.py [--repeats 5] [--photo fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg]

Resizes one sample-cast photo (bicubic, up or down) so that its long side is
250, 500, 1000, 2000 and 4000 px and times ``fr_utils.detect_faces`` on each
(the image already decoded; default settings, so photos over 1024 px are first
downscaled to 1024, which is part of the time), and separately the JPEG
decoding of the same size. Prints the median of ``--repeats`` runs after a
warm-up, the faces found, the machine and the peak memory. Asserts nothing.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, default=REPO / "fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

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
