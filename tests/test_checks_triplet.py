"""The public checks of the triplet-loss assignment, run directly (no notebook).

Every correct style must pass every check; every usual mistake must fail with
the message that names it, so learners read a useful hint, not just "wrong".
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from fr_utils.checks import FunctionTimedOut, call_with_time_limit
from fr_utils.checks import _runner
from fr_utils.checks import triplet_loss as checks
from grader import references
from triplet_submissions import CORRECT_LOSS, CORRECT_SEMI_HARD, WRONG_LOSS, WRONG_SEMI_HARD

LOSS_CHECKS = [
    checks.check_perfect_triplet,
    checks.check_margin_only,
    checks.check_max_with_zero,
    checks.check_batch_sum,
    checks.check_axis,
    checks.check_returns_tensor,
    checks.check_seeded_value,
    checks.check_triplet_loss_runs,
]
SEMI_CHECKS = [
    checks.check_semi_hard_single,
    checks.check_no_semi_hard,
    checks.check_semi_hard_batch,
    checks.check_semi_hard_runs,
]


def compile_function(source: str, name: str):
    """Define a learner's function the way its notebook cell would."""
    namespace = {"tf": tf, "np": np}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def failure(check, function) -> str:
    with pytest.raises(AssertionError) as caught:
        check(function)
    return str(caught.value)


# -- triplet_loss -----------------------------------------------------------------


def test_the_seeded_value_is_what_tensorflow_gives():
    anchor, positive, negative = checks.seeded_triplets()
    assert anchor.shape == positive.shape == negative.shape == (3, 128)
    reference = references.triplet_loss(anchor.numpy(), positive.numpy(), negative.numpy(), 0.2)
    assert reference == pytest.approx(checks.SEEDED_EXPECTED, abs=5e-4)
    # and it does not depend on what ran before: the seed is reset
    tf.random.normal([7], seed=1)
    again = checks.seeded_triplets()[0]
    np.testing.assert_array_equal(again.numpy(), anchor.numpy())


@pytest.mark.parametrize("style", sorted(CORRECT_LOSS))
def test_correct_losses_pass_every_check(style):
    triplet_loss = compile_function(CORRECT_LOSS[style], "triplet_loss")
    for check in LOSS_CHECKS:
        check(triplet_loss)
    assert checks.check_seeded_value(triplet_loss) == pytest.approx(527.2598, abs=1e-2)


# (check that must fail, words its message must contain)
LOSS_MISTAKE_MESSAGES = {
    "mean_not_sum": [(checks.check_batch_sum, "tf.reduce_sum, not tf.reduce_mean"),
                     (checks.check_seeded_value, "expected 527.2598, got 175.7533")],
    "axis_0": [(checks.check_axis, "over axis 0, the batch axis")],
    "no_axis": [(checks.check_axis, "over all axes (no axis argument)")],
    "no_max": [(checks.check_max_with_zero, "A loss is never negative"),
               (checks.check_max_with_zero, "without clipping at 0")],
    "max_of_sum": [(checks.check_batch_sum, "max of the sum"),
                   (checks.check_axis, "max of the sum")],
    "alpha_forgotten": [(checks.check_margin_only, "alpha is missing"),
                        (checks.check_batch_sum, "Likely cause: alpha is missing")],
    "alpha_subtracted": [(checks.check_margin_only, "alpha is subtracted"),
                         (checks.check_batch_sum, "Likely cause: alpha is subtracted")],
    "not_squared": [(checks.check_batch_sum, "plain Euclidean distances, not squared")],
    "numpy_value": [(checks.check_returns_tensor, "returned a numpy.float32, not a TensorFlow tensor")],
    "alpha_hard_coded": [(checks.check_margin_only, "Use the alpha argument")],
    "swapped": [(checks.check_perfect_triplet, "distances are swapped")],
}


@pytest.mark.parametrize("mistake", sorted(WRONG_LOSS))
def test_each_loss_mistake_gets_its_own_message(mistake):
    triplet_loss = compile_function(WRONG_LOSS[mistake], "triplet_loss")
    for check, words in LOSS_MISTAKE_MESSAGES[mistake]:
        message = failure(check, triplet_loss)
        assert words in message, f"{check.__name__}: {message}"
        assert "expected" in message or "TensorFlow" in message


def test_every_mistake_has_a_message_test():
    assert set(LOSS_MISTAKE_MESSAGES) == set(WRONG_LOSS)


def test_messages_quote_expected_and_returned_values():
    triplet_loss = compile_function(WRONG_LOSS["mean_not_sum"], "triplet_loss")
    message = failure(checks.check_batch_sum, triplet_loss)
    assert "losses are 0.95, 3.20, 0.00" in message
    assert "expected 4.1500, got 1.3833" in message


def test_unclear_results_get_no_false_diagnosis():
    def triplet_loss(y_true, y_pred, alpha=0.2):
        return tf.constant(12345.0)

    message = failure(checks.check_batch_sum, triplet_loss)
    assert "expected 4.1500, got 12345.0000" in message
    assert "Likely cause" not in message


def test_a_value_cut_from_the_graph_is_caught_by_the_gradient_check():
    def triplet_loss(y_true, y_pred, alpha=0.2):
        anchor, positive, negative = (t.numpy() for t in y_pred)
        basic = np.sum((anchor - positive) ** 2, -1) - np.sum((anchor - negative) ** 2, -1) + alpha
        return tf.constant(np.sum(np.maximum(basic, 0.0)))

    checks.check_batch_sum(triplet_loss)  # the value is right...
    assert "No gradient flows" in failure(checks.check_returns_tensor, triplet_loss)


