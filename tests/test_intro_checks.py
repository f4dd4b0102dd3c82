"""The public checks of the introductory assignments (fr_utils.checks.verification and
fr_utils.checks.encoder), run directly on right and wrong learner code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fr_utils.checks import encoder, verification
from grader import references
from intro_submissions import (
    CORRECT_DISTANCE,
    CORRECT_ENCODING,
    CORRECT_FAR,
    CORRECT_MAX,
    WRONG_DISTANCE,
    WRONG_ENCODING,
    WRONG_FAR,
    WRONG_MAX,
)

FAR_CHECKS = [verification.check_far_one_person, verification.check_far_two_people,
              verification.check_far_many_people, verification.check_far_edge_cases]
MAX_CHECKS = [verification.check_max_enrolled_small, verification.check_max_enrolled_door,
              verification.check_max_enrolled_budget_below_far]


def _define(source: str, name: str, **extra):
    """Run a solution cell's source as the notebook would, and return the function."""
    import fr_utils

    namespace = {"np": np, "math": math, "fr_utils": fr_utils, "face_crop": fr_utils.face_crop, **extra}
    exec(source, namespace)  # noqa: S102 - learner code written in this repository
    return namespace[name]


def _failures(function, checks, *args) -> list[str]:
    """The messages of the checks that fail, each called as ``check(function, *args)``."""
    messages = []
    for check in checks:
        try:
            check(function, *args)
        except AssertionError as error:
            messages.append(str(error))
    return messages


# -- the references ------------------------------------------------------------


def test_far_reference_is_the_complement_of_all_rejecting():
    for far in (0.0, 1e-9, 0.003, 0.5, 0.999):
        for k in (0, 1, 2, 17, 1000):
            brute = 1.0
            for _ in range(k):
                brute *= 1.0 - far
            assert math.isclose(references.far_1_to_k(far, k), 1.0 - brute, rel_tol=1e-7, abs_tol=1e-15)
    assert references.far_1_to_k(1.0, 3) == 1.0
    assert references.far_1_to_k(1.0, 0) == 0.0


@pytest.mark.parametrize("far,budget", [(0.1, 0.2), (1e-3, 0.1), (2e-3, 0.1), (1e-5, 0.01), (0.05, 0.01), (0.3, 0.0)])
def test_max_enrolled_reference_is_the_largest_k_within_budget(far, budget):
    k = references.max_enrolled(far, budget)
    assert references.far_1_to_k(far, k) <= budget
    assert references.far_1_to_k(far, k + 1) > budget


# -- false_accept_rate_1_to_k and max_enrolled -----------------------------------


@pytest.mark.parametrize("style", sorted(CORRECT_FAR))
def test_correct_far_styles_pass(style):
    assert _failures(_define(CORRECT_FAR[style], "false_accept_rate_1_to_k"), FAR_CHECKS) == []


@pytest.mark.parametrize("style", sorted(CORRECT_MAX))
def test_correct_max_enrolled_styles_pass(style):
    assert _failures(_define(CORRECT_MAX[style], "max_enrolled"), MAX_CHECKS) == []


FAR_MESSAGES = {
    "times_k": "you multiplied the rate by K",
    "none_accept": "every one of the K comparisons REJECTS",
    "all_accept": "ALL K comparisons accept",
    "off_by_one": "the exponent is off by one (K - 1)",
    "capped_sum": "expected 0.19, got 0.2",
}


@pytest.mark.parametrize("mistake", sorted(WRONG_FAR))
def test_far_mistakes_fail_with_their_hint(mistake):
    failures = _failures(_define(WRONG_FAR[mistake], "false_accept_rate_1_to_k"), FAR_CHECKS)
    assert failures, f"{mistake} passed every check"
    assert any(FAR_MESSAGES[mistake] in message for message in failures), failures


MAX_MESSAGES = {
    "linear": "you divided the budget by the rate",
    "rounded": "Round it DOWN",
    "ceil": "above the budget",
}


