"""Public checks for ``notebooks/pretrained_encoder/pretrained_encoder.ipynb``.

Exercise 1, ``img_to_encoding(image_path, model)``::

    check_encoding_shape       one photo in, a (1, 128) array of unit length out
    check_encoding_matches_reference   two photos of the course's cast: the same
                               numbers as fr_utils.img_to_encoding, to 1% relative error

Exercise 2, ``distance(encoding_1, encoding_2)``::

    check_distance_345         (3, 0, 0, 0) and (0, 4, 0, 0): 5, where the usual mistakes differ
    check_distance_shapes      (1, d) and (d,) encodings: the same single number
    check_distance_on_cast     the course's cast: two photos of one person are nearer each
                               other than one of them and another person's photo

The photos come from the course's cast (``fr_utils.data.sample_cast()``: ``$FR_CAST_DIR``,
else the shipped one) by role (``fr_utils.data.cast_photo``): no check names a person, and
every message names the photos it used.

Each check raises ``AssertionError`` saying what was expected, what your
function returned and, when the result matches a usual mistake, which one.  The
encoding checks allow 60 s per call: the first call of a Keras model builds its
graph, which takes a few seconds on a busy CPU.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Callable

import numpy as np

from fr_utils.checks._record import record
from fr_utils.checks._runner import call_with_time_limit
from fr_utils.data import cast_photo
ENCODING_TIME_LIMIT_S = 60.0
ENCODING_RTOL = 1e-2
"""Largest accepted ``||yours - reference|| / ||reference||``.  Float32 arithmetic in another
order moves an embedding by about 1e-6, and prewhitening with ``x.std()`` instead of
``fr_utils.prewhiten``'s ``max(std, 1 / sqrt(x.size))`` not at all on a real face (accepted:
it changes no decision); every preprocessing mistake the checks name moves it much more
(tests/test_intro_checks.py)."""

SHAPE_PHOTO = "twice:0"
"""The photo of :func:`check_encoding_shape` (a ``fr_utils.data.cast_photo`` spec)."""
REFERENCE_PHOTOS = ("twice:1", "other:1:0")
"""The photos of :func:`check_encoding_matches_reference`: the second photo of the person with
several, and another person's first (specs; :func:`reference_photos` gives the paths)."""
RUNS_PHOTO = "other:2:0"
"""The photo of :func:`check_encoding_runs`."""
DISTANCE_CAST_PHOTOS = ("twice:0", "twice:1", "other:2:0")
"""The photos whose encodings (fr_utils.encode_images) :func:`check_distance_on_cast` compares:
two of one person, one of another (specs; :func:`distance_cast_photos` gives the paths)."""


def reference_photos() -> tuple[Path, ...]:
    """The paths of :data:`REFERENCE_PHOTOS` in the course's cast."""
    return tuple(cast_photo(spec) for spec in REFERENCE_PHOTOS)


def distance_cast_photos() -> tuple[Path, ...]:
    """The paths of :data:`DISTANCE_CAST_PHOTOS` in the course's cast."""
    return tuple(cast_photo(spec) for spec in DISTANCE_CAST_PHOTOS)


# --------------------------------------------------------------------------
# Exercise 1: img_to_encoding
# --------------------------------------------------------------------------


def _as_array(result, name: str) -> np.ndarray:
    if result is None:
        raise AssertionError(f"{name} returned None: did you forget the return statement?")
    try:
        return np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{name} returned {type(result).__name__}, not an array: {error}") from None


def _encoding(img_to_encoding: Callable, path: Path, model, key: str | None = None,
              refuse: bool = True) -> np.ndarray:
    """Call the learner's function and insist on a (1, d) array (recorded under ``key``).

    With ``refuse``, fr_utils' own encoder refuses to run during the call (see REFUSED)."""
    with _answers_refused() if refuse else contextlib.nullcontext():
        result = call_with_time_limit(img_to_encoding, str(path), model, seconds=ENCODING_TIME_LIMIT_S)
    if key is not None:
        record(key, result)
    got = _as_array(result, "img_to_encoding")
    size = int(model.output_shape[-1])
    if got.shape == (size,):
        raise AssertionError(
            f"img_to_encoding({_photo_label(path)!r}, model) returned shape {got.shape}; expected "
            f"(1, {size}). Keep the batch axis: the model takes a batch of one image, shape "
            f"(1, 160, 160, 3), and returns a batch of one embedding. Do not index [0] or squeeze."
        )
    if got.shape != (1, size):
        raise AssertionError(
            f"img_to_encoding({_photo_label(path)!r}, model) returned shape {got.shape}; expected "
            f"(1, {size}): one row, the embedding of the one face."
        )
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"img_to_encoding({_photo_label(path)!r}, model) returned NaN or infinite values.")
    return got


