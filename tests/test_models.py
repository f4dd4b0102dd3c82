"""The Keras architecture: plain layers, original scope names, serialisable without code."""

import json

import keras
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
