"""Learner code for the triplet-loss assignment, right and wrong.

Each entry is the full source of a solution cell, as a learner would type it.
The code may use ``tf`` and ``np``, which the notebook's set-up cell imports.
``tests/test_checks_triplet.py`` runs them against the public checks directly;
``tests/test_autograde_triplet.py`` puts them into notebooks and autogrades them.
"""

from __future__ import annotations

from textwrap import dedent, indent


def _loss(body: str, head: str = "def triplet_loss(y_true, y_pred, alpha=0.2):") -> str:
    return head + "\n" + indent(dedent(body).strip("\n"), "    ") + "\n"


def _semi(body: str) -> str:
    return _loss(body, head="def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):")


# -- triplet_loss: correct, in different styles ---------------------------------

CORRECT_LOSS = {
    "reduce_sum": _loss("""
        anchor, positive, negative = y_pred[0], y_pred[1], y_pred[2]
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "norm_squared": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.square(tf.norm(anchor - positive, axis=1))
        neg_dist = tf.norm(anchor - negative, axis=1) ** 2
        return tf.reduce_sum(tf.nn.relu(pos_dist - neg_dist + alpha))
    """),
    "keras_ops": _loss("""
        from keras import ops
        anchor, positive, negative = y_pred
        pos_dist = ops.sum(ops.square(ops.subtract(anchor, positive)), axis=1)
        neg_dist = ops.sum(ops.square(ops.subtract(anchor, negative)), axis=1)
        return ops.sum(ops.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "einsum": _loss("""
        anchor, positive, negative = y_pred
        to_pos, to_neg = anchor - positive, anchor - negative
        pos_dist = tf.einsum("ij,ij->i", to_pos, to_pos)
        neg_dist = tf.einsum("ij,ij->i", to_neg, to_neg)
        return tf.einsum("i->", tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "unstack": _loss("""
        anchor, positive, negative = tf.unstack(tf.stack(y_pred))
        gap = tf.math.squared_difference(anchor, positive) - tf.math.squared_difference(anchor, negative)
        per_triplet = tf.clip_by_value(tf.reduce_sum(gap, axis=1) + alpha, 0.0, np.inf)
        return tf.reduce_sum(per_triplet)
    """),
}


# -- triplet_loss: the usual mistakes -------------------------------------------

WRONG_LOSS = {
    "mean_not_sum": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_mean(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "axis_0": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=0)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=0)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "no_axis": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive))
        neg_dist = tf.reduce_sum(tf.square(anchor - negative))
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "no_max": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(pos_dist - neg_dist + alpha)
    """),
    "max_of_sum": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.maximum(tf.reduce_sum(pos_dist - neg_dist + alpha), 0.0)
    """),
    "alpha_forgotten": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist, 0.0))
    """),
    "alpha_subtracted": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist - alpha, 0.0))
    """),
    "not_squared": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.norm(anchor - positive, axis=-1)
        neg_dist = tf.norm(anchor - negative, axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "numpy_value": _loss("""
        anchor, positive, negative = (t.numpy() for t in y_pred)
        pos_dist = np.sum((anchor - positive) ** 2, axis=-1)
        neg_dist = np.sum((anchor - negative) ** 2, axis=-1)
        return np.sum(np.maximum(pos_dist - neg_dist + alpha, 0.0))
    """),
    "alpha_hard_coded": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + 0.2, 0.0))
    """),
    "swapped": _loss("""
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(neg_dist - pos_dist + alpha, 0.0))
    """),
}

# A loss that never returns once called: the checks' time limit must stop it.
ENDLESS_LOSS = _loss("""
    anchor, positive, negative = y_pred
    total, i = 0.0, 0
    while i < anchor.shape[0]:
        total += tf.maximum(tf.reduce_sum(tf.square(anchor[i] - positive[i]))
                            - tf.reduce_sum(tf.square(anchor[i] - negative[i])) + alpha, 0.0)
    return total
