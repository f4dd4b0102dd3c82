"""The Keras encoders reproduce their originals on real faces, to 1e-5: the 512-number one its
frozen graph, the default 128-number one its HDF5 file's own graph."""

import pytest

from fr_utils.build.fidelity import TOLERANCE, compare, compare_h5, lfw_images, shipped_images


def test_fidelity_on_shipped_photos(facenet512, graph_encoder):
    images = shipped_images()
    assert len(images) >= 20
    report = compare(images, "shipped", facenet512, graph_encoder)
    print(f"shipped: {report}")
    assert report.max_abs_diff <= TOLERANCE


def test_fidelity_on_lfw(facenet512, graph_encoder, lfw_dir):
    paths = lfw_images(lfw_dir, 30)
    assert len(paths) == 30 and len({p.parent for p in paths}) == 30
    report = compare(paths, "LFW", facenet512, graph_encoder)
    print(f"LFW: {report}")
    assert report.max_abs_diff <= TOLERANCE


# --------------------------------------------------------------------------- the 128-number encoder (issue #15)


@pytest.fixture(scope="module")
def facenet128():
    from fr_utils.weights import WeightsError, load_facenet

    try:
        return load_facenet("facenet_20170512-110547")
    except WeightsError as err:
        pytest.skip(f"the 128-number encoder is not built ({err})")


@pytest.fixture(scope="module")
def h5_graph(facenet128):
    """The source HDF5 file's own layer graph in plain TensorFlow ops (batch norms unfolded)."""
    from fr_utils.build.keras_h5 import h5_model, h5_reference

    return h5_reference(h5_model())


def test_fidelity_of_the_128_number_encoder_on_shipped_photos(facenet128, h5_graph):
    report = compare_h5(shipped_images(), "shipped", facenet128, h5_graph)
    print(f"shipped, 128: {report}")
    assert report.n_images >= 20
    assert report.max_abs_diff <= TOLERANCE
    # before the L2 normalisation fr_utils adds, the bottlenecks agree too (values up to about 3)
    assert report.max_abs_diff_raw <= 1e-4 * report.max_abs_raw


def test_fidelity_of_the_128_number_encoder_on_lfw(facenet128, h5_graph, lfw_dir):
    report = compare_h5(lfw_images(lfw_dir, 20), "LFW", facenet128, h5_graph)
    print(f"LFW, 128: {report}")
    assert report.max_abs_diff <= TOLERANCE


def test_the_reference_graph_sees_a_changed_weight(facenet128, h5_graph, cast_photos):
    """The comparison can fail: one folded bias nudged by 0.01 shows up well above the tolerance."""
    import keras

    from fr_utils.models import inception_resnet_v1

    changed = inception_resnet_v1(embedding_size=128)
    changed.set_weights(facenet128.get_weights())
    layer = changed.get_layer("Repeat_2.block8_2.Branch_0.Conv2d_1x1")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + 1e-2])
    assert isinstance(changed, keras.Model)
    report = compare_h5(cast_photos[:2], "changed", changed, h5_graph)
    assert report.max_abs_diff > 10 * TOLERANCE
