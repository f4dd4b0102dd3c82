"""The pretrained encoder's weights at run time: where they are, their manifest, their check, loading.

:func:`load_facenet` checks the weights file against its manifest's sha256 and
builds the Keras model once per process. Every model it returned is recorded in
one registry (:func:`is_pretrained`, :func:`model_identity`); the encoder's
inference uses it to fold those read-only weights into constants.

The weights are built once from the original model by the maintainers' pipeline
in :mod:`fr_utils.build.convert`: ``python -m fr_utils.weights build`` (or
``make weights``); ``python -m fr_utils.weights verify`` checks them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fr_utils.errors import WeightsError  # noqa: F401  (re-exported: fr_utils.weights.WeightsError)

#: The course's encoder: the 128-number 20170512-110547 (issue #15): it beat the 512-number
#: 20180408-102900 on every LFW measurement and on the sample cast's margins, at the same
#: speed and memory (docs/measured.md, "The two encoders side by side").
MODEL_NAME = "facenet_20170512-110547"
REBUILD_COMMAND = "make weights  (or: python -m fr_utils.weights build)"

#: Every encoder fr_utils builds and loads, by name (``load_facenet(name)``,
#: ``python -m fr_utils.weights build --model NAME``); :data:`MODEL_NAME` is the default.
#: Each has its own ``<name>.weights.h5`` and ``<name>.manifest.json`` (docs/weights.md).
MODELS = {
    "facenet_20170512-110547": "128 numbers, MS-Celeb-1M, prewhitening (the default)",
    "facenet_20180408-102900": "512 numbers, CASIA-WebFace, fixed standardisation",
}


def check_model_name(name: str | None) -> str:
    """``name`` (None: the default, :data:`MODEL_NAME`) if it is one of :data:`MODELS`.

    Raises:
        WeightsError: an unknown name; the message lists the known ones.
    """
    name = MODEL_NAME if name is None else name
    if name not in MODELS:
        raise WeightsError(f"unknown encoder {name!r}: fr_utils knows {', '.join(MODELS)}")
    return name


#: Folders an instructor fills once for every user of a machine (e.g. a JupyterHub),
#: searched after the per-user folder: the Python environment's own share folder
#: (``deploy/make_student_env.sh`` fills it), then the system-wide one.
SYSTEM_WEIGHTS_DIRS = (
    Path(sys.prefix) / "share" / "fr_utils" / "weights",
    Path("/usr/local/share/fr_utils/weights"),
)


def user_weights_dir() -> Path:
    """The per-user folder: ``$XDG_DATA_HOME/fr_utils/weights``, else ``~/.local/share/fr_utils/weights``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fr_utils" / "weights"


def weights_search_path() -> list[Path]:
    """Where the weights are looked for, in order: ``$FR_WEIGHTS_DIR`` (when set), the
    per-user folder (:func:`user_weights_dir`), then :data:`SYSTEM_WEIGHTS_DIRS`."""
    env = os.environ.get("FR_WEIGHTS_DIR")
    folders = ([Path(env).expanduser()] if env else []) + [user_weights_dir(), *SYSTEM_WEIGHTS_DIRS]
    return list(dict.fromkeys(folders))  # the same folder once