def _variants(face: np.ndarray, model) -> dict[str, np.ndarray]:
    """What the usual preprocessing mistakes feed the model, with their hints."""
    from fr_utils.images import prewhiten

    x = face.astype(np.float32)
    per_channel = (x - x.mean(axis=(0, 1))) / x.std(axis=(0, 1))
    inputs = {
        "the raw pixel values, 0 to 255: the model expects them prewhitened, "
        "(x - mean) / std, values of mean 0 and standard deviation 1": x,
        "pixels divided by 255 (values 0 to 1), the usual rescaling of other models; this "
        "one was trained on prewhitened crops, (x - mean) / std": x / 255.0,
        "the fixed standardisation (x - 127.5) / 128 of the 512-number 2018 model; this one "
        "(20170512-110547) was trained on prewhitened crops, (x - mean) / std of each crop": (x - 127.5) / 128.0,
        "a mean and standard deviation per colour channel; prewhitening takes ONE mean and ONE "
        "standard deviation over the whole crop (x.mean(), x.std(), no axis)": per_channel,
        "the colour channels reversed (BGR, as OpenCV reads images); the crop is already RGB": (
            prewhiten(face[..., ::-1])
        ),
    }
    return {hint: np.asarray(model.predict_on_batch(v[None]), dtype=np.float64) for hint, v in inputs.items()}


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def check_encoding_shape(img_to_encoding: Callable, model) -> np.ndarray:
    """One photo of the course's cast: a (1, d) array of finite values, of unit length (d = 128
    for the course's encoder).

    Returns the encoding."""
    path = cast_photo(SHAPE_PHOTO)
    got = _encoding(img_to_encoding, path, model, key="encoder/shape")
    norm = float(np.linalg.norm(got))
    if not math.isclose(norm, 1.0, rel_tol=1e-3):
        raise AssertionError(
            f"img_to_encoding({_photo_label(path)!r}, model) has length {norm:.4f}; the model's last "
            "layer scales every embedding to length 1. Return what the model gives, unchanged."
        )
    return got


def check_encoding_matches_reference(img_to_encoding: Callable, model) -> float:
    """Two photos: your encodings against ``fr_utils.img_to_encoding`` (the same steps).

    Returns the largest relative error."""
    from fr_utils.encoding import face_crop, img_to_encoding as reference

    worst = 0.0
    for path in reference_photos():
        got = _encoding(img_to_encoding, path, model, key=f"encoder/reference/{_photo_label(path)}")
        want = np.asarray(reference(path, model), dtype=np.float64)
        error = _relative_error(got, want)
        worst = max(worst, error)
        if error <= ENCODING_RTOL:
            continue
        lines = [
            f"img_to_encoding({_photo_label(path)!r}, model) differs from the reference encoding: "
            f"relative error ||yours - reference|| / ||reference|| = {error:.3g} "
            f"(at most {ENCODING_RTOL:g} allowed)."
        ]
        if error > 0.5:
            lines[0] += (f" The two are {np.linalg.norm(got - want):.2f} apart, about as far as "
                         "photos of two different people.")
        hints = [hint for hint, value in _variants(face_crop(path), model).items()
                 if _relative_error(got, value) <= ENCODING_RTOL]
        if hints:
            lines.append("Likely cause: the model was given " + hints[0] + ".")
        else:
            lines.append(
                "Check the three steps: the crop from face_crop, in float32, prewhitened as "
                "(x - x.mean()) / x.std(), a batch axis added (shape (1, 160, 160, 3)), then the model called "
                "once on that batch."
            )
        raise AssertionError("\n".join(lines))
    return worst


def check_encoding_runs(img_to_encoding: Callable, model) -> None:
    """Only that the function can be called and returns an array of the right shape."""
    _encoding(img_to_encoding, cast_photo(RUNS_PHOTO), model, refuse=False)


# --------------------------------------------------------------------------
# Exercise 2: distance
# --------------------------------------------------------------------------


def _distance_value(result) -> float:
    if result is None:
        raise AssertionError("distance returned None: did you forget the return statement?")
    array = _as_array(result, "distance")
    if array.shape == () and not math.isfinite(float(array)):
        raise AssertionError(
            f"distance returned {float(array)}: a square root of a negative number? Compute "
            "the distance from the difference of the two encodings."
        )
    if array.shape != ():
        raise AssertionError(
            f"distance returned an array of shape {array.shape}; return a single number. "
            "np.linalg.norm(encoding_1 - encoding_2) without an axis argument gives one, "
            "or wrap your result in float(...)."
        )
    return float(array)


