"""Where MTCNN's five keypoints fall in the encoder's usual face crops.

    FR_DATASETS=../shared/datasets python benchmarks/similarity_template.py

Detects the faces of the LFW View 1 training images (``pairsDevTrain.txt``,
3,443 images; detections are cached, see ``fr_utils.embedding_cache``) and
prints the mean position of each keypoint of the largest face in its
``align_face`` crop (MTCNN box + 32 px margin, 160 x 160), with the standard
deviation: the numbers of ``fr_utils.align.SIMILARITY_TEMPLATE``.
"""

from __future__ import annotations

import sys

import numpy as np

from _machine import shared_dataset


def main() -> int:
    lfw = shared_dataset("lfw-deepfunneled")
    protocol = lfw and shared_dataset("lfw-protocol")
    if protocol is None:
        return 0
    from fr_utils.align import crop_box
    from fr_utils.embedding_cache import detect_files
    from fr_utils.evaluate import read_pairs
    from fr_utils.images import load_image

    pairs = read_pairs(protocol / "pairsDevTrain.txt", lfw)
    files = sorted(set([p.path_a for p in pairs] + [p.path_b for p in pairs]))
    points = []
    for path, faces in zip(files, detect_files(files)):
        if not faces:
            continue
        h, w = load_image(path).shape[:2]
        x1, y1, x2, y2 = crop_box((h, w), faces[0])
        kp = faces[0]["keypoints"]
        points.append([[(kp[k][0] - x1) * 160 / (x2 - x1), (kp[k][1] - y1) * 160 / (y2 - y1)]
                       for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")])
    pts = np.array(points)
    print(f"{len(pts)} faces of {len(files)} images (pairsDevTrain.txt), keypoints in 160x160 box crops:")
    for name, mean, std in zip(("left_eye", "right_eye", "nose", "mouth_left", "mouth_right"),
                               pts.mean(0), pts.std(0)):
        print(f'    "{name}": ({mean[0]:.2f}, {mean[1]:.2f}),   # std ({std[0]:.2f}, {std[1]:.2f})')
    return 0


if __name__ == "__main__":
    sys.exit(main())