def _writable(folder: Path) -> bool:
    """``folder`` exists and is writable, or could be created by this user."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def weights_dir() -> Path:
    """The folder holding the built weights: the first of :func:`weights_search_path`
    that holds a manifest; when none does, the first writable one (where
    ``python -m fr_utils.weights build`` writes).

    Raises:
        WeightsError: no folder holds the weights and none is writable (names them all).
    """
    for folder in weights_search_path():
        if manifest_path(folder).is_file():
            return folder
    return build_dir()


def build_dir() -> Path:
    """Where :func:`fr_utils.build.convert.build` writes by default: the first writable folder of :func:`weights_search_path`."""
    folders = weights_search_path()
    for folder in folders:
        if _writable(folder):
            return folder
    raise WeightsError(
        "no folder for the encoder's weights is writable: "
        + ", ".join(map(str, folders)) + ". Set FR_WEIGHTS_DIR to a writable folder."
    )


def find_weights_dir(name: str = MODEL_NAME) -> Path:
    """The first folder of :func:`weights_search_path` that holds the manifest of the
    weights of encoder ``name`` (default :data:`MODEL_NAME`).

    Raises:
        WeightsError: none does; the message names every folder searched and the build command.
    """
    name = check_model_name(name)
    folders = weights_search_path()
    for folder in folders:
        if manifest_path(folder, name).is_file():
            return folder
    build = REBUILD_COMMAND if name == MODEL_NAME else f"{REBUILD_COMMAND.split(' (')[0]}  (or: python -m fr_utils.weights build --model {name})"
    raise WeightsError(
        f"the encoder's weights ({name}.weights.h5 and its manifest) are in none of the folders "
        f"searched: {', '.join(map(str, folders))}. Build them with {build} "
        "(it writes to the first writable folder; set FR_WEIGHTS_DIR to choose one)."
    )


def cache_dir() -> Path:
    """Where downloaded source artifacts are kept: ``$FR_CACHE_DIR`` or ``~/.cache/fr_utils``."""
    env = os.environ.get("FR_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fr_utils"
    return base


def weights_path(directory: Path | None = None, name: str = MODEL_NAME) -> Path:
    return (directory or weights_dir()) / f"{name}.weights.h5"


def manifest_path(directory: Path | None = None, name: str = MODEL_NAME) -> Path:
    return (directory or weights_dir()) / f"{name}.manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- manifest and check


#: The largest manifest read (they are about 2 KB).
MAX_MANIFEST_BYTES = 1 << 20


def read_manifest(directory: Path | None = None, name: str = MODEL_NAME) -> dict:
    """The manifest of encoder ``name`` written by :func:`fr_utils.build.convert.build`,
    validated (:func:`check_manifest`).

    Raises:
        WeightsError: missing, unreadable, not JSON or not a valid manifest, naming the
            file, the field and the rebuild command (with no ``directory``: naming every
            folder searched, see :func:`find_weights_dir`).
    """
    mpath = manifest_path(directory if directory is not None else find_weights_dir(name), name)
    if not mpath.exists():
        raise WeightsError(f"{mpath} is missing: the weights have not been built. Run {REBUILD_COMMAND}.")
    if not mpath.is_file():
        raise WeightsError(f"{mpath} is not a regular file (a folder?). Rebuild with {REBUILD_COMMAND}.")
    try:
        if mpath.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{mpath.stat().st_size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may have")
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WeightsError(f"{mpath} is unreadable ({err}). Rebuild with {REBUILD_COMMAND}.") from err
    check_manifest(manifest, mpath)
    return manifest


def check_manifest(manifest: object, mpath: Path | str = "the manifest") -> None:
    """Check a manifest's schema and ranges: a JSON object with ``name`` (text),
    ``weights_sha256`` (64 hex digits), ``embedding_size`` (a positive integer),
    ``input_shape`` ([size, size, 3]) and, when present, ``verification`` with a
    ``metric`` (euclidean or cosine) and a ``threshold`` in (0, 2) (distances between
    unit embeddings lie in [0, 2]: a threshold of 2 or more would open for anyone).

    Raises:
        WeightsError: naming the file, the field, the value found and what was expected.
    """
    def bad(field: str, value: object, expected: str) -> WeightsError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return WeightsError(
            f"{mpath}: invalid manifest: {field} is {shown}, expected {expected}. "
            f"It was edited or damaged; rebuild it with {REBUILD_COMMAND}."
        )

    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(manifest, dict):
        raise bad("the document", manifest, "a JSON object")
    missing = object()
    checks = [
        ("name", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty text"),
        ("weights_sha256", lambda v: isinstance(v, str) and len(v) == 64
         and all(c in "0123456789abcdef" for c in v), "64 lowercase hexadecimal digits"),
        ("embedding_size", lambda v: is_int(v) and 0 < v <= 65536, "a positive integer"),
        ("input_shape", lambda v: isinstance(v, list) and len(v) == 3 and all(is_int(x) and x > 0 for x in v)
         and v[2] == 3 and 8 <= v[0] <= 4096, "[size, size, 3]"),
    ]
    for field, ok, expected in checks:
        value = manifest.get(field, missing)
        if value is missing:
            raise WeightsError(
                f"{mpath}: invalid manifest: the field {field!r} is missing ({expected} expected). "
                f"Rebuild it with {REBUILD_COMMAND}."
            )
        if not ok(value):
            raise bad(repr(field), value, expected)
    card = manifest.get("verification", missing)
    if card is missing:
        return  # an older manifest: matching.default_threshold says to rebuild when it is needed
    if not isinstance(card, dict):
        raise bad("'verification'", card, "an object with 'metric' and 'threshold'")
    if card.get("metric", "euclidean") not in ("euclidean", "cosine"):
        raise bad("'verification.metric'", card.get("metric"), "'euclidean' or 'cosine'")
    threshold = card.get("threshold", missing)
    if threshold is missing:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (0.0 < threshold < 2.0):
        raise bad("'verification.threshold'", threshold, "a number between 0 and 2, exclusive (a distance "
                  "between unit embeddings)")


def verify(directory: Path | None = None, name: str = MODEL_NAME) -> dict:
    """Check the weights file of encoder ``name`` against its manifest's sha256; returns the manifest."""
    directory = directory if directory is not None else find_weights_dir(name)
    manifest = read_manifest(directory, name)
    wpath = weights_path(directory, name)
    if not wpath.exists():
        raise WeightsError(f"{wpath} is missing. Rebuild it with {REBUILD_COMMAND}.")
    if not wpath.is_file():
        raise WeightsError(f"{wpath} is not a regular file (a folder?). Rebuild it with {REBUILD_COMMAND}.")
    try:
        actual = sha256_file(wpath)
    except OSError as err:
        raise WeightsError(f"{wpath} cannot be read ({err}). Rebuild it with {REBUILD_COMMAND}.") from err
    if actual != manifest.get("weights_sha256"):
        raise WeightsError(
            f"{wpath} is damaged or was modified: its sha256 {actual} does not match "
            f"{manifest.get('weights_sha256')} in {manifest_path(directory, name)}. "
            f"Rebuild it with {REBUILD_COMMAND}."
        )
    return manifest


