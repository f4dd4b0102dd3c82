"""The one-call API (issue #14 item 3): fr_utils.verify, find, face_distance, compare_faces,
on the real sample cast with the real encoder; one rule everywhere: a match is distance < threshold."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

import fr_utils
from fr_utils.data import other_photo, sample_cast, sample_photo
from fr_utils.errors import EmptyDatabaseError, FaceImageError, NoFaceError, SkippedImagesWarning
from fr_utils.matching import default_threshold, is_match

THRESHOLD = default_threshold()


# --------------------------------------------------------------------------- no encoder


def test_the_rule_is_strict_at_the_threshold():
    # (0.75, 1.0) is exactly 1.25 from the origin, in float64 and in float32
    assert fr_utils.face_distance([[0.0, 0.0]], [0.75, 1.0])[0] == 1.25
    assert not fr_utils.compare_faces([[0.0, 0.0]], [0.75, 1.0], tolerance=1.25)[0]
    assert fr_utils.compare_faces([[0.0, 0.0]], [0.75, 1.0], tolerance=np.nextafter(1.25, 2))[0]
    assert not is_match(1.25, 1.25) and is_match(np.float32(1.2499), 1.25)
    np.testing.assert_array_equal(is_match(np.array([1.0, 1.25, 1.5]), 1.25), [True, False, False])


def test_face_distance_and_compare_faces_take_lists_and_arrays():
    known = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    candidate = np.array([[1.0, 0.0, 0.0]])  # (1, d), as img_to_encoding returns
    np.testing.assert_allclose(fr_utils.face_distance(known, candidate), [0.0, np.sqrt(2), np.sqrt(0.8)])
    np.testing.assert_allclose(fr_utils.face_distance(list(known[:, None]), candidate[0]),
                               [0.0, np.sqrt(2), np.sqrt(0.8)])
    np.testing.assert_allclose(fr_utils.face_distance(known, candidate, metric="cosine"), [0.0, 1.0, 0.4])
    matches = fr_utils.compare_faces(known, candidate)  # the model's threshold, from its manifest
    assert matches.dtype == bool and matches.tolist() == [True, False, True]
    assert fr_utils.compare_faces(known, candidate, tolerance=0.5).tolist() == [True, False, False]
    assert fr_utils.compare_faces(known, candidate, metric="cosine").tolist() == \
        (np.array([0.0, 1.0, 0.4]) < default_threshold("cosine")).tolist()
    assert fr_utils.face_distance([], candidate).shape == (0,)
    assert fr_utils.compare_faces([], candidate).shape == (0,)


@pytest.mark.parametrize("known, candidate, message", [
    (np.zeros((2, 3)), np.zeros(4), "the candidate has 4 values but the known encodings have 3"),
    (np.zeros((2, 3)), np.zeros((2, 3)), r"one embedding, \(d,\) or \(1, d\), got shape \(2, 3\)"),
    (np.zeros((2, 3, 1)), np.zeros(3), r"an \(n, d\) array of embeddings, got shape \(2, 3, 1\)"),
    ([np.zeros(3), np.zeros(4)], np.zeros(3), "embeddings of one size"),
    (np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), np.zeros(3), r"rows \[1\] hold NaN"),
    (np.zeros((1, 3)), [np.inf, 0, 0], "candidate embedding holds NaN or infinite"),
    (np.zeros((1, 3)), "Barack_Obama", "the candidate must be one embedding"),
])
def test_face_distance_names_what_does_not_fit(known, candidate, message):
    with pytest.raises(ValueError, match=message):
        fr_utils.face_distance(known, candidate)


def test_bad_metric_tolerance_and_threshold_are_named():
    with pytest.raises(ValueError, match="metric must be one of 'euclidean', 'cosine', got 'l2'"):
        fr_utils.face_distance(np.zeros((1, 3)), np.zeros(3), metric="l2")
    with pytest.raises(ValueError, match="threshold must be between 0 and 2.*got 3"):
        fr_utils.compare_faces(np.zeros((1, 3)), np.zeros(3), tolerance=3)
    with pytest.raises(ValueError, match="metric must be one of"):
        fr_utils.verify("a.jpg", "b.jpg", metric="manhattan")  # checked before any image is read
    with pytest.raises(ValueError, match="not the bundled model.*pass threshold="):
        fr_utils.verify("a.jpg", "b.jpg", model=object())


def test_find_refuses_what_is_not_a_set_of_people(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: no photos in this folder"):
        fr_utils.find("x.jpg", tmp_path)
    with pytest.raises(ValueError, match="nowhere: not a folder"):
        fr_utils.find("x.jpg", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="the mapping of names to photos is empty"):
        fr_utils.find("x.jpg", {})
    with pytest.raises(ValueError, match="'Ada' has no photos"):
        fr_utils.find("x.jpg", {"Ada": []})
    with pytest.raises(ValueError, match="expected a FaceDatabase, a folder or a mapping.*got int"):
        fr_utils.find("x.jpg", 42)
    with pytest.raises(ValueError, match="k must be a positive whole number"):
        fr_utils.find("x.jpg", {"Ada": "x.jpg"}, k=0)


def test_find_in_an_empty_database_says_so_and_writes_nothing(tmp_path):
    with fr_utils.FaceDatabase(tmp_path / "door.db") as db:
        with pytest.raises(EmptyDatabaseError, match="door.db: no one is enrolled yet"):
            fr_utils.find(sample_photo("Barack_Obama", 1), db)
        assert "weights_sha256" not in db.info()  # the model was not recorded into it


# --------------------------------------------------------------------------- the real encoder


def _encoding(photo, model) -> np.ndarray:
    return fr_utils.img_to_encoding(photo, model)[0]


def _assert_same_ranking(found: list[dict], expected: list[dict]) -> None:
    """Same people, photos, boxes and verdicts in the same order; distances to 1e-6 (a photo
    encoded twice may differ in the 8th digit: TensorFlow's threaded sums are not bit-reproducible)."""
    assert [{k: v for k, v in r.items() if k != "distance"} for r in found] == \
        [{k: v for k, v in r.items() if k != "distance"} for r in expected]
    np.testing.assert_allclose([r["distance"] for r in found], [r["distance"] for r in expected], atol=1e-6)


@pytest.mark.slow
def test_verify_answers_as_the_step_by_step_pipeline(facenet):
    obama1, obama2, biden = sample_photo("Barack_Obama", 1), sample_photo("Barack_Obama", 2), sample_photo("Joseph_Biden", 1)
    same = fr_utils.verify(obama1, obama2, facenet)
    assert set(same) == {"verified", "distance", "threshold", "metric", "model", "boxes"}
    expected = float(np.linalg.norm(_encoding(obama1, facenet) - _encoding(obama2, facenet)))
    assert same["distance"] == pytest.approx(expected, abs=1e-5)
    assert same["verified"] is True and same["threshold"] == THRESHOLD and same["metric"] == "euclidean"
    assert same["model"] == "facenet_20170512-110547"  # the default encoder
    assert same["boxes"] == [fr_utils.detect_faces(obama1)[0]["box"], fr_utils.detect_faces(obama2)[0]["box"]]

    other = fr_utils.verify(obama1, biden, facenet)
    assert other["verified"] is False and other["distance"] > THRESHOLD > same["distance"]

    cosine = fr_utils.verify(obama1, obama2, facenet, metric="cosine")
    assert cosine["distance"] == pytest.approx(same["distance"] ** 2 / 2, abs=1e-6)
    assert cosine["threshold"] == pytest.approx(default_threshold("cosine")) and cosine["verified"] is True

    # the threshold given is the one used, on either side of the distance. (The exact edge,
    # distance == threshold, is is_match's, tested above with exact values: a photo encoded twice
    # may differ in the 8th digit, as TensorFlow's threaded reductions are not bit-reproducible.)
    assert fr_utils.verify(obama1, obama2, facenet, threshold=same["distance"] - 1e-4)["verified"] is False
    assert fr_utils.verify(obama1, obama2, facenet, threshold=same["distance"] + 1e-4)["verified"] is True


@pytest.mark.slow
def test_verify_takes_paths_bytes_arrays_and_pillow_images(facenet):
    obama1, obama2 = sample_photo("Barack_Obama", 1), sample_photo("Barack_Obama", 2)
    reference = fr_utils.verify(obama1, obama2, facenet)["distance"]
    pixels = np.asarray(Image.open(obama2).convert("RGB"))
    for a, b in [(str(obama1), obama2.read_bytes()), (Image.open(obama1), pixels)]:
        assert fr_utils.verify(a, b, facenet)["distance"] == pytest.approx(reference, abs=1e-5)
    crops = [fr_utils.face_crop(obama1), fr_utils.face_crop(obama2)]
    as_crops = fr_utils.verify(*crops, facenet, detect=False)
    assert as_crops["boxes"] == [None, None] and as_crops["distance"] == pytest.approx(reference, abs=1e-4)


@pytest.mark.slow
def test_verify_names_the_photo_it_cannot_use(facenet, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg: no face found"):
        fr_utils.verify(sample_photo("Barack_Obama", 1), other_photo("no_face_coffee.jpg"), facenet)
    with pytest.raises(FaceImageError, match="broken.jpg: not an image file"):
        fr_utils.verify(broken, sample_photo("Barack_Obama", 1), facenet)
    with pytest.raises(FaceImageError, match="missing.jpg: no such file"):
        fr_utils.verify(sample_photo("Barack_Obama", 1), tmp_path / "missing.jpg", facenet)


@pytest.mark.slow
def test_find_ranks_everyone_in_a_folder_a_mapping_and_a_database(facenet, tmp_path):
    cast = sample_cast()
    query = sample_photo("Barack_Obama", 2)
    # the gallery: a folder per person (Obama without the query photo), a loose photo named by its
    # stem, and a photo without a face, which is skipped with a warning naming it
    for name, photos in cast.items():
        (tmp_path / name).mkdir()
        for photo in photos:
            if photo != query:
                shutil.copy(photo, tmp_path / name / photo.name)
    shutil.move(tmp_path / "Grace_Hopper" / "Grace_Hopper_0001.jpg", tmp_path / "Grace_Hopper.jpg")
    shutil.copy(other_photo("no_face_coffee.jpg"), tmp_path / "Joseph_Biden" / "coffee.jpg")

    with pytest.warns(SkippedImagesWarning, match="coffee.jpg: no face found"):
        ranked = fr_utils.find(query, tmp_path, facenet)
    assert [r["name"] for r in ranked][0] == "Barack_Obama" and len(ranked) == 4
    assert sorted(r["name"] for r in ranked) == sorted(cast)
    distances = [r["distance"] for r in ranked]
    assert distances == sorted(distances)
    assert [r["verified"] for r in ranked] == [True, False, False, False]
    assert all(r["box"] == fr_utils.detect_faces(query)[0]["box"] for r in ranked)

    q = _encoding(query, facenet)
    obama = [tmp_path / "Barack_Obama" / p.name for p in cast["Barack_Obama"] if p != query]
    own = fr_utils.face_distance([_encoding(p, facenet) for p in obama], q)
    assert ranked[0]["distance"] == pytest.approx(own.min(), abs=1e-5)
    assert ranked[0]["path"] == str(obama[int(own.argmin())])
    hopper = next(r for r in ranked if r["name"] == "Grace_Hopper")
    assert hopper["path"] == str(tmp_path / "Grace_Hopper.jpg")

    with pytest.warns(SkippedImagesWarning):
        top2 = fr_utils.find(query, tmp_path, facenet, k=2)
    _assert_same_ranking(top2, ranked[:2])

    # a mapping {name: photos} and a database give the same ranking and distances
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_mapping = fr_utils.find(query, {n: [p for p in ps if p != query] for n, ps in cast.items()}, facenet)
    with fr_utils.FaceDatabase(None, facenet) as db:
        for name, photos in cast.items():
            db.enroll(name, [p for p in photos if p != query])
        in_db = fr_utils.find(query, db)
        assert fr_utils.find(query, db, threshold=0.1)[0]["verified"] is False
    for found in (by_mapping, in_db):
        assert [r["name"] for r in found] == [r["name"] for r in ranked]
        np.testing.assert_allclose([r["distance"] for r in found], distances, atol=1e-5)
        assert [r["verified"] for r in found] == [True, False, False, False]
    assert all(r["path"] is None for r in in_db)


@pytest.mark.slow
def test_find_says_nobody_for_a_stranger(facenet):
    cast = sample_cast()
    stranger = cast["Barack_Obama"][0]
    others = {name: photos for name, photos in cast.items() if name != "Barack_Obama"}
    ranked = fr_utils.find(stranger, others, facenet)
    assert not any(r["verified"] for r in ranked) and ranked[0]["distance"] > THRESHOLD
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg: no face found"):
        fr_utils.find(other_photo("no_face_coffee.jpg"), others, facenet)


@pytest.mark.slow
def test_face_distance_and_compare_faces_on_real_encodings(facenet):
    cast = sample_cast()
    names = sorted(cast)
    known = [_encoding(cast[name][0], facenet) for name in names]  # list of (128,)
    candidate = fr_utils.img_to_encoding(sample_photo("Barack_Obama", 3), facenet)  # (1, 128)
    d = fr_utils.face_distance(known, candidate)
    np.testing.assert_allclose(d, np.linalg.norm(np.stack(known) - candidate, axis=1), atol=1e-6)
    assert fr_utils.compare_faces(known, candidate).tolist() == [n == "Barack_Obama" for n in names]