def _distance_hints(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    diff = a - b
    return {
        "this is the SQUARED distance (no square root): take np.sqrt of the sum of squares, "
        "or np.linalg.norm": float(np.sum(diff ** 2)),
        "this is the L1 (Manhattan) distance, the sum of absolute differences: square the "
        "differences, sum them, then take the square root": float(np.sum(np.abs(diff))),
        "this is sqrt(2 - 2 u.v), which equals the distance only for vectors of length 1; "
        "these are not of length 1. Compute it from the difference": float(
            np.sqrt(max(2.0 - 2.0 * float(np.sum(a * b)), 0.0))
        ),
        "this is the dot product (a similarity: larger means closer), not a distance": float(np.sum(a * b)),
        "this is the largest absolute difference, not the Euclidean distance": float(np.max(np.abs(diff))),
    }


def _expect_distance(distance: Callable, a, b, situation: str, key: str) -> float:
    result = call_with_time_limit(distance, a, b)
    record(key, result)
    got = _distance_value(result)
    a64, b64 = (np.asarray(x, dtype=np.float64) for x in (a, b))
    want = float(np.linalg.norm(a64.ravel() - b64.ravel()))
    if math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
        return got
    lines = [f"{situation}: expected {want:.6g}, got {got:.6g}."]
    for hint, value in _distance_hints(a64.ravel(), b64.ravel()).items():
        if math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-6) and not math.isclose(value, want, rel_tol=1e-5):
            lines.append("Likely cause: " + hint + ".")
            break
    raise AssertionError("\n".join(lines))