# --------------------------------------------------------------------------- loaded models


@dataclass
class Loaded:
    """What the registry knows of a model :func:`load_facenet` returned."""

    manifest: dict
    #: Its inference function once :func:`fr_utils.encoding.inference_function` built it.
    inference: Callable[[np.ndarray], np.ndarray] | None = None
    #: Inference functions in another arithmetic (``"bfloat16"``), built on request.
    variants: dict = field(default_factory=dict)


#: The registry: every model ``load_facenet`` returned (weakly held) -> :class:`Loaded`.
_LOADED: "weakref.WeakKeyDictionary[Any, Loaded]" = weakref.WeakKeyDictionary()


def loaded(model) -> Loaded | None:
    """The registry's entry for ``model``, or None when ``load_facenet`` did not return it."""
    try:
        return _LOADED.get(model)
    except TypeError:  # not weak-referenceable: certainly not one of ours
        return None


def register(model, manifest: dict) -> None:
    """Enter a model another loader built (e.g. :func:`fr_utils.distill.load_student`) in the
    registry, with its manifest (``name``, ``weights_sha256``, ``embedding_size``,
    ``preprocessing``), so that fr_utils' encoders preprocess its input as it was trained
    and databases and caches tell its embeddings apart. ``model`` must be read-only
    (``trainable = False``): inference may fold its weights into constants."""
    missing = [k for k in ("name", "weights_sha256", "embedding_size", "preprocessing") if k not in manifest]
    if missing:
        raise WeightsError(f"the manifest of {manifest.get('name', 'the model')} lacks {', '.join(missing)}")
    _LOADED[model] = Loaded(manifest)


