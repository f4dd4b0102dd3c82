"""Public checks for ``notebooks/door/door.ipynb``: the face-recognition door.

Exercise 1, ``build_database(image_paths_by_name, model)``::

    check_database_cast        the cast, one photo each: {name: (1, 128) encoding}
    check_database_names       the names come from the dict (not the files), any number of people

Exercise 2, ``verify(image_path, identity, database, model, threshold)``::

    check_verify_cast          same person -> door open; someone else -> door shut; L2 distance
    check_verify_details       the threshold argument, the CLAIMED identity, unknown identities

Exercise 3, ``who_is_it(image_path, database, model, threshold)``::

    check_who_is_it_cast       recognises a cast member; a stranger is "Not in the database."
    check_who_is_it_closest    the closest of several people, wherever it sits in the database
    check_who_is_it_threshold  the threshold argument decides, not a number written in the code

Each check raises ``AssertionError`` with what was expected, what your function
returned and, when the result matches a usual mistake, which one.  Checks that
need a database of known distances build it around the photo's real encoding:
a vector at L2 distance ``d`` from a unit vector ``e`` is ``cos(t) e + sin(t) u``
with ``u`` a unit vector orthogonal to ``e`` and ``d**2 = 2 - 2 cos(t)``.

The ``*_runs`` functions only check that your function can be called; the
notebook uses them in front of the hidden tests.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fr_utils.checks._record import record
from fr_utils.checks._runner import call_with_time_limit
from fr_utils.data import cast_name, cast_people, cast_photo, sample_cast  # noqa: F401 (the roles, re-exported)

CHECK_THRESHOLD = 1.0
"""The threshold of the public checks on the cast (the expected answers are computed
from the cast's photos at check time, whichever side of it they fall)."""

_ATOL = 1e-4  # float32 embeddings of length 1: distances agree to ~1e-6

TIME_LIMIT_S = 30.0
"""Seconds each call of a learner's function may take: it detects and encodes up to
six photos, on a busy 2-core CPU."""


# --------------------------------------------------------------------------
# The cast and reference encodings
# --------------------------------------------------------------------------


_ENCODINGS: dict[tuple[str, int], np.ndarray] = {}


def reference_encoding(path: Path | str, model) -> np.ndarray:
    """``fr_utils.img_to_encoding(path, model)``, (1, 128) with the course's encoder, computed once per photo and model."""
    from fr_utils.encoding import img_to_encoding

    key = (str(Path(path).resolve()), id(model))
    if key not in _ENCODINGS:
        _ENCODINGS[key] = np.asarray(img_to_encoding(str(path), model), dtype=np.float32)
    return _ENCODINGS[key]


# The cast is the course's (fr_utils.data.sample_cast(): $FR_CAST_DIR, else the shipped one):
# no check names a person.  People and photos are named by ROLE ("twice", "other:<j>",
# "twice:<k>", "other:<j>:<k>", "cast:<j>:<k>", or "other/..." below cast_dir()):
# fr_utils.data.cast_name / cast_photo, the one home of the roles (the encoder's checks use
# them too).


def cast_threshold(spec, distance: float) -> float:
    """A threshold: a number as it is, or ``"+0.04"`` / ``"-0.16"``: that much above or below
    ``distance`` (the reference distance of the case), never under 0.01."""
    if isinstance(spec, str):
        return max(0.01, float(distance) + float(spec))
    return float(spec)


def _photo(spec: str) -> str:
    return str(cast_photo(spec))


def at_distance(encoding: np.ndarray, distances, seed: int = 0) -> list[np.ndarray]:
    """Unit vectors at the given L2 distances (each in [0, 2]) from a unit ``encoding``.

    Args:
        encoding: shape (1, d) or (d,), length 1.
        distances: k numbers.
    Returns:
        k float32 arrays of shape (1, d), each of length 1 and at its distance from
        ``encoding`` (to float32 rounding), in random, mutually different directions.
    """
    e = np.asarray(encoding, dtype=np.float64).reshape(-1)
    e = e / np.linalg.norm(e)
    rng = np.random.default_rng(seed)
    out = []
    for d in distances:
        if not 0.0 <= d <= 2.0:
            raise ValueError(f"unit vectors are at most 2 apart, got distance {d}")
        u = rng.standard_normal(e.shape)
        u -= (u @ e) * e
        u /= np.linalg.norm(u)
        cos = 1.0 - d * d / 2.0
        out.append((cos * e + math.sqrt(max(0.0, 1.0 - cos * cos)) * u).astype(np.float32)[None, :])
    return out


def _distance(a, b) -> float:
    a, b = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (a, b))
    return float(np.linalg.norm(a - b))


