"""Face encodings computed in the grader's own process (for the door's cases).

The door's checks build their databases around the photos' encodings; the grader
computes those itself, with ``fr_utils.load_facenet()`` and
``fr_utils.img_to_encoding``, once per photo and process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=1)
def model():
    import fr_utils

    return fr_utils.load_facenet()


@functools.lru_cache(maxsize=None)
def _encoding(path: str) -> np.ndarray:
    import fr_utils

    return np.asarray(fr_utils.img_to_encoding(path, model()), dtype=np.float32)


def encoding(path) -> np.ndarray:
    """The (1, 128) float32 encoding of the face of the photo at ``path`` (``img_to_encoding``'s) (the course's encoder)."""
    return _encoding(str(Path(path).resolve()))