def model_identity(model=None) -> dict:
    """``{'model_name', 'weights_sha256', 'embedding_size'}`` of an encoder.

    For ``None`` (the bundled encoder, without loading TensorFlow) and for a
    model ``load_facenet`` returned, these come from its manifest; for any other
    model, its name, a sha256 of its weight values (little-endian float32, in
    order) and its output size. Databases and caches of embeddings use it to
    refuse or separate the embeddings of different models.
    """
    manifest = read_manifest() if model is None else getattr(loaded(model), "manifest", None)
    if manifest is not None:
        return {
            "model_name": str(manifest["name"]),
            "weights_sha256": str(manifest["weights_sha256"]),
            "embedding_size": int(manifest["embedding_size"]),
        }
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, dtype="<f4").tobytes())
    return {
        "model_name": str(getattr(model, "name", type(model).__name__)),
        "weights_sha256": digest.hexdigest(),
        "embedding_size": int(model.output_shape[-1]),
    }


def is_pretrained(model) -> bool:
    """True for a model ``load_facenet`` returned."""
    return loaded(model) is not None


@functools.lru_cache(maxsize=None)
def _load(path_key: str, name: str = MODEL_NAME):
    directory = Path(path_key)
    manifest = verify(directory, name)  # before TensorFlow is imported: a bad manifest or file fails fast

    from fr_utils.models import inception_resnet_v1

    model = inception_resnet_v1(
        input_size=manifest["input_shape"][0], embedding_size=manifest["embedding_size"]
    )
    try:
        model.load_weights(weights_path(directory, name))
    except Exception as err:  # h5py/keras raise many types for a bad file
        raise WeightsError(
            f"{weights_path(directory, name)} could not be loaded ({err}). Rebuild it with {REBUILD_COMMAND}."
        ) from err
    model.trainable = False  # read-only: inference may fold the weights into constants
    _LOADED[model] = Loaded(manifest)
    return model


def load_facenet(directory: str | os.PathLike | None = None, *, name: str | None = None):
    """A pretrained Inception-ResNet-v1 encoder as a ``keras.Model``; by default
    Sandberg's 20170512-110547 (128 numbers).

    ``load_facenet("facenet_20180408-102900")`` (or ``name=...``) loads another
    encoder of :data:`MODELS`: the 512-number 20180408-102900, whose input is
    ``fixed_image_standardization`` (``fr_utils``' encoders read the
    preprocessing from the manifest). ``directory``: the folder holding the weights
    (default: searched, see :func:`find_weights_dir`).

    Default encoder: input (m, 160, 160, 3) float32, prewhitened per image
    (:func:`fr_utils.images.prewhiten`); output (m, 128) unit-norm embeddings (every encoder's output is L2-normalised, so
    distances between embeddings lie in [0, 2] whatever the model). The weights file is checked against its
    manifest's sha256; the model is built once per process and then cached, so
    treat it as read-only (it is returned with ``trainable = False``; to fine-tune,
    build ``inception_resnet_v1()`` and load the weights file into it).

    Raises:
        WeightsError: weights missing, truncated or modified (the message names
            the file and the command that rebuilds it).
    """
    if name is None and isinstance(directory, str) and directory in MODELS:
        directory, name = None, directory
    name = check_model_name(name)
    return _load(str(Path(directory or find_weights_dir(name)).resolve()), name)


if __name__ == "__main__":  # python -m fr_utils.weights build | verify: the maintainers' command
    from fr_utils.build.convert import main

    sys.exit(main())
