"""What each graded cell must record, and how the grader judges each record.

For every graded cell of the graded assignments, :data:`GRADED` lists its
cases: a record key, a description for the learner, and a judge that receives
the decoded record (what the learner's function returned) and says what is
wrong with it, or None when it is right.  The grader builds the inputs of every
case itself, from the public checks' fixed inputs or from the hidden cases'
literal specs below (the hidden test cells hold the same literals; a test
checks they agree), and computes the answers with grader.references, in its
own process.  A hidden case's message never shows the expected value.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from grader import references as ref
from grader.records import Array, Opaque

Judge = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    hidden: bool
    judge: Judge


# -- hidden cases: the literals written in the hidden test cells ------------------------------

TRIPLET_LOSS_HIDDEN = [  # (how, seed, m, d, alpha, scale)
    ("keyword", 11, 1, 7, 0.2, 1.0),
    ("keyword", 12, 5, 2, 0.0, 1.0),
    ("keyword", 13, 6, 16, 0.7, 0.5),
    ("keyword", 14, 32, 128, 1.0, 0.1),
    ("keyword", 15, 9, 3, 0.35, 2.0),
    ("positional", 16, 4, 5, 0.45, 1.0),
    ("gradient", 17, 6, 4, 0.5, 1.0),
]

SEMI_HARD_HIDDEN = [  # (seed, m, k, d, alpha): no distance within 1e-4 of a band edge, no tie
    (1503, 8, 32, 16, 0.3),
    (2503, 5, 12, 4, 1.0),
    (3513, 1, 1, 3, 0.5),
    (4503, 6, 40, 128, 0.2),
    (3503, 6, 40, 128, 1.5),
]

FAR_HIDDEN = [  # (how, far_1_to_1, k); "sweep": k = 0, 7, 14, ... below k
    ("keyword", 0.000138056, 1),
    ("keyword", 0.000133407, 3),
    ("keyword", 0.114322, 17),
    ("keyword", 0.0638488, 250),
    ("keyword", 0.00291795, 4096),
    ("keyword", 1.43872e-06, 60000),
    ("positional", 0.5, 1),
    ("positional", 0.5, 3),
    ("positional", 0.999, 2),
    ("keyword", 1e-07, 100000),
    ("numpy", 0.02, 40),
    ("sweep", 0.003, 400),
]

MAX_ENROLLED_HIDDEN = [  # (how, far_1_to_1, budget): log(1 - budget) / log(1 - far) not within 1e-6 of an
    # integer, except the last three, built exactly on the edge
    ("keyword", 0.004894, 0.4861),
    ("keyword", 0.0002786, 0.2443),
    ("keyword", 0.01359, 0.5413),
    ("keyword", 0.0005068, 0.2726),
    ("keyword", 0.002497, 0.5611),
    ("keyword", 0.04806, 0.5883),
    ("keyword", 0.0004909, 0.4434),
    ("keyword", 0.001886, 0.4002),
    ("positional", 0.3, 0.0),
    ("positional", 0.3, 0.29),
    ("positional", 0.3, 0.31),
    ("positional", 0.01, 0.5),
    ("positional", 0.5, 0.75),  # exact edges: 1 - (1 - far)^K == budget, in floats too
    ("keyword", 0.5, 0.875),
    ("keyword", 0.75, 0.9375),
]

# The door's hidden cases name no one: photos and names are roles in the course's cast
# (fr_utils.checks.door.cast_photo / cast_name: "twice" is the first person with several
# photos, "other:<j>" the j-th of the others; "twice:<k>", "other:<j>:<k>" their k-th photo;
# "other/..." a shipped photo), and a threshold "+0.04" / "-0.16" lies that far from the
# case's own reference distance: the same cases bite on any cast.
DOOR_DATABASE_HIDDEN = [  # (name, photo spec, given as a "path" or a "str")
    ("Commander", "other:2:0", "path"),
    ("another photo", "twice:-1", "str"),
    ("two people, one photo", "other/two_faces_hopper_collins.jpg", "str"),
]

DOOR_VERIFY_HIDDEN = [  # (photo spec, claimed role, threshold spec); the cast enrolled with its last photos
    ("twice:0", "twice", "+0.04"),  # the same person, just under the threshold
    ("twice:0", "twice", "-0.16"),
    ("other:1:0", "other:0", "+0.04"),  # a false accept
    ("other:1:0", "other:0", "-0.06"),
    ("other/two_faces_hopper_collins.jpg", "other:2", 1.0),
    (None, "other:0", 1.0),  # an empty database
]

DOOR_WHO_QUERY = "other:1:0"
DOOR_WHO_SEED = 1943
DOOR_WHO_HIDDEN = [  # ("visitors", k people around the query photo, threshold) or ("cast", photo, threshold spec)
    ("visitors", 1, 0.9),
    ("visitors", 3, 0.6),
    ("visitors", 8, 0.25),
    ("visitors", 12, 0.8),
    ("visitors", 6, 1.45),
    ("visitors", 2, 0.35),
    ("visitors", 5, 0.2),
    ("cast", "twice:-1", "+0.04"),
    ("cast", "other/two_faces_hopper_collins.jpg", 1.0),
]

# -- exact edges: every value below is exact in float32 and float64 (multiples of 1/32 or 1/8
#    with few bits), so a distance lands exactly on the threshold or a band edge whatever the
#    order of the sums, the dtype, or the cosine route (sqrt(2 - 2 u.v) of unit vectors).

SEMI_HARD_EDGES = (  # (anchor rows, positive rows, negatives, alpha): band d(a,p)² = 0.25 .. 0.75
    [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
    [[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]],
    [[0.0, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.5], [0.75, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]],
    0.5,
)
"""Row 0: negative 0 on the lower edge (0.25), negative 1 on the upper one (0.75), negative 2
inside (0.5625): the answer is 2, and 0 for ``>=`` at the lower edge.  Row 1: negative 1 on
the upper edge, none inside: -1, and 1 for ``<=`` at the upper edge."""

DOOR_EDGE_QUERY = (32, 0, 0, 0, 0, 0, 0, 0)
"""What the hidden tests' stub encoder returns for every face, times 32: a unit vector."""