# --------------------------------------------------------------------------
# Calling the learner's function
# --------------------------------------------------------------------------


def _call(function: Callable, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The function's result and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = call_with_time_limit(function, *args, seconds=TIME_LIMIT_S, **kwargs)
    return result, printed.getvalue()


def _number(value, name: str, what: str) -> float:
    if value is None:
        raise AssertionError(f"{name} returned None as {what}: did you forget to return it?")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} returned {value!r} as {what}; expected a number.") from None
    if array.size != 1:
        raise AssertionError(
            f"{name} returned an array of shape {array.shape} as {what}; expected one number. "
            "np.linalg.norm(a - b) of two (1, 128) encodings is a single number."
        )
    return float(array.reshape(-1)[0])


def _pair(result, name: str, first: str, second: str) -> tuple[Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError(
            f"{name} returned {type(result).__name__} {result!r:.80}; expected a pair "
            f"({first}, {second}): end with `return {first}, {second}`."
        )
    return result[0], result[1]


def _distance_hints(got: float, expected: float, others: dict[str, float], claimed: str | None) -> str:
    """Why ``got`` may differ from ``expected``: squared, or another person's distance."""
    if abs(got - expected * expected) <= _ATOL and abs(expected - expected * expected) > _ATOL:
        return (
            "\nLikely cause: this is the SQUARED distance. The door uses the plain L2 "
            "distance: np.linalg.norm(encoding - database[identity])."
        )
    for other, d in others.items():
        if abs(got - d) <= _ATOL:
            if claimed is not None:
                return (
                    f"\nLikely cause: that is the distance to {other!r}, not to the claimed "
                    f"identity {claimed!r}: compare with database[identity] only."
                )
            return f"\nLikely cause: that is the distance to {other!r}."
    return ""


# --------------------------------------------------------------------------
# Exercise 1: build_database
# --------------------------------------------------------------------------


def database_cases() -> dict[str, tuple[dict[str, str], str]]:
    """The public build_database cases: ``{record key: ({name: photo path}, situation)}``."""
    cast = sample_cast()
    return {
        "database/cast": ({name: str(photos[0]) for name, photos in cast.items()},
                          "The cast, one photo per person"),
        "database/names": ({"the admiral": _photo("other:0:0"), "the new intern": _photo("twice:1")},
                           "Two people under names unrelated to their file names"),
    }


def _expect_database(build_database: Callable, key: str, model) -> dict:
    paths_by_name, situation = database_cases()[key]
    references = {name: reference_encoding(path, model) for name, path in paths_by_name.items()}
    result, _ = _call(build_database, dict(paths_by_name), model)
    record(key, result)
    if result is None:
        raise AssertionError("build_database returned None: did you forget `return database`?")
    if not isinstance(result, dict):
        raise AssertionError(
            f"build_database returned a {type(result).__name__}; expected a dict {{name: encoding}}."
        )
    if set(result) != set(paths_by_name):
        raise AssertionError(
            f"{situation}: expected the names {sorted(paths_by_name)}, got {sorted(map(str, result))}. "
            "Use the dict's keys as the names, one entry per person."
        )
    for name, path in paths_by_name.items():
        value = np.asarray(result[name])
        if value.shape != references[name].shape:
            raise AssertionError(
                f"{situation}: database[{name!r}] has shape {value.shape}; expected {references[name].shape}, "
                "exactly what img_to_encoding(image_path, model) returns."
            )
        if np.allclose(value, references[name], atol=_ATOL):
            continue
        message = f"{situation}: database[{name!r}] is not the encoding of its photo {Path(path).name}."
        for other, encoding in references.items():
            if other != name and np.allclose(value, encoding, atol=_ATOL):
                message += (
                    f"\nLikely cause: it is the encoding of {other!r}'s photo. Encode each "
                    "person's own path inside the loop (for name, path in "
                    "image_paths_by_name.items()): database[name] = img_to_encoding(path, model)."
                )
                break
        else:
            message += (
                " Use fr_utils.img_to_encoding(path, model) as it is (it detects and aligns "
                "the face), without changing the encoding."
            )
        raise AssertionError(message)
    return result


def check_database_cast(build_database: Callable, model) -> dict[str, np.ndarray]:
    """The cast, one photo each (the first): every name with its photo's encoding.

    Returns the database, so the notebook can use it."""
    return _expect_database(build_database, "database/cast", model)


def check_database_names(build_database: Callable, model) -> None:
    """Names that are not the files' names, in any order, and an empty dict."""
    _expect_database(build_database, "database/names", model)
    empty, _ = _call(build_database, {}, model)
    record("database/empty", empty)
    if empty != {}:
        raise AssertionError(f"build_database({{}}, model) returned {empty!r}; expected an empty dict.")


# --------------------------------------------------------------------------
# Exercise 2: verify
# --------------------------------------------------------------------------


def _door(value, name: str = "verify") -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise AssertionError(
        f"{name} returned {value!r} ({type(value).__name__}) as door_open; expected True or "
        "False, the result of a comparison such as `dist < threshold`."
    )


def _cast_database(encode: Callable) -> tuple[dict, dict]:
    """The cast ``{name: [photos]}`` and its door database ``{name: encode(first photo)}``."""
    cast = sample_cast()
    return cast, {name: encode(photos[0]) for name, photos in cast.items()}


def verify_cases(encode: Callable) -> dict[str, tuple]:
    """The public verify cases, ``{record key: (photo, identity, database, threshold, situation)}``;
    ``encode(path)`` gives a photo's encoding (the databases are built around them)."""
    cast, database = _cast_database(encode)
    anchor = _photo("other:1:0")
    names = ["ada", "grace", "hedy", "katherine"]
    known = dict(zip(names, at_distance(encode(anchor), [0.35, 0.8, 0.6, 1.3], seed=1)))
    details = ("A database at known distances (ada 0.35, grace 0.8, hedy 0.6, katherine 1.3), "
               "the photo claiming to be 'grace'")
    twice, same, other = cast_name("twice"), cast_photo("twice:1"), cast_photo("other:0:0")
    return {
        "verify/cast/same": (str(same), twice, database, CHECK_THRESHOLD,
                             f"{same.name} claiming to be {twice}"),
        "verify/cast/other": (str(other), twice, database, CHECK_THRESHOLD,
                              f"{other.name} claiming to be {twice}"),
        "verify/details/0.7": (anchor, "grace", known, 0.7, details),
        "verify/details/0.9": (anchor, "grace", known, 0.9, details),
        "verify/details/nobody": (anchor, "nobody", known, 0.9, "an identity not in the database"),
    }


def _expect_verify(verify: Callable, key: str, model) -> None:
    path, identity, database, threshold, situation = verify_cases(
        lambda photo: reference_encoding(photo, model))[key]
    encoding = reference_encoding(path, model)
    want_dist = _distance(encoding, database[identity])
    want_open = want_dist < threshold
    result, printed = _call(verify, path, identity, database, model, threshold=threshold)
    record(key, {"result": result, "printed": printed})
    got_dist, got_open = _pair(result, "verify", "dist", "door_open")
    got_dist = _number(got_dist, "verify", "dist")
    got_open = _door(got_open)
    where = f"{situation} (threshold={threshold:g})"
    if abs(got_dist - want_dist) > _ATOL:
        others = {name: _distance(encoding, e) for name, e in database.items() if name != identity}
        message = f"{where}: expected dist = {want_dist:.4f}, got {got_dist:.4f}."
        hint = _distance_hints(got_dist, want_dist, others, identity)
        closest = min([want_dist, *others.values()])
        if not hint and abs(got_dist - closest) <= _ATOL:
            hint = "\nLikely cause: you took the closest person; verify compares with the claimed identity only."
        raise AssertionError(message + hint)
    if got_open != want_open:
        message = (
            f"{where}: dist = {got_dist:.4f}, so door_open should be {want_open}, got {got_open}."
        )
        # Ask again with thresholds that leave no doubt: 4 (every distance is below) and 0.
        wide, none = (
            _door(_pair(_call(verify, path, identity, database, model, threshold=t)[0],
                        "verify", "dist", "door_open")[1])
            for t in (4.0, 0.0)
        )
        if wide == none:
            message += (
                f"\nLikely cause: door_open is {wide} with threshold=4 and with threshold=0: it "
                "does not use the `threshold` argument (a number written in the code?)."
            )
        elif not wide and none:
            message += (
                "\nLikely cause: the comparison is the wrong way round. The door opens for a "
                "SMALL distance: door_open = dist < threshold."
            )
        raise AssertionError(message)
    phrase = "welcome in" if want_open else "go away"
    if phrase not in printed.lower() or identity not in printed:
        raise AssertionError(
            f"{where}: the door is {'open' if want_open else 'shut'}, so verify should print "
            f"\"It's {'' if want_open else 'not '}{identity}, "
            f"{'welcome in!' if want_open else 'please go away'}\"; it printed {printed.strip()!r}."
        )


def check_verify_cast(verify: Callable, model) -> None:
    """The cast enrolled with first photos: the second photo of the person with several,
    claiming to be them, then another person's photo claiming to be them."""
    _expect_verify(verify, "verify/cast/same", model)
    _expect_verify(verify, "verify/cast/other", model)


def check_verify_details(verify: Callable, model) -> None:
    """Known distances: the threshold argument decides; only the claimed identity counts;
    an identity that is not in the database gets ``(inf, False)``, not an error."""
    for key in ("verify/details/0.7", "verify/details/0.9"):
        _expect_verify(verify, key, model)
    path, identity, database, threshold, _ = verify_cases(
        lambda photo: reference_encoding(photo, model))["verify/details/nobody"]
    try:
        result, printed = _call(verify, path, identity, database, model, threshold=threshold)
    except KeyError as error:
        raise AssertionError(
            f"verify raised KeyError({error}) for an identity that is not in the database. "
            "An unknown badge must not crash the door: return (np.inf, False) when "
            "identity not in database."
        ) from None
    record("verify/details/nobody", {"result": result, "printed": printed})
    dist, door_open = _pair(result, "verify", "dist", "door_open")
    if not (_number(dist, "verify", "dist") == np.inf and _door(door_open) is False):
        raise AssertionError(
            f"verify(..., 'nobody', ...) with 'nobody' not in the database returned {result!r}; "
            "expected (inf, False): no distance to nobody, and the door stays shut."
        )


# --------------------------------------------------------------------------
# Exercise 3: who_is_it
# --------------------------------------------------------------------------


def who_is_it_cases(encode: Callable) -> dict[str, tuple]:
    """The public who_is_it cases, ``{record key: (photo, database, threshold, situation)}``;
    ``encode(path)`` gives a photo's encoding (the databases are built around them)."""
    cast, database = _cast_database(encode)
    twice, photo = cast_name("twice"), cast_photo("twice:1")
    cases = {
        "who/cast/all": (str(photo), database, CHECK_THRESHOLD, f"{photo.name}, the cast in the database"),
        "who/cast/strangers": (str(photo), {name: e for name, e in database.items() if name != twice},
                               CHECK_THRESHOLD, f"{photo.name}, a database without {twice}"),
    }
    collins = _photo("other:2:0")
    names = ["amelia", "bessie", "eileen", "mae", "sally"]
    for index, distances in enumerate(([0.9, 1.2, 0.3, 0.8, 1.1], [0.4, 1.1, 0.9, 1.2, 0.8],
                                       [0.9, 1.2, 0.7, 1.1, 0.5])):
        cases[f"who/closest/{index}"] = (collins, dict(zip(names, at_distance(encode(collins), distances, seed=2))),
                                         0.75, f"Five people at distances {distances}")
    biden = _photo("other:0:0")
    pair = dict(zip(["joe", "kamala"], at_distance(encode(biden), [0.5, 1.1], seed=3)))
    for threshold in (0.6, 0.4):
        cases[f"who/threshold/{threshold}"] = (biden, pair, threshold, "joe at distance 0.5, kamala at 1.1")
    return cases


def _expect_who(who_is_it: Callable, key: str, model) -> None:
    path, database, threshold, situation = who_is_it_cases(lambda photo: reference_encoding(photo, model))[key]
    encoding = reference_encoding(path, model)
    distances = {name: _distance(encoding, e) for name, e in database.items()}
    closest = min(distances, key=distances.get)
    want_dist = distances[closest]
    want_who = closest if want_dist < threshold else None
    result, printed = _call(who_is_it, path, database, model, threshold=threshold)
    record(key, {"result": result, "printed": printed})
    got_dist, got_who = _pair(result, "who_is_it", "min_dist", "identity")
    got_dist = _number(got_dist, "who_is_it", "min_dist")
    where = f"{situation} (threshold={threshold:g})"
    names = list(database)
    wrong_person = got_who is not None and got_who not in (want_who, closest)
    if abs(got_dist - want_dist) > _ATOL or wrong_person:
        message = (
            f"{where}: expected ({want_dist:.4f}, {want_who!r}), got ({got_dist:.4f}, {got_who!r})."
        )
        others = {name: d for name, d in distances.items() if name != closest}

        def near(name: str) -> bool:
            return name != closest and (got_who == name or abs(got_dist - distances[name]) <= _ATOL)

        squared = _distance_hints(got_dist, want_dist, {}, None)
        largest = len(names) > 1 and near(max(distances, key=distances.get))
        if squared:
            message += squared
        elif largest and near(names[-1]):  # both mistakes give this answer here: name both
            message += (
                "\nLikely cause: that is the LARGEST distance, and the LAST person of the database: "
                "keep the smallest (dist < min_dist), or, if you kept the LAST person, update min_dist "
                "and identity only when a distance is smaller than the smallest so far."
            )
        elif largest:
            message += "\nLikely cause: that is the LARGEST distance; keep the smallest (dist < min_dist)."
        elif near(names[-1]):
            message += (
                "\nLikely cause: you kept the LAST person of the database. Update min_dist and "
                "identity only when a distance is smaller than the smallest so far."
            )
        elif near(names[0]):
            message += (
                "\nLikely cause: you kept the FIRST person. Start with min_dist = np.inf (or a large "
                "number) and update it whenever a smaller distance comes."
            )
        else:
            message += _distance_hints(got_dist, want_dist, others, None)
        raise AssertionError(message)
    if got_who != want_who:
        if want_who is None:
            message = (
                f"{where}: the closest person, {closest!r}, is at {want_dist:.4f}, not below the "
                f"threshold, so the identity should be None (\"Not in the database.\"); got {got_who!r}."
                "\nLikely cause: either the identity is returned even when min_dist >= threshold "
                "(return min_dist, None then), or the comparison does not use the `threshold` argument."
            )
        else:
            message = (
                f"{where}: {closest!r} is at {want_dist:.4f}, below the threshold, so the identity "
                f"should be {closest!r}; got None.\nLikely cause: compare with the `threshold` "
                "argument, the right way round: recognised when min_dist < threshold."
            )
        raise AssertionError(message)
    if want_who is None and "not in the database" not in printed.lower():
        raise AssertionError(f"{where}: who_is_it should print \"Not in the database.\"; it printed {printed.strip()!r}.")
    if want_who is not None and want_who not in printed:
        raise AssertionError(
            f"{where}: who_is_it should print who it is, e.g. \"It's {want_who}, the distance is "
            f"{want_dist:.2f}\"; it printed {printed.strip()!r}."
        )


def check_who_is_it_cast(who_is_it: Callable, model) -> None:
    """The cast (first photos): the second photo of the person with several is theirs; without
    them in the database, the same photo is nobody's."""
    _expect_who(who_is_it, "who/cast/all", model)
    _expect_who(who_is_it, "who/cast/strangers", model)


def check_who_is_it_closest(who_is_it: Callable, model) -> None:
    """Five people at known distances, the closest in the middle, then first, then last."""
    for index in range(3):
        _expect_who(who_is_it, f"who/closest/{index}", model)


def check_who_is_it_threshold(who_is_it: Callable, model) -> None:
    """One person at distance 0.5: recognised with threshold 0.6, a stranger with 0.4."""
    _expect_who(who_is_it, "who/threshold/0.6", model)
    path, database, _, _ = who_is_it_cases(lambda photo: reference_encoding(photo, model))["who/threshold/0.4"]
    strict, _ = _call(who_is_it, path, database, model, threshold=0.4)
    identity = _pair(strict, "who_is_it", "min_dist", "identity")[1]
    if identity == "joe":
        raise AssertionError(
            "joe at distance 0.5, kamala at 1.1: who_is_it returned the identity 'joe' both with "
            "threshold=0.6 and with threshold=0.4; expected 'joe', then None."
            "\nLikely cause: the answer does not depend on the `threshold` argument (a number "
            "written in the code, or the identity returned whatever the distance)."
        )
    _expect_who(who_is_it, "who/threshold/0.4", model)


# --------------------------------------------------------------------------
# In front of the hidden tests: only that the function can be called
# --------------------------------------------------------------------------


def check_database_runs(build_database: Callable, model) -> None:
    """``build_database`` runs on one photo and returns a dict."""
    result, _ = _call(build_database, {"x": _photo("other:0:0")}, model)
    if not isinstance(result, dict):
        raise AssertionError(f"build_database returned {type(result).__name__}, not a dict.")


def check_verify_runs(verify: Callable, model) -> None:
    """``verify`` runs and returns a pair."""
    path = _photo("other:0:0")
    database = {"joe": reference_encoding(path, model)}
    _pair(_call(verify, path, "joe", database, model, threshold=CHECK_THRESHOLD)[0], "verify", "dist", "door_open")


def check_who_is_it_runs(who_is_it: Callable, model) -> None:
    """``who_is_it`` runs and returns a pair."""
    path = _photo("other:0:0")
    database = {"joe": reference_encoding(path, model)}
    _pair(_call(who_is_it, path, database, model, threshold=CHECK_THRESHOLD)[0], "who_is_it", "min_dist", "identity")


# --------------------------------------------------------------------------
# Hidden cases: what the functions return is recorded; the grader judges it
# --------------------------------------------------------------------------

HIDDEN_TIME_LIMIT_S = 60.0


def _quiet_call(function: Callable, *args: Any, **kwargs: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return call_with_time_limit(function, *args, seconds=HIDDEN_TIME_LIMIT_S, **kwargs)


def record_database_cases(build_database: Callable, model, people) -> None:
    """Record ``build_database`` on one dict built from ``(name, photo spec, "path" or "str")``
    entries (:func:`cast_photo`).  Decides nothing: the grader compares."""
    paths = {name: cast_photo(photo) if how == "path" else str(cast_photo(photo)) for name, photo, how in people}
    record("database/hidden", _quiet_call(build_database, paths, model))


def verify_hidden_inputs(cases, encode: Callable) -> list[tuple[str, str, dict, float]]:
    """``(photo path, claimed name, database, threshold)`` for ``(photo spec, claimed role,
    threshold spec)`` cases (:func:`cast_photo`, :func:`cast_name`, :func:`cast_threshold`, the
    latter relative to the photo's reference distance to the claimed person): the cast enrolled
    with each person's LAST photo; a photo of None: the claimed person's first photo against an
    empty database.  ``encode(path)`` gives the reference encodings."""
    enrolled = {name: encode(photos[-1]) for name, photos in sample_cast().items()}
    inputs = []
    for photo, role, threshold in cases:
        claim = cast_name(role)
        if photo is None:
            inputs.append((str(sample_cast()[claim][0]), claim, {}, cast_threshold(threshold, 1.0)))
            continue
        path = str(cast_photo(photo))
        d = _distance(encode(path), enrolled[claim])
        inputs.append((path, claim, enrolled, cast_threshold(threshold, d)))
    return inputs


def record_verify_cases(verify: Callable, model, cases) -> None:
    """Record ``verify`` on :func:`verify_hidden_inputs`, the threshold given by position.
    Decides nothing."""
    inputs = verify_hidden_inputs(cases, lambda photo: reference_encoding(photo, model))
    for index, (path, claim, database, threshold) in enumerate(inputs):
        try:
            result = _quiet_call(verify, path, claim, database, model, threshold)
        except KeyError as error:
            result = {"raised": f"KeyError({error})"}
        record(f"verify/hidden/{index}", result)


def visitor_databases(encoding: np.ndarray, seed: int, cases) -> list[dict[str, np.ndarray]]:
    """For ``(k, threshold)`` cases: databases of k visitors at distances spread over
    [0.3, 1.5] from the unit ``encoding``, shuffled, under shuffled names."""
    e = np.asarray(encoding, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    databases = []
    for k, _ in cases:
        distances = rng.permutation(np.linspace(0.3, 1.5, k))
        names = [f"visitor {i:02d}" for i in rng.permutation(k)]
        database = {}
        for name, d in zip(names, distances):
            w = rng.standard_normal(e.size)
            w = w - np.dot(w, e) * e
            w = w / np.linalg.norm(w)
            c = 1.0 - 0.5 * d * d
            database[name] = (c * e + np.sqrt(1.0 - c * c) * w).astype(np.float32).reshape(1, -1)
        databases.append(database)
    return databases


def who_hidden_inputs(query: str, seed: int, cases, encode: Callable) -> list[tuple[str, dict, float]]:
    """``(photo path, database, threshold)`` for ``("visitors", k, threshold)`` cases, the
    ``query`` photo spec against a database of k visitors (:func:`visitor_databases`), and for
    ``("cast", photo spec, threshold spec)`` cases, against the cast's first photos (a relative
    threshold: from the smallest reference distance).  ``encode(path)`` gives the encodings."""
    path = str(cast_photo(query))
    visitors = [(k, threshold) for kind, k, threshold in cases if kind == "visitors"]
    databases = iter(visitor_databases(encode(path), seed, visitors))
    first = {name: encode(photos[0]) for name, photos in sample_cast().items()}
    inputs = []
    for kind, what, threshold in cases:
        if kind == "visitors":
            inputs.append((path, next(databases), float(threshold)))
        else:
            photo = str(cast_photo(what))
            nearest = min(_distance(encode(photo), e) for e in first.values())
            inputs.append((photo, first, cast_threshold(threshold, nearest)))
    return inputs


def record_who_is_it_cases(who_is_it: Callable, model, query: str, seed: int, cases) -> None:
    """Record ``who_is_it`` (threshold by position) on :func:`who_hidden_inputs`.  Decides nothing."""
    inputs = who_hidden_inputs(query, seed, cases, lambda photo: reference_encoding(photo, model))
    for index, (path, database, threshold) in enumerate(inputs):
        record(f"who/hidden/{index}", _quiet_call(who_is_it, path, database, model, threshold))
