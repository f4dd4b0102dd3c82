"""fr_utils.gallery: thumbnails of the sample cast, cluster galleries, maps of faces,
and the threshold figure, on real photos and embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.offsetbox import AnnotationBbox

import fr_utils
from fr_utils.data import other_photo
from fr_utils.gallery import cluster_gallery, colour, face_thumbnails, threshold_figure, thumbnail_map



@pytest.fixture(scope="module")
def thumbs(cast_photos):
    return face_thumbnails(cast_photos, size=48)


def _visible_images(fig) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def test_thumbnails_are_face_crops_of_the_requested_size(cast_photos, thumbs):
    assert len(thumbs) == len(cast_photos) == 6
    assert all(t.shape == (48, 48, 3) and t.dtype == np.uint8 for t in thumbs)
    whole = face_thumbnails(cast_photos[:1], size=48, detect=False)[0]
    assert np.abs(whole.astype(int) - thumbs[0].astype(int)).mean() > 10  # the crop is not the photo


def test_a_photo_without_a_face_is_shown_whole_and_a_bad_file_is_named(tmp_path, cast_photos):
    no_face = other_photo("no_face_coffee.jpg")
    (thumb,) = face_thumbnails([no_face], size=32)
    assert thumb.shape == (32, 32, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(fr_utils.FaceImageError, match="broken.jpg"):
        face_thumbnails([broken])


def test_cluster_gallery_has_one_row_per_cluster_largest_first_noise_last(thumbs):
    clusters = np.array([5, 5, 5, -1, 2, 2])
    captions = ["a", "b", "c", "d", "e", "f"]
    fig = cluster_gallery(thumbs, clusters, captions, per_row=2, title="t")
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel().split("\n")[0] for ax in rows] == ["cluster 1", "cluster 2", "no cluster"]
    assert "3 faces (+1 more)" in rows[0].get_ylabel()
    assert len(fig.axes) == 3 * 2 and _visible_images(fig) == 2 + 2 + 1
    assert [ax.get_xlabel() for ax in fig.axes if ax.images][:2] == ["a", "b"]


def test_cluster_gallery_refuses_mismatched_or_empty_input(thumbs):
    with pytest.raises(ValueError, match="captions has 2 entries for 6"):
        cluster_gallery(thumbs, np.zeros(6, int), captions=["x", "y"])
    with pytest.raises(ValueError, match="thumbnails has 6 entries for 3"):
        cluster_gallery(thumbs, [0, 0, 1])
    with pytest.raises(ValueError, match="no faces"):
        cluster_gallery([], [])


def test_thumbnail_map_draws_every_face_inside_the_axes(facenet, cast_photos, thumbs):
    from sklearn.decomposition import PCA

    points = PCA(n_components=2).fit_transform(fr_utils.encode_images(cast_photos, facenet))
    groups = [p.parent.name for p in cast_photos]
    fig = thumbnail_map(points, thumbs, groups=groups, title="cast")
    ax = fig.axes[0]
    boxes = [artist for artist in ax.artists if isinstance(artist, AnnotationBbox)]
    assert len(boxes) == 6
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert np.all((points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1))
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == list(dict.fromkeys(groups))
    obama = boxes[groups.index("Barack_Obama")].patch.get_edgecolor()
    assert np.allclose(obama[:3], np.array([int(colour(0)[i:i + 2], 16) for i in (1, 3, 5)]) / 255)


def test_thumbnail_map_refuses_points_that_are_not_2d(thumbs):
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        thumbnail_map(np.zeros((6, 3)), thumbs)
    with pytest.raises(ValueError, match="groups has 1 entries for 6"):
        thumbnail_map(np.zeros((6, 2)), thumbs, groups=["a"])


def test_threshold_figure_draws_a_histogram_per_set_and_the_roc_panel():
    rng = np.random.default_rng(0)
    dist = np.concatenate([rng.normal(0.7, 0.1, 50), rng.normal(1.4, 0.1, 50), [np.nan]])
    same = np.arange(101) < 50
    fig = threshold_figure({"a": (dist, same), "b": (dist[::2], same[::2])}, {"t1": 1.0, "t2": 1.1})
    assert len(fig.axes) == 3
    for ax in fig.axes[:2]:
        verticals = [line.get_xdata()[0] for line in ax.lines]
        assert verticals == [1.0, 1.1]
    assert len(fig.axes[2].get_lines()) == 2 + 2 * 2  # two curves, two threshold markers each
    with pytest.raises(ValueError, match="no distances"):
        threshold_figure({}, {})


# --------------------------------------------------------------------------- the door on screen (issue #14 item 2)


def test_face_row_shows_each_face_with_its_name(cast_photos):
    from fr_utils.gallery import face_row

    fig = face_row(cast_photos[:3], ["a", "b", "c"], title="Enrolled staff", size=40)
    assert [ax.get_xlabel() for ax in fig.axes] == ["a", "b", "c"]
    assert all(ax.images[0].get_array().shape == (40, 40, 3) for ax in fig.axes)
    assert fig._suptitle.get_text() == "Enrolled staff"
    with pytest.raises(ValueError, match="captions has 1 entries for 3"):
        face_row(cast_photos[:3], ["a"])
    with pytest.raises(ValueError, match="no faces"):
        face_row([], [])


def test_door_shots_box_the_face_in_the_answers_colour(cast_photos):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb

    from fr_utils.gallery import DIFFERENT_COLOUR, SAME_COLOUR, door_shots
    from fr_utils.images import load_image

    photo, no_face = cast_photos[0], other_photo("no_face_coffee.jpg")
    fig = door_shots([(photo, "Barack_Obama, 0.71: OPEN", True), (photo, "CLOSED", False),
                      (no_face, "no face: CLOSED", False), (photo, "?", None)], title="door")
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes]
    assert titles == [("Barack_Obama, 0.71: OPEN", SAME_COLOUR), ("CLOSED", DIFFERENT_COLOUR),
                      ("no face: CLOSED", DIFFERENT_COLOUR), ("?", "black")]
    x, y, w, h = fr_utils.detect_faces(photo)[0]["box"]
    for ax, colour_ in zip(fig.axes[:2], (SAME_COLOUR, DIFFERENT_COLOUR)):
        shown = ax.images[0].get_array()
        assert tuple(shown[y, x + w // 2]) == tuple(round(255 * c) for c in to_rgb(colour_))  # the box's top edge
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), load_image(no_face))  # no box drawn
    FigureCanvasAgg(fig).draw()  # renders without a display
    with pytest.raises(ValueError, match="no camera shots"):
        door_shots([])
