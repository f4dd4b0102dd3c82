"""The Keras architecture: plain layers, original scope names, serialisable without code."""

import json

import keras
import numpy as np
import pytest

from fr_utils.models import inception_resnet_v1


@pytest.fixture(scope="module")
def model():
    return inception_resnet_v1()


def test_shapes_and_size(model):
    assert model.input_shape == (None, 160, 160, 3)
    assert model.output_shape == (None, 512)
    # 23,468,848 = Sandberg's Inception-ResNet-v1 with a 512-d bottleneck, batch norm folded
    assert model.count_params() == 23_468_848


def test_layer_names_follow_the_graph_scopes(model):
    names = {layer.name for layer in model.layers}
    for expected in [
        "Conv2d_1a_3x3", "Conv2d_4b_3x3", "MaxPool_3a_3x3",
        "Repeat.block35_1.Branch_0.Conv2d_1x1", "Repeat.block35_5.Conv2d_1x1",
        "Mixed_6a.Branch_1.Conv2d_1a_3x3", "Repeat_1.block17_10.Branch_1.Conv2d_0c_7x1",
        "Mixed_7a.Branch_2.Conv2d_1a_3x3", "Repeat_2.block8_5.Conv2d_1x1",
        "Block8.Conv2d_1x1", "Bottleneck", "Bottleneck.BatchNorm", "embeddings",
    ]:
        assert expected in names, expected
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == 132


def test_plain_layers_only_channels_last(model):
    for layer in model.layers:
        assert type(layer).__module__.startswith("keras."), f"{layer.name} is a {type(layer)}"
        assert not isinstance(layer, keras.layers.Lambda), layer.name
        if hasattr(layer, "data_format"):
            assert layer.data_format == "channels_last", layer.name


def test_config_round_trips_without_custom_code(model):
    config = model.to_json()
    assert "Lambda" not in json.loads(config)["config"].__repr__()
    rebuilt = keras.models.model_from_json(config)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    assert rebuilt.count_params() == model.count_params()


def test_other_sizes():
    small = inception_resnet_v1(input_size=96, embedding_size=128)
    assert small.output_shape == (None, 128)


# -- OpenFace nn4.small2 --------------------------------------------------------


@pytest.fixture(scope="module")
def openface():
    from fr_utils.models import openface_nn4_small2

    return openface_nn4_small2()


def test_openface_shapes_and_size(openface):
    assert openface.input_shape == (None, 96, 96, 3)
    assert openface.output_shape == (None, 128)
    # 3,743,280: FRmodel.count_params() of the Keras port in the original Coursera
    # face-recognition assignment ("Total Params: 3743280"), batch norm statistics included
    assert openface.count_params() == 3_743_280


def test_openface_inception_modules_have_openfaces_widths(openface):
    widths = {layer.name: layer.output.shape[-1] for layer in openface.layers if layer.name.endswith(".concat")}
    # nn4.small2.def.lua: 3a 256, 3b 320, 3c 640, 4a 640, 4e 1024, 5a 736, 5b 736
    assert widths == {
        "inception_3a.concat": 256, "inception_3b.concat": 320, "inception_3c.concat": 640,
        "inception_4a.concat": 640, "inception_4e.concat": 1024, "inception_5a.concat": 736,
        "inception_5b.concat": 736,
    }
    spatial = {name: openface.get_layer(name).output.shape[1] for name in widths}
    assert spatial["inception_3b.concat"] == 12 and spatial["inception_4a.concat"] == 6
    assert spatial["inception_5b.concat"] == 3


def test_openface_outputs_unit_vectors(openface):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    out = openface.predict_on_batch(x)
    assert out.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_openface_plain_layers_and_config_round_trip(openface):
    for layer in openface.layers:
        assert type(layer).__module__.startswith("keras."), f"{layer.name} is a {type(layer)}"
        assert not isinstance(layer, keras.layers.Lambda), layer.name
    config = openface.to_json()
    assert "Lambda" not in config and "lambda" not in config
    rebuilt = keras.models.model_from_json(config)
    assert rebuilt.count_params() == 3_743_280


def test_openface_other_sizes():
    from fr_utils.models import openface_nn4_small2

    assert openface_nn4_small2(embedding_size=64).output_shape == (None, 64)
