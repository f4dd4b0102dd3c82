"""FaceNet's triplet loss with online semi-hard mining, on a batch of embeddings and labels.

FaceNet (Schroff et al., 2015, section 3.2) forms its triplets *inside* each
mini-batch: every anchor-positive pair of the batch is used, and its negative is a
*semi-hard* one, farther from the anchor than the positive but still inside the
margin:  ``d(a, p) < d(a, n) < d(a, p) + margin`` (squared L2 distances).

Here a batch holds P identities x K images.  For each anchor-positive pair, the
loss is the **average over its semi-hard negatives** of
``d(a, p) - d(a, n) + margin``, which is the expected loss of FaceNet's choice of
one of them at random, without the noise; the batch loss is the mean over the
pairs that have at least one semi-hard negative (0 when none has).  Everything is
computed at once on (n, n, n) tensors: no Python loop over triplets.

All functions take ``labels`` of shape (n,) (integers; anything that flattens to
(n,)) and ``embeddings`` of shape (n, d), Keras tensors or arrays.
"""

from __future__ import annotations

import keras
from keras import ops


def pairwise_squared_distances(embeddings):
    """(n, d) embeddings -> (n, n) squared L2 distances, clipped at 0."""
    embeddings = ops.convert_to_tensor(embeddings, dtype="float32")
    squared = ops.sum(ops.square(embeddings), axis=1)
    distances = squared[:, None] - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)) + squared[None, :]
    return ops.maximum(distances, 0.0)


def _triplet_terms(labels, embeddings):
    """``valid`` (n, n, n): [a, p, n] is an anchor, a different image of the same
    identity, and an image of another identity; ``d_ap`` (n, n, 1), ``d_an`` (n, 1, n)."""
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    distances = pairwise_squared_distances(embeddings)
    same = ops.equal(labels[:, None], labels[None, :])
    n = ops.shape(labels)[0]
    positive_pair = ops.logical_and(same, ops.logical_not(ops.eye(n, dtype="bool")))  # (a, p)
    negative_pair = ops.logical_not(same)  # (a, n)
    valid = ops.logical_and(positive_pair[:, :, None], negative_pair[:, None, :])
    return valid, distances[:, :, None], distances[:, None, :]


def semi_hard_triplets(labels, embeddings, margin: float):
    """Boolean (n, n, n): entry [a, p, n] is True when (a, p, n) is a valid triplet
    whose negative is semi-hard, ``d(a, p) < d(a, n) < d(a, p) + margin``."""
    valid, d_ap, d_an = _triplet_terms(labels, embeddings)
    return ops.logical_and(valid, _in_band(d_ap, d_an, margin))


def _in_band(d_ap, d_an, margin: float):
    return ops.logical_and(ops.greater(d_an, d_ap), ops.less(d_an, d_ap + margin))


def semi_hard_triplet_loss(labels, embeddings, margin: float = 0.2):
    """The batch's triplet loss with online semi-hard mining (see the module docstring).

    Args:
        labels: (n,) integer identity of each row.
        embeddings: (n, d) float embeddings.
        margin: alpha, a squared distance.
    Returns:
        scalar float32 tensor, in [0, margin).
    """
    valid, d_ap, d_an = _triplet_terms(labels, embeddings)
    semi_hard = ops.logical_and(valid, _in_band(d_ap, d_an, margin))
    semi_hard = ops.stop_gradient(ops.cast(semi_hard, "float32"))
    per_triplet = (d_ap - d_an + margin) * semi_hard  # (a, p, n), 0 outside the band
    count = ops.sum(semi_hard, axis=2)  # (a, p): semi-hard negatives of each pair
    per_pair = ops.sum(per_triplet, axis=2) / ops.maximum(count, 1.0)
    pairs = ops.sum(ops.cast(count > 0, "float32"))
    return ops.sum(per_pair) / ops.maximum(pairs, 1.0)


def active_triplet_fraction(labels, embeddings, margin: float = 0.2):
    """Fraction of the batch's valid triplets with a positive loss,
    ``d(a, p) - d(a, n) + margin > 0`` (hard and semi-hard ones): scalar float32."""
    valid, d_ap, d_an = _triplet_terms(labels, embeddings)
    active = ops.logical_and(valid, ops.greater(d_ap - d_an + margin, 0.0))
    return ops.sum(ops.cast(active, "float32")) / ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)


class SemiHardTripletLoss(keras.losses.Loss):
    """:func:`semi_hard_triplet_loss` as a Keras loss: ``loss(labels, embeddings)``,
    for ``model.compile(loss=SemiHardTripletLoss(margin))`` with batches of P x K."""

    def __init__(self, margin: float = 0.2, name: str = "semi_hard_triplet_loss"):
        super().__init__(name=name)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        return semi_hard_triplet_loss(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        return {"margin": self.margin, "name": self.name}


def active_triplets_metric(margin: float) -> keras.metrics.Metric:
    """A Keras metric averaging :func:`active_triplet_fraction` over the epoch's batches."""
    return keras.metrics.MeanMetricWrapper(active_triplet_fraction, name="active_triplets", margin=margin)
