"""The Keras encoder reproduces the original frozen graph on real faces, to 1e-5."""

from fr_utils.build.fidelity import TOLERANCE, compare, lfw_images, shipped_images


def test_fidelity_on_shipped_photos(facenet, graph_encoder):
    images = shipped_images()
    assert len(images) >= 20
    report = compare(images, "shipped", facenet, graph_encoder)
    print(f"shipped: {report}")
    assert report.max_abs_diff <= TOLERANCE


def test_fidelity_on_lfw(facenet, graph_encoder, lfw_dir):
    paths = lfw_images(lfw_dir, 30)
    assert len(paths) == 30 and len({p.parent for p in paths}) == 30
    report = compare(paths, "LFW", facenet, graph_encoder)
    print(f"LFW: {report}")
    assert report.max_abs_diff <= TOLERANCE