def distance_cases(encodings=None, photos=None) -> dict[str, tuple]:
    """The public distance cases, ``{record key: (encoding_1, encoding_2, situation)}``; with
    ``encodings`` (the (3, 128) rows of :func:`distance_cast_photos`: two photos of one person,
    one of another), also the cast's pairs, named after ``photos`` (default: those photos)."""
    a = np.array([[3.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    b = np.array([[0.0, 4.0, 0.0, 0.0]], dtype=np.float32)
    rng = np.random.default_rng(6)
    u, v = (rng.standard_normal(8).astype(np.float32) for _ in range(2))
    cases = {
        "distance/345": (a, b, "encoding_1 = [[3, 0, 0, 0]], encoding_2 = [[0, 4, 0, 0]]"),
        "distance/same": (a, a.copy(), "Two identical encodings"),
        "distance/rows": (u[None], v[None], "Two encodings of shape (1, 8)"),
        "distance/flat": (u, v, "The same two encodings with shape (8,)"),
    }
    if encodings is not None:
        first, second, other = np.asarray(encodings)[:, None, :]
        a, b, c = (_photo_label(p) for p in (photos if photos is not None else distance_cast_photos()))
        cases["distance/cast/same"] = (first, second, f"{a} and {b} (the same person)")
        cases["distance/cast/other"] = (first, other, f"{a} and {c} (two people)")
    return cases


def _photo_label(path) -> str:
    """``<person>/<file>`` of a cast photo (the folder names the person, the file may not)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def check_distance_345(distance: Callable) -> None:
    """(3, 0, 0, 0) and (0, 4, 0, 0): the distance is 5 (a 3-4-5 right triangle)."""
    cases = distance_cases()
    for key in ("distance/345", "distance/same"):
        _expect_distance(distance, *cases[key], key=key)


def check_distance_shapes(distance: Callable) -> None:
    """The same pair as (1, d) rows and as (d,) vectors: the same single number."""
    cases = distance_cases()
    for key in ("distance/rows", "distance/flat"):
        _expect_distance(distance, *cases[key], key=key)


def check_distance_on_cast(distance: Callable, model) -> dict[str, float]:
    """Encodings of the course's cast (made by fr_utils): two photos of one person, and one of
    them with another person's photo; your distance of each pair must be the Euclidean one.

    Returns ``{pair: your distance}``, the pairs named by their photos."""
    from fr_utils.encoding import encode_images

    photos = distance_cast_photos()
    encodings = encode_images(list(photos), model)
    cases = distance_cases(encodings, photos)
    same = _expect_distance(distance, *cases["distance/cast/same"], key="distance/cast/same")
    other = _expect_distance(distance, *cases["distance/cast/other"], key="distance/cast/other")
    a, b, c = (_photo_label(p) for p in photos)
    return {f"{a} - {b}": same, f"{a} - {c}": other}


def check_distance_runs(distance: Callable) -> None:
    """Only that the function can be called on two (1, 4) encodings and returns a number."""
    _distance_value(call_with_time_limit(distance, np.ones((1, 4)), np.zeros((1, 4))))


# --------------------------------------------------------------------------
# Hidden cases: what the functions return is recorded; the grader judges it
# --------------------------------------------------------------------------


REFUSED = (
    "img_to_encoding called fr_utils.img_to_encoding (or encode_images), the function this "
    "exercise asks you to write: write its steps yourself (face_crop, standardise, the model)."
)


def _answers():
    """fr_utils' functions that answer the encoder exercise (img_to_encoding, encode_images, and
    encode_batch, the batch encoder behind both, FaceDatabase.enroll and embed_files)."""
    import fr_utils.encoding as encoding

    return [encoding.img_to_encoding, encoding.encode_images, encoding.encode_batch]


def _refuse(*args, **kwargs):  # runs with fr_utils.encoding's globals: builtins only
    raise AssertionError(
        "img_to_encoding called fr_utils.img_to_encoding (or encode_images), the function this "
        "exercise asks you to write: write its steps yourself (face_crop, standardise, the model)."
    )


@contextlib.contextmanager
def _answers_refused():
    """While inside, fr_utils.img_to_encoding and encode_images raise AssertionError(REFUSED),
    whatever name they were imported under (their code is swapped, not their names)."""
    functions = _answers()
    saved = [function.__code__ for function in functions]
    try:
        for function in functions:
            function.__code__ = _refuse.__code__
        yield
    finally:
        for function, code in zip(functions, saved):
            function.__code__ = code


def tiny_encoder(seed: int):
    """A small random Keras encoder with 6 outputs, its weights drawn from ``seed``: the same
    network in every process (another `model` for img_to_encoding)."""
    import keras

    tiny = keras.Sequential([keras.Input((160, 160, 3)), keras.layers.Conv2D(4, 5, strides=4),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6)])
    rng = np.random.default_rng(seed)
    tiny.set_weights([(0.2 * rng.standard_normal(w.shape)).astype(np.float32) for w in tiny.get_weights()])
    return tiny


def record_encoding_cases(img_to_encoding: Callable, model, cases) -> None:
    """Record ``img_to_encoding`` on ``(photo, how, encoder)`` cases: ``photo`` a
    ``fr_utils.data.cast_photo`` spec (a role in the course's cast, or ``"other/..."`` below
    ``fr_utils.data.cast_dir()``), ``how`` "path" (a pathlib.Path) or "str"; encoder "model" (the notebook's) or
    "tiny:<seed>" (:func:`tiny_encoder`).  fr_utils' own encoder refuses to run meanwhile
    (a call is recorded as such).  Decides nothing: the grader compares the records."""
    tiny = {}
    for index, (photo, how, encoder) in enumerate(cases):
        path = cast_photo(photo)
        if encoder == "model":
            network = model
        else:
            seed = int(encoder.split(":")[1])
            network = tiny.setdefault(seed, tiny_encoder(seed))
        try:
            with _answers_refused():
                result = call_with_time_limit(img_to_encoding, path if how == "path" else str(path), network,
                                              seconds=ENCODING_TIME_LIMIT_S)
        except AssertionError as error:
            if str(error) != REFUSED:
                raise
            result = {"called": "fr_utils.img_to_encoding"}
        record(f"encoder/hidden/{index}", result)


def random_vector_pairs(seed: int, cases):
    """For ``(d, "row" or "flat", dtype name)`` cases: pairs of random vectors N(0, 3)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for d, shape, dtype in cases:
        u, v = (rng.normal(0, 3, d).astype(dtype) for _ in range(2))
        pairs.append((u[None], v[None]) if shape == "row" else (u, v))
    return pairs


def record_distance_cases(distance: Callable, seed: int, cases) -> None:
    """Record ``distance(u, v)``, ``distance(v, u)`` and ``distance(u, u.copy())`` on the pairs of
    :func:`random_vector_pairs`.  Decides nothing: the grader compares the records."""
    for index, (u, v) in enumerate(random_vector_pairs(seed, cases)):
        record(f"distance/hidden/{index}", [call_with_time_limit(distance, u, v),
                                             call_with_time_limit(distance, v, u),
                                             call_with_time_limit(distance, u, u.copy())])
