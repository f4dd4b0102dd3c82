"""Learner code for the two introductory assignments, right and wrong.

Each entry is the full source of a solution cell, as a learner would type it.
The code may use ``np``, ``math`` and the names the notebook's set-up cell
imports.  ``tests/test_intro_checks.py`` runs them against the public checks
directly; ``tests/test_autograde_intro.py`` puts them into notebooks and
autogrades them.

``verification_recognition``: ``false_accept_rate_1_to_k`` and ``max_enrolled``.
``pretrained_encoder``: ``img_to_encoding`` (whose first line, ``face_crop``, the
notebook gives) and ``distance``.
"""

from __future__ import annotations

from textwrap import dedent, indent


def _function(head: str, body: str) -> str:
    return head + "\n" + indent(dedent(body).strip("\n"), "    ") + "\n"


def _far(body: str) -> str:
    return _function("def false_accept_rate_1_to_k(far_1_to_1, k):", body)


def _max(body: str) -> str:
    return _function("def max_enrolled(far_1_to_1, budget):", body)


def _enc(body: str) -> str:
    return _function("def img_to_encoding(image_path, model):",
                     "face = face_crop(image_path)\n" + dedent(body).strip("\n"))


def _dist(body: str) -> str:
    return _function("def distance(encoding_1, encoding_2):", body)


# -- false_accept_rate_1_to_k -------------------------------------------------

CORRECT_FAR = {
    "power": _far("return 1 - (1 - far_1_to_1) ** k"),
    "np_power": _far("return float(1.0 - np.power(1.0 - far_1_to_1, k))"),
    "log1p": _far("""
        if far_1_to_1 == 1:
            return 1.0 if k > 0 else 0.0
        return -math.expm1(k * math.log1p(-far_1_to_1))
    """),
    "loop": _far("""
        all_reject = 1.0
        for _ in range(k):
            all_reject *= 1 - far_1_to_1
        return 1 - all_reject
    """),
}

WRONG_FAR = {
    "times_k": _far("return far_1_to_1 * k"),
    "none_accept": _far("return (1 - far_1_to_1) ** k"),
    "all_accept": _far("return far_1_to_1 ** k"),
    "off_by_one": _far("return 1 - (1 - far_1_to_1) ** (k - 1)"),
    "capped_sum": _far("return min(far_1_to_1 * k, 1.0)"),
}

# Never returns: the checks' time limit must stop it.
ENDLESS_FAR = _far("""
    total, i = 0.0, 0
    while i < k:
        total = 1 - (1 - total) * (1 - far_1_to_1)
    return total
""")


# -- max_enrolled ---------------------------------------------------------------

CORRECT_MAX = {
    "log_floor": _max("return math.floor(math.log(1 - budget) / math.log(1 - far_1_to_1))"),
    "np_floor": _max("return int(np.floor(np.log1p(-budget) / np.log1p(-far_1_to_1)))"),
    "count_up": _max("""
        k = 0
        while 1 - (1 - far_1_to_1) ** (k + 1) <= budget:
            k += 1
        return k
    """),
}

WRONG_MAX = {
    "linear": _max("return int(budget / far_1_to_1)"),
    "rounded": _max("return round(math.log(1 - budget) / math.log(1 - far_1_to_1))"),
    "ceil": _max("return math.ceil(math.log(1 - budget) / math.log(1 - far_1_to_1))"),
}

# Slips that only the hidden edge cases see (issue #19): 1 - (1 - far)^K exactly equal to the budget.
EDGE_MAX = {
    "strict_budget": _max("""
        k = 0
        while 1 - (1 - far_1_to_1) ** (k + 1) < budget:
            k += 1
        return k
    """),
}

# Correct, with base-2 logarithms: exact on the edge cases too.
CORRECT_MAX["log2"] = _max("return math.floor(math.log2(1 - budget) / math.log2(1 - far_1_to_1))")


# -- img_to_encoding --------------------------------------------------------------

CORRECT_ENCODING = {
    "predict_on_batch": _enc("""
        x = face.astype(np.float32)
        x = (x - x.mean()) / x.std()
        return model.predict_on_batch(x[np.newaxis])
    """),
    "call_and_numpy": _enc("""
        x = np.expand_dims((face - np.mean(face)) / np.std(face), axis=0).astype("float32")
        return model(x, training=False).numpy()
    """),
    "predict": _enc("""
        batch = np.array([face], dtype=np.float32)
        batch = (batch - batch.mean()) / batch.std()
        return model.predict(batch, verbose=0)
    """),
    "fr_utils_prewhiten": _enc("""
        return model.predict_on_batch(fr_utils.prewhiten(face)[np.newaxis])
    """),
}

WRONG_ENCODING = {
    "no_standardisation": _enc("return model.predict_on_batch(face[np.newaxis].astype(np.float32))"),
    "divided_by_255": _enc("return model.predict_on_batch(face[np.newaxis].astype(np.float32) / 255.0)"),
    "fixed_standardisation": _enc("""
        x = (face.astype(np.float32) - 127.5) / 128.0
        return model.predict_on_batch(x[np.newaxis])
    """),
    "per_channel": _enc("""
        x = face.astype(np.float32)
        x = (x - x.mean(axis=(0, 1))) / x.std(axis=(0, 1))
        return model.predict_on_batch(x[np.newaxis])
    """),
    "no_batch_axis": _enc("""
        x = face.astype(np.float32)
        x = (x - x.mean()) / x.std()
        return model.predict_on_batch(x[np.newaxis])[0]
    """),
    "global_model": _enc("""
        x = face.astype(np.float32)
        x = (x - x.mean()) / x.std()
        return fr_utils.load_facenet().predict_on_batch(x[np.newaxis])
    """),
}


# -- distance -----------------------------------------------------------------------

CORRECT_DISTANCE = {
    "linalg_norm": _dist("return float(np.linalg.norm(encoding_1 - encoding_2))"),
    "sqrt_sum": _dist("return np.sqrt(np.sum(np.square(np.subtract(encoding_1, encoding_2))))"),
    "ravel_loop": _dist("""
        a, b = np.ravel(encoding_1), np.ravel(encoding_2)
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    """),
}

WRONG_DISTANCE = {
    "squared": _dist("return float(np.sum((encoding_1 - encoding_2) ** 2))"),
    "unit_vectors_only": _dist("return float(np.sqrt(2 - 2 * np.sum(encoding_1 * encoding_2)))"),
    "per_row": _dist("return np.linalg.norm(encoding_1 - encoding_2, axis=-1)"),
}