def test_shapes_and_missing_returns_are_explained():
    def per_example(y_true, y_pred, alpha=0.2):
        anchor, positive, negative = y_pred
        return tf.maximum(tf.reduce_sum((anchor - positive) ** 2, -1)
                          - tf.reduce_sum((anchor - negative) ** 2, -1) + alpha, 0.0)

    def no_return(y_true, y_pred, alpha=0.2):
        tf.reduce_sum(y_pred[0])

    assert "shape (3,)" in failure(checks.check_batch_sum, per_example)
    assert "tensor of shape (3,)" in failure(checks.check_returns_tensor, per_example)
    assert "returned None: did you forget `return loss`?" in failure(checks.check_batch_sum, no_return)


def test_the_unfinished_stub_says_so():
    def triplet_loss(y_true, y_pred, alpha=0.2):
        raise NotImplementedError()

    for check in LOSS_CHECKS:
        assert "triplet_loss is not implemented yet" in failure(check, triplet_loss)


def test_a_learners_own_error_keeps_its_type():
    def triplet_loss(y_true, y_pred, alpha=0.2):
        return y_pred.shape  # tuples have no .shape

    with pytest.raises(AttributeError):
        checks.check_perfect_triplet(triplet_loss)


# -- semi_hard_negatives ----------------------------------------------------------


@pytest.mark.parametrize("style", sorted(CORRECT_SEMI_HARD))
def test_correct_semi_hard_selections_pass_every_check(style):
    semi_hard_negatives = compile_function(CORRECT_SEMI_HARD[style], "semi_hard_negatives")
    for check in SEMI_CHECKS:
        check(semi_hard_negatives)


SEMI_MISTAKE_MESSAGES = {
    "hardest_negative": [(checks.check_semi_hard_single, "negative 2 is HARD"),
                         (checks.check_no_semi_hard, "so the answer is -1")],
    "no_minus_one": [(checks.check_no_semi_hard, "expected [-1], got [0]"),
                     (checks.check_no_semi_hard, "No negative lies in the band")],
    "plain_distances": [(checks.check_semi_hard_batch, "plain (not squared) distances")],
}


@pytest.mark.parametrize("mistake", sorted(WRONG_SEMI_HARD))
def test_each_semi_hard_mistake_gets_its_own_message(mistake):
    semi_hard_negatives = compile_function(WRONG_SEMI_HARD[mistake], "semi_hard_negatives")
    for check, words in SEMI_MISTAKE_MESSAGES[mistake]:
        message = failure(check, semi_hard_negatives)
        assert words in message, f"{check.__name__}: {message}"


def test_semi_hard_other_mistakes():
    def first_in_band(anchor, positive, negatives, alpha=0.2):
        d_ap = tf.reduce_sum(tf.square(anchor - positive), axis=1)
        d_an = tf.reduce_sum(tf.square(anchor[:, None] - negatives[None]), axis=2)
        inside = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
        first = tf.argmax(tf.cast(inside, tf.int32), axis=1)
        return tf.where(tf.reduce_any(inside, axis=1), first, -1)

    def fixed_alpha(anchor, positive, negatives, alpha=0.2):
        return references.semi_hard_negatives(anchor.numpy(), positive.numpy(), negatives.numpy(), 0.2)

    def floats(anchor, positive, negatives, alpha=0.2):
        return references.semi_hard_negatives(
            anchor.numpy(), positive.numpy(), negatives.numpy(), alpha).astype(float)

    def column(anchor, positive, negatives, alpha=0.2):
        return references.semi_hard_negatives(
            anchor.numpy(), positive.numpy(), negatives.numpy(), alpha)[:, None]

    assert "negative 1 is semi-hard but not the hardest one" in failure(
        checks.check_semi_hard_single, first_in_band)
    assert "This is the answer for alpha=0.2: use the alpha argument." in failure(
        checks.check_semi_hard_batch, fixed_alpha)
    assert "integer indices" in failure(checks.check_semi_hard_single, floats)
    assert "returned shape (1, 1); expected (1,)" in failure(checks.check_semi_hard_single, column)


# -- the time limit -------------------------------------------------------------


def test_a_function_that_never_returns_fails_fast_and_only_once(monkeypatch):
    monkeypatch.setattr(_runner, "DEFAULT_TIME_LIMIT_S", 0.5)

    def triplet_loss(y_true, y_pred, alpha=0.2):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # a learner's over-broad except must not swallow the limit
                pass

    started = time.perf_counter()
    first = failure(checks.check_perfect_triplet, triplet_loss)
    second = failure(checks.check_batch_sum, triplet_loss)
    assert time.perf_counter() - started < 5
    assert "did not return within 0.5 s" in first
    assert "already ran out of time" in second


def test_the_time_limit_leaves_quick_functions_alone():
    previous = signal.getsignal(signal.SIGALRM)
    assert call_with_time_limit(lambda x, y=1: x + y, 2, y=3, seconds=1) == 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left pending
    assert signal.getsignal(signal.SIGALRM) is previous


def test_timed_out_is_an_assertion_error():
    assert issubclass(FunctionTimedOut, AssertionError)