DOOR_EDGE_PEOPLE = {  # name: encoding times 32, a unit vector; its exact L2 distance to the query
    "ada": (16, 16, 16, 16, 0, 0, 0, 0),  # 1.0
    "bo": (28, 12, 8, 4, 4, 0, 0, 0),  # 0.5
    "cy": (23, 22, 3, 1, 1, 0, 0, 0),  # 0.75
    "di": (7, 31, 3, 2, 1, 0, 0, 0),  # 1.25
}

DOOR_VERIFY_EDGES = [  # (claimed identity, threshold by position), all of DOOR_EDGE_PEOPLE enrolled
    ("ada", 1.0),
    ("cy", 0.75),
    ("bo", 0.75),
    ("di", 1.5),
]

DOOR_WHO_EDGES = [  # (the people of the database, threshold by position)
    (("ada", "di"), 1.0),
    (("di", "cy", "ada"), 0.75),
    (("di", "cy", "ada"), 1.0),
]

# -- no cast-specific shortcut: the cast listing's names (sorted, index modulo its size) with
#    other photos: "cast:<j>:<k>", the j-th person's k-th photo, or a path below cast_dir().
DOOR_DATABASE_CAST_HIDDEN = [
    (0, "other/two_faces_hopper_collins.jpg"),
    (1, "cast:2:-1"),
    (2, "cast:3:-1"),
    (3, "cast:0:-1"),
]

DOOR_TINY_ENCODER_SEED = 77
"""The second encoder of build_database's hidden test: fr_utils.checks.encoder.tiny_encoder(77),
6 outputs; its people: the cast listing's first names with their first photos."""

DOOR_TINY_PEOPLE = 2

DEFAULT_ENCODING_SHAPE = (1, 128)
"""What img_to_encoding returns with the course's encoder (fr_utils.load_facenet(), the 128-number
20170512-110547); tests/test_grader_decisions.py checks it against the loaded model."""


def edge_vector(numerators) -> np.ndarray:
    """A (1, d) float32 encoding from numerators over 32."""
    return (np.asarray(numerators, dtype=np.float32) / np.float32(32.0)).reshape(1, -1)


def cast_people(spec: list) -> dict[str, Path]:
    """``{name: photo}`` for DOOR_DATABASE_CAST_HIDDEN-style specs, from the cast listing."""
    from fr_utils.data import cast_dir, sample_cast

    cast = sorted(sample_cast().items())
    people = {}
    for index, photo in spec:
        if photo.startswith("cast:"):
            _, j, k = photo.split(":")
            path = cast[int(j) % len(cast)][1][int(k)]
        else:
            path = cast_dir() / photo
        people[cast[index % len(cast)][0]] = Path(path)
    return people


def tiny_people() -> dict[str, Path]:
    from fr_utils.data import sample_cast

    return {name: photos[0] for name, photos in sorted(sample_cast().items())[:DOOR_TINY_PEOPLE]}


ENCODER_HIDDEN = [  # (fr_utils.data.cast_photo spec: a role in the course's cast or a shipped
    #                  "other/..." photo, given as a "path" or a "str", encoder)
    ("other/two_faces_hopper_collins.jpg", "path", "model"),
    ("other:0:0", "path", "model"),
    ("other:1:0", "str", "tiny:160"),
    ("twice:2", "str", "tiny:160"),
]

