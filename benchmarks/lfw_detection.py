"""Face detection rate on all of LFW.

    FR_DATASETS=../shared/datasets python benchmarks/lfw_detection.py [--limit N]

Runs ``fr_utils.detect_faces`` on every image of ``$FR_DATASETS/lfw-deepfunneled``
(13,233 images) and prints how many have at least one face, the misses, and
seconds per image, the machine and the peak memory. Where an image has several faces, the course takes the
largest (see ``img_to_encoding``). Where it has none, ``img_to_encoding``
raises ``NoFaceError`` naming the file, ``encode_images(..., on_no_face="nan")``
leaves that row NaN, and a caller who knows the image is already centred on a
face (as LFW's are) may encode it whole with ``detect=False``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _machine import machine, peak_memory_mib, shared_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw-dir", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (sorted)")
    args = parser.parse_args()
    lfw = shared_dataset("lfw-deepfunneled", given=args.lfw_dir, flag="--lfw-dir")
    if lfw is None:
        return 0

    from fr_utils.detect import detect_faces

    print(f"machine: {machine()}")
    paths = sorted(lfw.glob("*/*.jpg"))[: args.limit]
    misses, several = [], 0
    start = time.perf_counter()
    for i, path in enumerate(paths, 1):
        faces = detect_faces(path)
        if not faces:
            misses.append(path)
        elif len(faces) > 1:
            several += 1
        if i % 1000 == 0:
            print(f"  {i}/{len(paths)} images, {len(misses)} misses, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    found = len(paths) - len(misses)
    print(f"LFW images with a face found: {found}/{len(paths)} = {found / len(paths):.4%}")
    print(f"images with more than one face (the largest is used): {several}")
    print(f"detection time: {elapsed / len(paths) * 1000:.1f} ms/image ({elapsed:.0f} s in all)")
    print(f"peak memory: {peak_memory_mib():.0f} MiB")
    for path in misses:
        print(f"  miss: {path.relative_to(lfw)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
