"""Adversarial submissions: what a student might try to get marks they did not earn.

``ATTACKS`` is a list of ``(name, grade_id, code)``: the code replaces the
solution cell ``grade_id`` of the student version (the other solution cells get
the instructor's solution).  The tests that grade them through the real
nbgrader cycle say what each must end with (its honest score, nothing leaked).
"""

from __future__ import annotations

from textwrap import dedent, indent

ATTACKS: list[tuple[str, str, str]] = []


# -- grading decisions (issue #13 item 2, issue #19 item 4): tests/test_autograde_decisions.py ------

_MEAN_LOSS = dedent("""
    def triplet_loss(y_true, y_pred, alpha=0.2):
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_mean(tf.maximum(pos_dist - neg_dist + alpha, 0.0))  # the mean: wrong
""")

_RIGHT_SEMI_HARD_BODY = indent(dedent("""
        pos = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=-1)
        band = (neg > pos[:, None]) & (neg < pos[:, None] + alpha)
        best = tf.argmin(tf.where(band, neg, np.inf), axis=1)
        return tf.where(tf.reduce_any(band, axis=1), best, tf.constant(-1, best.dtype))
"""), "    ")

DECISION_ATTACKS: list[tuple[str, str, str]] = [
    # numpy's and math's comparisons replaced so that every in-kernel assertion passes
    ("numpy-comparisons-patched", "triplet_loss_solution", dedent("""
        import math
        np.isclose = np.allclose = np.array_equal = lambda *args, **kwargs: True
        math.isclose = lambda *args, **kwargs: True
    """) + _MEAN_LOSS),
    # an IPython input transformer that blanks every later cell calling the checks
    ("input-transformer-blanks-tests", "triplet_loss_solution", dedent("""
        def _blank_tests(lines):
            return ["pass\\n"] if "checks." in "".join(lines) else lines

        get_ipython().input_transformers_cleanup.append(_blank_tests)
    """) + _MEAN_LOSS),
    # the expected value read from the calling test's frame
    ("expected-value-from-frame", "triplet_loss_solution", dedent("""
        import sys

        def triplet_loss(y_true, y_pred, alpha=0.2):
            frame = sys._getframe(1)
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    for name in ("_want", "want", "expected", "_expected"):
                        if isinstance(scope.get(name), (int, float)):
                            return tf.constant(float(scope[name]))
                frame = frame.f_back
            return tf.constant(0.0)
    """)),
    # the public checks' reference implementation called instead of writing one
    ("reference-called", "semi_hard_solution", dedent("""
        from fr_utils.checks import triplet_loss as _public

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            return _public._semi_hard_reference(anchor.numpy(), positive.numpy(), negatives.numpy(), alpha)
    """)),
    # right answers, but the source of every calling frame printed (the hidden test's included)
    ("prints-callers-source", "semi_hard_solution", dedent("""
        import linecache
        import sys

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            frame = sys._getframe(1)
            while frame is not None:
                print("".join(linecache.getlines(frame.f_code.co_filename)) or frame.f_code.co_filename)
                frame = frame.f_back
    """) + _RIGHT_SEMI_HARD_BODY),
    # right answers, and every notebook and the gradebook found above printed
    ("prints-instructor-notebook", "semi_hard_solution", dedent("""
        import glob

        def _print_course():
            for path in glob.glob("../../../**/*.ipynb", recursive=True) + glob.glob("../../../*.db"):
                try:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        print(handle.read())
                except OSError:
                    pass

        _print_course()

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            _print_course()
    """) + _RIGHT_SEMI_HARD_BODY),
]

DECISION_ATTACKS += [
    # the introductory assignments: the checks' former references, patched comparisons, fr_utils' encoder
    ("far-reference-called", "far_solution", dedent("""
        from fr_utils.checks import verification as _public

        def false_accept_rate_1_to_k(far_1_to_1, k):
            return _public.far_1_to_k_reference(far_1_to_1, k)
    """)),
    ("max-enrolled-reference-called", "max_enrolled_solution", dedent("""
        from fr_utils.checks import verification as _public

        def max_enrolled(far_1_to_1, budget):
            return _public.max_enrolled_reference(far_1_to_1, budget)
    """)),
    ("far-comparisons-patched", "far_solution", dedent("""
        math.isclose = np.isclose = np.allclose = lambda *args, **kwargs: True

        def false_accept_rate_1_to_k(far_1_to_1, k):
            return far_1_to_1 * k  # the linear approximation: wrong
    """)),
    ("encoder-reference-called", "img_to_encoding_solution", dedent("""
        from fr_utils import img_to_encoding as _theirs

        def img_to_encoding(image_path, model):
            return _theirs(image_path, model)
    """)),
]

ATTACKS += DECISION_ATTACKS