DISTANCE_SEED = 512
DISTANCE_HIDDEN = [  # (dimension, "row" (1, d) or "flat" (d,), dtype)
    (3, "row", "float64"),
    (128, "flat", "float32"),
    (512, "row", "float32"),
    (2, "flat", "float64"),
    (64, "row", "float64"),
]


# -- describing what a learner returned ---------------------------------------------------------


def shown(value: Any) -> str:
    """A short description of a recorded value, for messages."""
    if isinstance(value, Array):
        kind = "tensor" if value.tensor else "array"
        if value.values is not None and value.values.size == 1:
            return f"a {kind} holding {float(value.values.ravel()[0]):.6g}"
        if value.values is not None and value.values.size <= 8:
            return f"a {kind} {np.round(value.values, 6).tolist()}"
        return f"a {kind} of shape {value.shape}"
    if isinstance(value, Opaque):
        return f"an object of type {value.type}"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_number(value: Any) -> Optional[float]:
    """A single real number from a recorded value, or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Array) and value.values is not None and value.values.shape == () \
            and value.values.dtype.kind in "biuf":
        return float(value.values)
    return None


def close(got: float, want: float, rtol: float, atol: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


# -- judges ---------------------------------------------------------------------------------------


def number_judge(want: float, rtol: float, atol: float, hidden: bool, tensor: bool = False) -> Judge:
    """A single number close to ``want``; with ``tensor``, a scalar tensor."""

    def judge(value):
        if tensor and not (isinstance(value, Array) and value.tensor and value.shape == ()):
            return f"it must return a scalar TensorFlow tensor, and returned {shown(value)}"
        got = as_number(value)
        if got is None:
            return f"it must return a single number, and returned {shown(value)}"
        if close(got, want, rtol, atol):
            return None
        if hidden:
            return f"your function returned {got:.6g}, which is not the right value"
        return f"expected {want:.6g}, got {got:.6g}"

    return judge


def loss_and_gradient_judge(want_gradient: Optional[np.ndarray], hidden: bool) -> Judge:
    """``{"loss": scalar tensor, "gradient": finite (and, when given, right) array}``."""

    def judge(value):
        if not isinstance(value, dict) or set(value) != {"loss", "gradient"}:
            return "unexpected record"
        loss, gradient = value["loss"], value["gradient"]
        if not (isinstance(loss, Array) and loss.tensor):
            return (f"triplet_loss must return a TensorFlow tensor (so that Keras can differentiate it), "
                    f"and returned {shown(loss)}")
        if loss.shape != ():
            return f"triplet_loss must return a scalar tensor, and returned one of shape {loss.shape}"
        if not isinstance(gradient, Array) or gradient.values is None:
            return "no gradient flows from the loss back to the anchors: use TensorFlow operations throughout"
        if not np.all(np.isfinite(gradient.values)):
            return "the gradient of the loss with respect to the anchors contains NaN or inf"
        if want_gradient is not None:
            if gradient.values.shape != want_gradient.shape or not np.allclose(
                    gradient.values, want_gradient, rtol=1e-4, atol=1e-4):
                return ("the gradient with respect to the anchors is wrong: each triplet inside the margin "
                        "should pull its anchor by 2 (n - p), the others not at all")
        return None

    return judge


def indices_judge(want: np.ndarray, hidden: bool) -> Judge:
    def judge(value):
        if not isinstance(value, Array) or value.values is None:
            return f"it must return an array of {len(want)} indices, and returned {shown(value)}"
        got = value.values
        if got.shape != want.shape:
            return f"it must return {len(want)} indices (shape {want.shape}), and returned shape {got.shape}"
        if got.dtype.kind not in "iu":
            return f"it must return integer indices, and returned values of type {value.dtype}"
        if np.array_equal(got, want):
            return None
        if hidden:
            return f"your function returned {got.tolist()}, which is not the right answer"
        return f"expected {want.tolist()}, got {got.tolist()}"

    return judge


# -- the graded cells -------------------------------------------------------------------------


def _loss_alpha(alpha: Optional[float]) -> float:
    return 0.2 if alpha is None else alpha


def triplet_loss_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import triplet_loss as public

    def public_loss(key: str) -> Case:
        anchor, positive, negative, alpha = public.LOSS_CASES[key]
        want = ref.triplet_loss(anchor, positive, negative, _loss_alpha(alpha))
        return Case(key, f"triplet_loss, public case {key.split('/', 1)[1]}", False,
                    number_judge(want, rtol=1e-5, atol=1e-4, hidden=False))

    seeded = tuple(x.numpy() for x in public.seeded_triplets())
    cells = {
        "triplet_loss_single": [public_loss(key) for key in (
            "triplet_loss/perfect", "triplet_loss/margin/default", "triplet_loss/margin/0.5",
            "triplet_loss/max_with_zero")],
        "triplet_loss_batch": [
            public_loss("triplet_loss/batch_sum"),
            public_loss("triplet_loss/axis"),
            Case("triplet_loss/returns_tensor", "triplet_loss on a batch of 3 triplets, with its gradient",
                 False, loss_and_gradient_judge(None, hidden=False)),
        ],
        "triplet_loss_seeded": [
            Case("triplet_loss/seeded", "triplet_loss on the seeded batch", False,
                 number_judge(ref.triplet_loss(*seeded, 0.2), rtol=0.0, atol=1e-2, hidden=False)),
        ],
    }
    hidden = []
    for how, seed, m, d, alpha, scale in TRIPLET_LOSS_HIDDEN:
        anchor, positive, negative = public.random_triplets(seed, m, d, scale)
        key = f"triplet_loss/{how}/{seed}"
        if how == "gradient":
            want = ref.triplet_loss_anchor_gradient(anchor, positive, negative, alpha)
            hidden.append(Case(key, f"Hidden test: the gradient of triplet_loss on {m} random triplets, "
                               f"alpha={alpha}", True, loss_and_gradient_judge(want, hidden=True)))
            continue
        what = f"Hidden test: {m} random triplets of dimension {d}, alpha={alpha}"
        if how == "positional":
            what += " given by position"
        hidden.append(Case(key, what, True, number_judge(
            ref.triplet_loss(anchor, positive, negative, alpha), rtol=1e-4, atol=1e-4, hidden=True,
            tensor=True)))
    cells["triplet_loss_hidden"] = hidden

    def public_semi(key: str) -> Case:
        anchor, positive, negatives, alpha = public.SEMI_HARD_CASES[key]
        want = ref.semi_hard_negatives(anchor, positive, negatives, _loss_alpha(alpha))
        return Case(key, f"semi_hard_negatives, public case {key.split('/', 1)[1]}", False,
                    indices_judge(want, hidden=False))

    cells["semi_hard_public"] = [public_semi(key) for key in public.SEMI_HARD_CASES]
    semi_hidden = []
    for seed, m, k, d, alpha in SEMI_HARD_HIDDEN:
        anchor, positive, negatives = public.random_semi_hard_inputs(seed, m, k, d)
        want = ref.semi_hard_negatives(anchor, positive, negatives, alpha)
        semi_hidden.append(Case(
            f"semi_hard/{seed}",
            f"Hidden test: {m} anchors and {k} random negatives of dimension {d}, alpha={alpha}",
            True, indices_judge(want, hidden=True)))
    anchor, positive, negatives = (np.asarray(x, dtype=np.float32) for x in SEMI_HARD_EDGES[:3])
    alpha = SEMI_HARD_EDGES[3]
    semi_hidden.append(Case(
        "semi_hard/edges", f"Hidden test: negatives exactly on the edges of the band, alpha={alpha}", True,
        indices_judge(ref.semi_hard_negatives(anchor, positive, negatives, alpha), hidden=True)))
    cells["semi_hard_hidden"] = semi_hidden
    return cells


def whole_number_judge(want: int, hidden: bool) -> Judge:
    def judge(value):
        got = as_number(value)
        if got is None:
            return f"it must return a single number, and returned {shown(value)}"
        if got == want:
            return None
        if hidden:
            return f"your function returned {got:g}, which is not the right answer"
        return f"expected {want}, got {got:g}"

    return judge


def numbers_judge(wants: list[float], rtol: float, atol: float) -> Judge:
    """A list of numbers, one per value of ``wants`` (a hidden sweep)."""

    def judge(value):
        if not isinstance(value, list) or len(value) != len(wants):
            return "unexpected record"
        for got, want in zip(value, wants):
            number = as_number(got)
            if number is None or not close(number, want, rtol, atol):
                return (f"your function returned {shown(got)} for one of these values of k, "
                        "which is not the right value")
        return None

    return judge


def single_number(value: Any) -> Optional[float]:
    """A number, or an array or tensor holding exactly one."""
    got = as_number(value)
    if got is None and isinstance(value, Array) and value.values is not None and value.values.size == 1:
        return float(value.values.ravel()[0])
    return got


def _pair_of(value: Any) -> Optional[tuple]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(value)
    return None


def database_judge(want: dict[str, np.ndarray], hidden: bool) -> Judge:
    def judge(value):
        if not isinstance(value, dict):
            return f"build_database must return a dict, and returned {shown(value)}"
        if set(value) != set(want):
            return f"expected the names {sorted(want)}, got {sorted(map(str, value))}"
        for name, encoding in want.items():
            got = value[name]
            if isinstance(got, Array) and got.shape == DEFAULT_ENCODING_SHAPE and encoding.shape != got.shape:
                return (f"database[{name!r}] has shape {got.shape}, the default encoder's output, while the "
                        f"encoder passed as `model` gives {encoding.shape[1]} numbers: the model argument was "
                        "ignored. Encode with the model you are given: img_to_encoding(path, model)")
            if not isinstance(got, Array) or got.values is None or got.shape != encoding.shape:
                return (f"database[{name!r}] must be an encoding of shape {tuple(encoding.shape)}, "
                        f"and is {shown(got)}")
            if not np.allclose(got.values, encoding, atol=1e-4):
                return f"database[{name!r}] is not the encoding of its photo"
        return None

    return judge


def door_judge(want_number: float, want_second: Any, second_name: str, hidden: bool,
               printed: Optional[Callable[[str], Optional[str]]] = None, second_is_bool: bool = False,
               tuple_only: bool = False) -> Judge:
    """A pair (number, second) returned by verify or who_is_it; with ``printed``, the
    record is ``{"result": pair, "printed": text}`` and ``printed(text)`` judges the text."""

    def judge(value):
        text = None
        if printed is not None:
            if not isinstance(value, dict) or set(value) != {"result", "printed"}:
                return "unexpected record"
            value, text = value["result"], value["printed"]
        pair = _pair_of(value)
        if pair is None or (tuple_only and not isinstance(value, tuple)):
            return f"it must return a pair (distance, {second_name}), and returned {shown(value)}"
        got, second = single_number(pair[0]), pair[1]
        if got is None:
            return f"the distance must be a number, and is {shown(pair[0])}"
        if second_is_bool and not isinstance(second, bool):
            return f"{second_name} must be True or False, and is {shown(second)}"
        right_number = got == want_number if math.isinf(want_number) else abs(got - want_number) <= 1e-4
        if not right_number or second != want_second:
            if hidden:
                return f"your function returned ({got:.6g}, {shown(second)}), which is not the right answer"
            return f"expected ({want_number:.4f}, {want_second!r}), got ({got:.4f}, {shown(second)})"
        if printed is not None:
            return printed(text if isinstance(text, str) else "")
        return None

    return judge


MODEL_IGNORED = (
    "the model argument was ignored: the encoder passed as `model` was never called. Encode the "
    "photo with the model you are given, img_to_encoding(image_path, model); without it, "
    "fr_utils falls back to its default encoder")


def model_judge(inner: Judge) -> Judge:
    """A record ``{"result": what the function returned (or {"raised": text}), "model_calls":
    how many times the stub encoder passed as `model` was called}``: ``inner`` judges the
    result, once the model was used."""

    def judge(value):
        if not isinstance(value, dict) or set(value) != {"result", "model_calls"}:
            return "unexpected record"
        if value["model_calls"] == 0:
            return MODEL_IGNORED
        result = value["result"]
        if isinstance(result, dict) and set(result) == {"raised"}:
            return f"it raised {str(result['raised'])[:120]}"
        return inner(result)

    return judge


def _also_printed(inner: Judge, text: str) -> Judge:
    """``inner``, and the printed text must contain ``text``."""

    def judge(value):
        verdict = inner(value)
        if verdict is None and text not in str(value.get("printed", "")):
            return f"it should print {text!r}"
        return verdict

    return judge


def _threshold_words(spec) -> str:
    """A hidden case's threshold for its message: a number, or where it lies (never the distance)."""
    if isinstance(spec, str):
        return f"{spec[1:]} {'above' if spec.startswith('+') else 'below'} the distance"
    return f"{spec:g}"