""")

# A solution cell that itself never finishes: nbgrader's cell timeout must stop it.
ENDLESS_CELL = CORRECT_LOSS["reduce_sum"] + "\n\nwhile True:  # 'just checking something'\n    pass\n"


# -- semi_hard_negatives ------------------------------------------------------

CORRECT_SEMI_HARD = {
    "tf_masked_argmin": _semi("""
        d_ap = tf.reduce_sum(tf.square(anchor - positive), axis=1)
        d_an = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=2)
        inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
        masked = tf.where(inside, d_an, tf.fill(tf.shape(d_an), np.inf))
        best = tf.argmin(masked, axis=1)
        return tf.where(tf.reduce_any(inside, axis=1), best, tf.constant(-1, best.dtype))
    """),
    "numpy_loops": _semi("""
        a, p, n = (np.asarray(x, dtype=np.float64) for x in (anchor, positive, negatives))
        chosen = []
        for i in range(len(a)):
            d_ap = np.sum((a[i] - p[i]) ** 2)
            best, best_distance = -1, np.inf
            for j in range(len(n)):
                d_an = np.sum((a[i] - n[j]) ** 2)
                if d_ap < d_an < d_ap + alpha and d_an < best_distance:
                    best, best_distance = j, d_an
            chosen.append(best)
        return np.array(chosen)
    """),
    "matmul_expansion": _semi("""
        sq_a = tf.reduce_sum(anchor * anchor, axis=1, keepdims=True)
        sq_n = tf.reduce_sum(negatives * negatives, axis=1)
        d_an = sq_a - 2.0 * tf.matmul(anchor, negatives, transpose_b=True) + sq_n
        d_ap = tf.reduce_sum(tf.square(anchor - positive), axis=1, keepdims=True)
        inside = tf.logical_and(d_an > d_ap, d_an < d_ap + alpha)
        penalty = tf.where(inside, d_an, 1e9)
        return tf.where(tf.reduce_any(inside, axis=1), tf.argmin(penalty, axis=1), -1)
    """),
}

WRONG_SEMI_HARD = {
    "hardest_negative": _semi("""
        d_an = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=2)
        return tf.argmin(d_an, axis=1)
    """),
    "no_minus_one": _semi("""
        d_ap = tf.reduce_sum(tf.square(anchor - positive), axis=1)
        d_an = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=2)
        inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
        return tf.argmin(tf.where(inside, d_an, np.inf), axis=1)
    """),
    "plain_distances": _semi("""
        d_ap = tf.norm(anchor - positive, axis=1)
        d_an = tf.norm(anchor[:, None, :] - negatives[None, :, :], axis=2)
        inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
        best = tf.argmin(tf.where(inside, d_an, np.inf), axis=1)
        return tf.where(tf.reduce_any(inside, axis=1), best, tf.constant(-1, best.dtype))
    """),
}

# Slips that only the hidden edge case sees (issue #19): a negative exactly on an edge of the band.
EDGE_SEMI_HARD = {
    "lower_edge_inclusive": _semi("""
        d_ap = tf.reduce_sum(tf.square(anchor - positive), axis=1)
        d_an = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=2)
        inside = (d_an >= d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
        best = tf.argmin(tf.where(inside, d_an, np.inf), axis=1)
        return tf.where(tf.reduce_any(inside, axis=1), best, tf.constant(-1, best.dtype))
    """),
    "upper_edge_inclusive": _semi("""
        a, p, n = (np.asarray(x, dtype=np.float64) for x in (anchor, positive, negatives))
        d_ap = np.sum((a - p) ** 2, axis=1)[:, None]
        d_an = np.sum((a[:, None, :] - n[None, :, :]) ** 2, axis=2)
        inside = (d_an > d_ap) & (d_an <= d_ap + alpha)
        return np.where(inside.any(axis=1), np.where(inside, d_an, np.inf).argmin(axis=1), -1)
    """),
}

# Correct, vectorised in float64 NumPy (the edge case must give it full marks too).
CORRECT_SEMI_HARD["numpy_float64_vectorised"] = _semi("""
    a, p, n = (np.asarray(x, dtype=np.float64) for x in (anchor, positive, negatives))
    d_ap = np.sum((a - p) ** 2, axis=1)[:, None]
    d_an = np.sum((a[:, None, :] - n[None, :, :]) ** 2, axis=2)
    inside = (d_an > d_ap) & (d_an < d_ap + alpha)
    return np.where(inside.any(axis=1), np.where(inside, d_an, np.inf).argmin(axis=1), -1)
""")