@pytest.mark.parametrize("mistake", sorted(WRONG_MAX))
def test_max_enrolled_mistakes_fail_with_their_hint(mistake):
    failures = _failures(_define(WRONG_MAX[mistake], "max_enrolled"), MAX_CHECKS)
    assert failures, f"{mistake} passed every check"
    assert any(MAX_MESSAGES[mistake] in message for message in failures), failures


def test_not_implemented_and_non_numbers_are_explained():
    def unfinished(far_1_to_1, k):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        verification.check_far_runs(unfinished)
    with pytest.raises(AssertionError, match="returned None"):
        verification.check_far_runs(lambda far_1_to_1, k: None)
    with pytest.raises(AssertionError, match="shape"):
        verification.check_far_two_people(lambda far_1_to_1, k: np.array([0.19, 0.19]))
    with pytest.raises(AssertionError, match="not a whole number"):
        verification.check_max_enrolled_door(lambda far_1_to_1, budget: 105.3)


# -- img_to_encoding and distance ---------------------------------------------------


@pytest.fixture(scope="module")
def encoding_failures(facenet):
    """{submission: [messages]} for every img_to_encoding, right or wrong (one pass, shared)."""
    checks = [encoder.check_encoding_shape, encoder.check_encoding_matches_reference]
    result = {}
    for name, source in {**CORRECT_ENCODING, **WRONG_ENCODING}.items():
        result[name] = _failures(_define(source, "img_to_encoding"), checks, facenet)
    return result


@pytest.mark.parametrize("style", sorted(CORRECT_ENCODING))
def test_correct_encoding_styles_pass(encoding_failures, style):
    assert encoding_failures[style] == []


ENCODING_MESSAGES = {
    "no_standardisation": "the raw pixel values, 0 to 255",
    "divided_by_255": "pixels divided by 255",
    "fixed_standardisation": "the fixed standardisation (x - 127.5) / 128 of the 512-number",
    "per_channel": "per colour channel",
    "no_batch_axis": "Keep the batch axis",
}


@pytest.mark.parametrize("mistake", sorted(ENCODING_MESSAGES))
def test_encoding_mistakes_fail_with_their_hint(encoding_failures, mistake):
    assert encoding_failures[mistake]
    assert ENCODING_MESSAGES[mistake] in encoding_failures[mistake][0]


def test_global_model_passes_the_public_checks_only(encoding_failures):
    # ignoring the model argument is caught by the notebook's hidden test (another encoder)
    assert encoding_failures["global_model"] == []


def test_bgr_is_named(facenet):
    from fr_utils import face_crop
    from fr_utils.images import prewhiten

    def bgr(image_path, model):
        return model.predict_on_batch(prewhiten(face_crop(image_path)[..., ::-1])[None])

    with pytest.raises(AssertionError, match="BGR"):
        encoder.check_encoding_matches_reference(bgr, facenet)


DISTANCE_CHECKS = [encoder.check_distance_345, encoder.check_distance_shapes]


@pytest.mark.parametrize("style", sorted(CORRECT_DISTANCE))
def test_correct_distance_styles_pass(style, facenet):
    function = _define(CORRECT_DISTANCE[style], "distance")
    assert _failures(function, DISTANCE_CHECKS) == []
    pairs = encoder.check_distance_on_cast(function, facenet)
    assert list(pairs) == ["Barack_Obama/Barack_Obama_0001.jpg - Barack_Obama/Barack_Obama_0002.jpg",
                           "Barack_Obama/Barack_Obama_0001.jpg - Joseph_Biden/Joseph_Biden_0001.jpg"]  # the shipped cast
    same, other = pairs.values()
    assert same < 0.8 < 1.2 < other


DISTANCE_MESSAGES = {
    "squared": "SQUARED distance",
    "unit_vectors_only": "only for vectors of length 1",
    "per_row": "return a single number",
}


@pytest.mark.parametrize("mistake", sorted(WRONG_DISTANCE))
def test_distance_mistakes_fail_with_their_hint(mistake):
    with np.errstate(invalid="ignore"):  # sqrt(2 - 2 u.v) of vectors longer than 1
        failures = _failures(_define(WRONG_DISTANCE[mistake], "distance"), DISTANCE_CHECKS)
    assert failures and DISTANCE_MESSAGES[mistake] in failures[0], failures