def door_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import door as public
    from grader.encodings import encoding

    def distance(a, b) -> float:
        return ref.distance(np.asarray(a).ravel(), np.asarray(b).ravel())

    database_cases = public.database_cases()
    database_public = [
        Case(key, situation, False, database_judge({name: encoding(path) for name, path in paths.items()},
                                                   hidden=False))
        for key, (paths, situation) in database_cases.items()
    ]
    database_public.append(Case("database/empty", "build_database({}, model)", False,
                                lambda value: None if value == {} else f"expected {{}}, got {shown(value)}"))

    def says(*phrases: str, lower: bool = False) -> Callable[[str], Optional[str]]:
        def check(text: str) -> Optional[str]:
            seen = text.lower() if lower else text
            missing = [phrase for phrase in phrases if phrase not in seen]
            return f"it should print {' and '.join(map(repr, phrases))}" if missing else None
        return check

    verify_cases = public.verify_cases(encoding)
    verify_cells: dict[str, list[Case]] = {"verify_public": [], "verify_details": []}
    for key, (path, identity, database, threshold, situation) in verify_cases.items():
        cell = "verify_public" if key.startswith("verify/cast/") else "verify_details"
        if identity not in database:
            judge = door_judge(math.inf, False, "door_open", False, says(), second_is_bool=True)
        else:
            d = distance(encoding(path), database[identity])
            opened = d < threshold
            judge = _also_printed(door_judge(d, opened, "door_open", False,
                                             says("welcome in" if opened else "go away", lower=True),
                                             second_is_bool=True), identity)
        verify_cells[cell].append(Case(key, f"{situation} (threshold={threshold:g})", False, judge))

    who_public: dict[str, list[Case]] = {"who_is_it_public": [], "who_is_it_threshold": []}
    for key, (path, database, threshold, situation) in public.who_is_it_cases(encoding).items():
        distances = {name: distance(encoding(path), e) for name, e in database.items()}
        closest = min(distances, key=distances.get)
        want_who = closest if distances[closest] < threshold else None
        printed = says("not in the database", lower=True) if want_who is None else says(want_who)
        cell = "who_is_it_threshold" if key.startswith("who/threshold/") else "who_is_it_public"
        who_public[cell].append(Case(key, f"{situation} (threshold={threshold:g})", False,
                                     door_judge(distances[closest], want_who, "identity", False, printed)))

    cells = {"database_public": database_public, **verify_cells, **who_public}
    wanted = {name: encoding(public.cast_photo(photo)) for name, photo, _ in DOOR_DATABASE_HIDDEN}
    cells["database_hidden"] = [Case("database/hidden", "Hidden test: three people (one photo given as a "
                                     "pathlib.Path), names unrelated to their files", True,
                                     database_judge(wanted, hidden=True))]
    swapped = {name: encoding(path) for name, path in cast_people(DOOR_DATABASE_CAST_HIDDEN).items()}
    cells["database_hidden"].append(Case(
        "database/cast_names", "Hidden test: the cast's names, each with another photo than its own", True,
        database_judge(swapped, hidden=True)))
    tiny = tiny_encoding_function()
    cells["database_hidden"].append(Case(
        "database/tiny", "Hidden test: build_database with another encoder (6 outputs) as `model`", True,
        database_judge({name: tiny(path) for name, path in tiny_people().items()}, hidden=True)))
    verify_hidden = []
    inputs = public.verify_hidden_inputs(DOOR_VERIFY_HIDDEN, encoding)
    for index, ((_, _, spec), (path, claim, database, threshold)) in enumerate(zip(DOOR_VERIFY_HIDDEN, inputs)):
        key = f"verify/hidden/{index}"
        if not database:
            verify_hidden.append(Case(key, "Hidden test: an empty database", True, door_judge(
                math.inf, False, "door_open", True, second_is_bool=True, tuple_only=True)))
            continue
        d = distance(encoding(path), database[claim])
        verify_hidden.append(Case(key, f"Hidden test: {Path(path).name} with the badge of {claim}, "
                                  f"threshold {_threshold_words(spec)} given by position", True,
                                  door_judge(d, d < threshold, "door_open", True, second_is_bool=True)))
    query = edge_vector(DOOR_EDGE_QUERY)
    people = {name: edge_vector(v) for name, v in DOOR_EDGE_PEOPLE.items()}
    for index, (claim, threshold) in enumerate(DOOR_VERIFY_EDGES):
        d = distance(query, people[claim])
        verify_hidden.append(Case(
            f"verify/edge/{index}", f"Hidden test: a stub encoder as `model`, the distance to {claim} "
            f"{'exactly at' if d == threshold else 'against'} the threshold {threshold} given by position",
            True, model_judge(door_judge(d, d < threshold, "door_open", True, second_is_bool=True))))
    cells["verify_hidden"] = verify_hidden
    who_inputs = public.who_hidden_inputs(DOOR_WHO_QUERY, DOOR_WHO_SEED, DOOR_WHO_HIDDEN, encoding)
    who_hidden = []
    for index, ((kind, what, spec), (path, database, threshold)) in enumerate(zip(DOOR_WHO_HIDDEN, who_inputs)):
        if kind == "visitors":
            label = f"Hidden test: {what} people at random distances, threshold {spec} given by position"
        else:
            label = f"Hidden test: {Path(path).name} with the cast in the database, threshold {_threshold_words(spec)}"
        e = encoding(path)
        distances = {name: distance(e, v) for name, v in database.items()}
        closest = min(distances, key=distances.get)
        want_who = closest if distances[closest] < threshold else None
        who_hidden.append(Case(f"who/hidden/{index}", label, True,
                               door_judge(distances[closest], want_who, "identity", True)))
    edge_query = edge_vector(DOOR_EDGE_QUERY)
    for index, (names, threshold) in enumerate(DOOR_WHO_EDGES):
        distances = {name: distance(edge_query, edge_vector(DOOR_EDGE_PEOPLE[name])) for name in names}
        closest = min(distances, key=distances.get)
        want_who = closest if distances[closest] < threshold else None
        who_hidden.append(Case(
            f"who/edge/{index}", f"Hidden test: a stub encoder as `model`, {len(names)} people, the closest "
            f"{'exactly at' if distances[closest] == threshold else 'against'} the threshold {threshold}",
            True, model_judge(door_judge(distances[closest], want_who, "identity", True))))
    cells["who_is_it_hidden"] = who_hidden
    return cells


def tiny_encoding_function():
    """``path -> fr_utils.img_to_encoding(path, tiny_encoder(DOOR_TINY_ENCODER_SEED))``, (1, 6)."""
    import fr_utils
    from fr_utils.checks.encoder import tiny_encoder

    network = tiny_encoder(DOOR_TINY_ENCODER_SEED)
    return lambda path: np.asarray(fr_utils.img_to_encoding(str(path), network), dtype=np.float32)


def encoding_judge(want: np.ndarray, hidden: bool, unit_length: bool = False, note: str = "") -> Judge:
    """An array of ``want``'s shape, finite, within 1% (relative L2 error) of ``want``; with
    ``unit_length`` only its shape and length (the public shape check)."""

    def judge(value):
        if isinstance(value, dict) and "called" in value:
            return ("img_to_encoding called fr_utils.img_to_encoding (or encode_images), the function this "
                    "exercise asks you to write, so this exercise's hidden test fails: write its steps "
                    "yourself (face_crop, standardise, the model)")
        if not isinstance(value, Array) or value.values is None:
            return f"it must return an array of shape {want.shape}, and returned {shown(value)}{note}"
        got = value.values.astype(np.float64)
        if got.shape != want.shape:
            return f"it must return an array of shape {want.shape}, and returned shape {got.shape}{note}"
        if not np.all(np.isfinite(got)):
            return "it returned NaN or infinite values"
        if unit_length:
            norm = float(np.linalg.norm(got))
            return None if math.isclose(norm, 1.0, rel_tol=1e-3) else f"the encoding has length {norm:.4f}, not 1"
        error = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))
        if error <= 1e-2:
            return None
        if hidden:
            return f"the encoding is not the right one (relative error {error:.3g}){note}"
        return f"the encoding differs from the reference encoding: relative error {error:.3g}"

    return judge


def distance_judge(want: float) -> Judge:
    def judge(value):
        got = as_number(value)
        if got is None:
            return f"it must return a single number, and returned {shown(value)}"
        if math.isfinite(got) and math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            return None
        return f"expected {want:.6g}, got {got:.6g}"

    return judge


def hidden_distance_judge(want: float) -> Judge:
    def judge(value):
        if not isinstance(value, list) or len(value) != 3:
            return "unexpected record"
        forward, backward, itself = (as_number(item) for item in value)
        if forward is None or isinstance(value[0], (list, tuple, dict)):
            return f"it must return a single number, and returned {shown(value[0])}"
        if not math.isclose(forward, want, rel_tol=1e-5):
            return f"your function returned {forward:.6g}, which is not the right value"
        if backward is None or not math.isclose(backward, want, rel_tol=1e-5):
            return "distance(v, u) must equal distance(u, v)"
        if itself != 0.0:
            return "a vector is at distance 0 from itself"
        return None

    return judge


def encoder_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import encoder as public
    from fr_utils.data import cast_photo
    from fr_utils.encoding import encode_images, face_crop
    from fr_utils.images import prewhiten
    from grader.encodings import encoding, model

    def label(path):
        return f"{path.parent.name}/{path.name}"

    shape_photo = label(cast_photo(public.SHAPE_PHOTO))
    cells = {
        "img_to_encoding_shape": [Case("encoder/shape", f"img_to_encoding({shape_photo!r}, model)", False,
                                       encoding_judge(np.zeros(DEFAULT_ENCODING_SHAPE), False, unit_length=True))],
        "img_to_encoding_reference": [
            Case(f"encoder/reference/{label(path)}", f"img_to_encoding({label(path)!r}, model)", False,
                 encoding_judge(encoding(path).astype(np.float64), False))
            for path in public.reference_photos()
        ],
    }
    tiny = {}
    hidden = []
    for index, (photo, how, encoder) in enumerate(ENCODER_HIDDEN):
        path = cast_photo(photo)
        if encoder == "model":
            want = encoding(path).astype(np.float64)
            what = f"Hidden test: img_to_encoding(Path({label(path)!r}), model)"
            note = ""
        else:
            seed = int(encoder.split(":")[1])
            network = tiny.setdefault(seed, public.tiny_encoder(seed))
            x = prewhiten(face_crop(path))  # the exercise's preprocessing, whatever the encoder
            want = np.asarray(network.predict_on_batch(x[None]), dtype=np.float64)
            what = f"Hidden test: img_to_encoding({label(path)!r}, another encoder with 6 outputs)"
            note = (". With another encoder passed as `model`, img_to_encoding must return that encoder's "
                    "output for the face: Use the model argument")
        hidden.append(Case(f"encoder/hidden/{index}", what, True, encoding_judge(want, True, note=note)))
    cells["img_to_encoding_hidden"] = hidden

    cast_photos = public.distance_cast_photos()
    cast_encodings = encode_images(list(cast_photos), model())
    cells["distance_public"] = [
        Case(key, situation, False, distance_judge(ref.distance(np.ravel(a), np.ravel(b))))
        for key, (a, b, situation) in public.distance_cases(cast_encodings, cast_photos).items()
    ]
    cells["distance_hidden"] = [
        Case(f"distance/hidden/{index}", f"Hidden test: two random vectors of shape {np.shape(u)}, dtype {u.dtype}",
             True, hidden_distance_judge(ref.distance(u, v)))
        for index, (u, v) in enumerate(public.random_vector_pairs(DISTANCE_SEED, DISTANCE_HIDDEN))
    ]
    return cells


def verification_cells() -> dict[str, list[Case]]:
    from fr_utils.checks import verification as public

    far_public = []
    for key, (far, k) in public.FAR_CASES.items():
        far_public.append(Case(key, f"false_accept_rate_1_to_k(far_1_to_1={far:g}, k={k})", False,
                               number_judge(ref.far_1_to_k(far, k), rtol=1e-6, atol=1e-12, hidden=False)))
    far_hidden = []
    for index, (how, far, k) in enumerate(FAR_HIDDEN):
        key = f"far/{how}/{index}"
        if how == "sweep":
            far_hidden.append(Case(key, f"Hidden test: far_1_to_1={far:g} and k = 0, 7, ..., {k - 1}", True,
                                   numbers_judge([ref.far_1_to_k(far, j) for j in range(0, k, 7)],
                                                 rtol=1e-6, atol=1e-12)))
            continue
        what = f"Hidden test: far_1_to_1={far:.4g}, k={k}"
        what += {"numpy": " (NumPy numbers)", "positional": " (by position)"}.get(how, "")
        far_hidden.append(Case(key, what, True, number_judge(
            ref.far_1_to_k(far, k), rtol=1e-9 if how == "numpy" else 1e-6, atol=1e-12, hidden=True)))
    max_public = [
        Case(key, f"max_enrolled(far_1_to_1={far:g}, budget={budget:g})", False,
             whole_number_judge(ref.max_enrolled(far, budget), hidden=False))
        for key, (far, budget) in public.MAX_ENROLLED_CASES.items()
    ]
    max_hidden = [
        Case(f"max_enrolled/{how}/{index}", f"Hidden test: far_1_to_1={far:.4g}, budget={budget:.4g}", True,
             whole_number_judge(ref.max_enrolled(far, budget), hidden=True))
        for index, (how, far, budget) in enumerate(MAX_ENROLLED_HIDDEN)
    ]
    return {"far_public": far_public, "far_hidden": far_hidden,
            "max_enrolled_public": max_public, "max_enrolled_hidden": max_hidden}


NOTEBOOKS: dict[str, Callable[[], dict[str, list[Case]]]] = {
    "triplet_loss": triplet_loss_cells,
    "verification_recognition": verification_cells,
    "door": door_cells,
    "pretrained_encoder": encoder_cells,
}
"""{notebook name: a function giving {grade_id: [Case, ...]} for its graded cells}."""


@functools.lru_cache(maxsize=None)
def graded_cells(notebook: str) -> Optional[dict[str, list[Case]]]:
    """The cases of ``notebook``'s graded cells (computed once per process), or None if the
    grader does not decide that notebook's grades."""
    build = NOTEBOOKS.get(notebook)
    if build is None:  # an instructor's own exercise: grader/exercises/<notebook>.py (grader/exercise.py)
        from grader.exercise import exercise_cells

        return exercise_cells(notebook)
    return build()
