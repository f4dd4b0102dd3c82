"""fr_utils.detect, fr_utils.align and fr_utils.draw on the sample photos shipped in fr_utils/cast/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils.align import (CROP_RESAMPLE, MARGIN_FRACTION, align_face, align_faces, crop_box, crop_name,
                            crop_region, margin_pixels)
from fr_utils.detect import (KEYPOINTS, MAIN_FACE_SHARE, choose_main, detect_faces, detect_faces_many, get_detector,
                             largest_face, main_face)
from fr_utils.draw import draw_faces
from fr_utils.data import cast_dir
from fr_utils.images import RESAMPLE_FILTERS, FaceImageError, load_image, resize_region

REPO = Path(__file__).resolve().parents[1]
IMAGES = cast_dir()  # the sample cast, package data of fr_utils
PEOPLE = sorted((IMAGES / "people").glob("*/*.jpg"))
NO_FACE = IMAGES / "other" / "no_face_coffee.jpg"
TWO_FACES = IMAGES / "other" / "two_faces_hopper_collins.jpg"
HOPPER = IMAGES / "people" / "Grace_Hopper" / "Grace_Hopper_0001.jpg"


def _area(face):
    return face["box"][2] * face["box"][3]


def _check_face_dict(face, shape):
    h, w = shape[:2]
    assert set(face) == {"box", "confidence", "keypoints"}
    box = face["box"]
    assert isinstance(box, list) and len(box) == 4
    assert all(type(v) is int for v in box)
    x, y, bw, bh = box
    assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
    assert type(face["confidence"]) is float and 0.0 <= face["confidence"] <= 1.0
    assert set(face["keypoints"]) == set(KEYPOINTS)
    for px, py in face["keypoints"].values():
        assert type(px) is int and type(py) is int
        assert 0 <= px < w and 0 <= py < h


def _check_upright_face(face):
    """Keypoints where a face has them: eyes above nose above mouth, left on the left."""
    kp = face["keypoints"]
    x, y, w, h = face["box"]
    for px, py in kp.values():
        assert x - 0.1 * w <= px <= x + 1.1 * w and y - 0.1 * h <= py <= y + 1.1 * h
    assert kp["left_eye"][0] < kp["right_eye"][0]
    assert kp["mouth_left"][0] < kp["mouth_right"][0]
    eyes_y = (kp["left_eye"][1] + kp["right_eye"][1]) / 2
    mouth_y = (kp["mouth_left"][1] + kp["mouth_right"][1]) / 2
    assert eyes_y < kp["nose"][1] < mouth_y


@pytest.mark.parametrize("path", PEOPLE, ids=lambda p: p.stem)
def test_each_sample_photo_has_one_main_face(path):
    img = load_image(path)
    faces = detect_faces(path)
    assert faces, f"no face found in {path.name}"
    for face in faces:
        _check_face_dict(face, img.shape)
    main = faces[0]
    _check_upright_face(main)
    assert main["confidence"] > 0.95
    x, y, w, h = main["box"]
    # A portrait's face: tens of pixels at least, and less than the whole photo.
    assert 60 <= w <= img.shape[1] * 0.6 and 60 <= h <= img.shape[0] * 0.6
    assert 0.6 <= h / w <= 1.8
    # Anything else found is much smaller than the person the photo is of.
    for other in faces[1:]:
        assert _area(other) < _area(main) / 4


def test_faces_come_sorted_largest_first():
    for path in PEOPLE + [TWO_FACES]:
        areas = [_area(f) for f in detect_faces(path)]
        assert areas == sorted(areas, reverse=True)


def test_no_face_photo_gives_empty_list():
    assert detect_faces(NO_FACE) == []
    assert largest_face(NO_FACE) is None


def test_two_face_photo_gives_two_sorted_by_area():
    img = load_image(TWO_FACES)
    faces = detect_faces(TWO_FACES)
    assert len(faces) == 2
    for face in faces:
        _check_face_dict(face, img.shape)
        _check_upright_face(face)
    big, small = faces
    assert _area(big) > _area(small)
    # Grace Hopper (left half) is shown larger than Eileen Collins (right half).
    mid = img.shape[1] / 2
    assert big["box"][0] + big["box"][2] < mid < small["box"][0]
    assert largest_face(TWO_FACES) == big


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (5, 5, 3), (11, 300, 3), (12, 12, 3), (40, 40, 3)])
def test_tiny_and_blank_images_give_no_face(shape):
    assert detect_faces(np.zeros(shape, dtype=np.uint8)) == []
    assert detect_faces(np.full(shape, 200, dtype=np.uint8)) == []


def test_one_pixel_file_gives_no_face(tmp_path):
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(p)
    assert detect_faces(p) == []
    assert detect_faces(p.read_bytes()) == []


def test_photos_detected_together_give_each_photo_its_own_faces(tmp_path):
    """detect_faces_many batches photos of one analysed size through MTCNN: the answer for each
    photo is detect_faces's, with photos of other sizes, without a face, and too small among them."""
    def at(path, size):
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize(size, Image.BILINEAR))

    photos = [at(path, (640, 640)) for path in PEOPLE[:3]]  # one size: one MTCNN pass for the three
    photos += [at(NO_FACE, (640, 640)), at(TWO_FACES, (480, 360)), HOPPER, np.zeros((8, 8, 3), np.uint8),
               np.full((640, 640, 3), 200, np.uint8)]
    together = detect_faces_many(photos)
    alone = [detect_faces(photo) for photo in photos]
    assert len(together) == len(photos)
    assert [[f["box"] for f in faces] for faces in together] == [[f["box"] for f in faces] for faces in alone]
    assert [len(faces) for faces in together] == [1, 1, 1, 0, 2, 1, 0, 0]
    for faces, single in zip(together, alone):
        for f, g in zip(faces, single):
            assert f["keypoints"] == g["keypoints"]
            assert abs(f["confidence"] - g["confidence"]) < 1e-5
    assert detect_faces_many([]) == []
    # and they are what the mtcnn package's own detect_faces reports for each analysed image
    from fr_utils.detect import MAX_SIDE, _downscaled, _run_stages

    detector = get_detector()
    for photo in photos[:5]:
        small = _downscaled(np.asarray(photo) if not isinstance(photo, Path) else load_image(photo), MAX_SIDE)[0]
        assert _run_stages(detector, [small], 20) == [detector.detect_faces(small, min_face_size=20)]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a photo")
    with pytest.raises(FaceImageError, match="broken.jpg"):
        detect_faces_many([HOPPER, bad])


def test_the_door_takes_the_central_face_of_faces_about_as_large(facenet):
    """Two people about the same size: the door encodes the one in the middle of the picture, even
    when the one at the edge is a little larger; a face far smaller never wins; one face is that face."""
    from fr_utils.encoding import face_crop, img_to_encoding

    obama = PEOPLE[0]  # Barack_Obama_0001.jpg
    canvas = Image.new("RGB", (1400, 640), (128, 128, 128))
    with Image.open(obama) as left, Image.open(HOPPER) as centre:
        canvas.paste(left.convert("RGB"), (0, 0))  # 512 x 640 at the left edge: his face a little larger
        canvas.paste(centre.convert("RGB").resize((358, 420)), (521, 110))  # in the middle
    photo = np.asarray(canvas)
    faces = detect_faces(photo)
    assert len(faces) == 2
    big, middle = faces
    assert big["box"][0] < 512 <= middle["box"][0]  # the largest is the left one
    assert MAIN_FACE_SHARE * _area(big) <= _area(middle) < _area(big)
    assert choose_main(faces, photo.shape) is middle and main_face(photo) == middle
    assert choose_main(faces, photo.shape, share=0.99) is big  # "as large" stricter: the largest
    hopper, obama_alone = img_to_encoding(HOPPER, facenet), img_to_encoding(obama, facenet)
    door = img_to_encoding(photo, facenet)
    assert np.linalg.norm(door - hopper) < 0.6 < np.linalg.norm(door - obama_alone)
    np.testing.assert_array_equal(face_crop(photo), align_face(photo, middle))
    # a face far smaller than the largest is never taken, however central (Hopper and Collins: 1/3 of the area)
    two = load_image(TWO_FACES)
    assert choose_main(detect_faces(two), two.shape) == detect_faces(two)[0] == main_face(TWO_FACES)
    for path in PEOPLE:  # the cast's portraits: one face each, so the largest
        assert main_face(path) == largest_face(path)
    assert choose_main([], (10, 10, 3)) is None and main_face(NO_FACE) is None
    with pytest.raises(ValueError, match="share must be in"):
        choose_main(faces, photo.shape, share=0)


def test_unreadable_input_raises_face_image_error(tmp_path):
    with pytest.raises(FaceImageError, match="no such file"):
        detect_faces(tmp_path / "missing.jpg")


def test_detector_is_built_once():
    first = get_detector()
    detect_faces(HOPPER)
    assert get_detector() is first


def test_grayscale_and_path_and_bytes_inputs_agree():
    img = load_image(HOPPER)
    from_path = detect_faces(HOPPER)
    assert detect_faces(HOPPER.read_bytes()) == from_path
    assert detect_faces(img) == from_path
    gray = np.asarray(Image.fromarray(img).convert("L"))
    faces = detect_faces(gray)
    assert len(faces) >= 1
    assert np.allclose(faces[0]["box"], from_path[0]["box"], atol=0.1 * from_path[0]["box"][2])


def _assert_same_face(mapped, reference, tol=0.08):
    """Boxes and keypoints agree within tol times the face's width."""
    w = reference["box"][2]
    np.testing.assert_allclose(mapped["box"], reference["box"], atol=tol * w)
    for k in KEYPOINTS:
        np.testing.assert_allclose(mapped["keypoints"][k], reference["keypoints"][k], atol=tol * w)


def test_large_photo_is_downscaled_and_boxes_map_back():
    """A 4x upscaled copy (2048 x 2400) is analysed at 1024 px, yet its boxes are
    in its own pixels: four times those found in the original."""
    img = load_image(HOPPER)
    factor = 4
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * factor, img.shape[0] * factor), Image.BICUBIC))
    (ref,) = detect_faces(img)
    (face,) = detect_faces(big)  # max_side=1024 by default: downscaled by 2.34
    _check_face_dict(face, big.shape)
    expected = {
        "box": [v * factor for v in ref["box"]],
        "keypoints": {k: [v * factor for v in p] for k, p in ref["keypoints"].items()},
    }
    _assert_same_face(face, expected)


def test_max_side_only_changes_the_resolution_of_the_analysis():
    img = load_image(HOPPER)
    (full,) = detect_faces(img, max_side=None)
    (small,) = detect_faces(img, max_side=300)  # analysed at 256 x 300
    _check_face_dict(small, img.shape)
    _assert_same_face(small, full)


def test_min_confidence_filters():
    faces = detect_faces(PEOPLE[0], min_confidence=0.0)
    assert all(f["confidence"] >= 0.0 for f in faces)
    strict = detect_faces(PEOPLE[0], min_confidence=0.999)
    assert all(f["confidence"] >= 0.999 for f in strict)
    assert len(strict) <= len(faces)


# --------------------------------------------------------------------------
# align


def test_crop_box_margin_is_proportional_to_the_box():
    shape = (480, 640, 3)
    # Sandberg's LFW crop on a typical LFW box (mean side 107 px): 16 px on every side
    assert MARGIN_FRACTION * 107 / 2 == pytest.approx(16.0)
    assert crop_box(shape, [100, 50, 91, 123]) == (84, 34, 207, 189)
    # twice the box, twice the margin (32 px per side), truncated to whole pixels
    assert crop_box(shape, [200, 100, 182, 246]) == (168, 68, 414, 378)
    assert crop_box(shape, {"box": [100.7, 50.2, 91, 123]}) == (84, 34, 207, 189)
    # clipped to the image; a 60-px box gets 0.2991 * 60 / 2 = 8.97 px per side
    assert crop_box(shape, [5, 3, 100, 100]) == (0, 0, 119, 117)
    assert crop_box(shape, [600, 450, 60, 60]) == (591, 441, 640, 480)
    with pytest.raises(FaceImageError, match="holds no pixel"):
        crop_box(shape, [700, 10, 20, 20])
    with pytest.raises(FaceImageError):
        crop_box(shape, "not a box")


def test_crop_box_with_a_margin_in_pixels():
    """``margin``: a fixed number of pixels instead (Sandberg's own script's, half per side)."""
    shape = (480, 640, 3)
    assert crop_box(shape, [100, 50, 80, 120], margin=32) == (84, 34, 196, 186)
    assert crop_box(shape, {"box": [100.7, 50.2, 80, 120]}, margin=32) == (84, 34, 196, 186)
    assert crop_box(shape, [100, 50, 80, 120], margin=0) == (100, 50, 180, 170)
    assert crop_box(shape, [5, 3, 100, 100], margin=32) == (0, 0, 121, 119)
    assert crop_box(shape, [600, 450, 60, 60], margin=32) == (584, 434, 640, 480)
    assert margin_pixels([0, 0, 80, 120], 32) == 32 and margin_pixels([0, 0, 80, 120]) == pytest.approx(29.91, abs=0.01)
    for bad in (-1, "wide", float("nan")):
        with pytest.raises(ValueError, match="margin must be a number of pixels"):
            crop_box(shape, [100, 50, 80, 120], margin=bad)


def test_a_tiny_face_gets_a_tiny_margin_and_still_a_crop():
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    img[18:22, 18:22] = 255
    # a 4-px face: 0.6 px of margin on each side, truncated: the box itself
    assert crop_box(img.shape, [18, 18, 4, 4]) == (17, 17, 22, 22)
    crop = align_face(img, [18, 18, 4, 4], size=160)
    assert crop.shape == (160, 160, 3) and crop[80, 80].min() == 255
    # a 1-px box still holds one pixel
    assert crop_box(img.shape, [0, 0, 1, 1]) == (0, 0, 1, 1)


def test_an_upscaled_photo_gives_the_same_crop():
    """The same face in a photo twice and three times as large (its box scaled alike)
    gives the same crop, within interpolation error (the region is read to a fraction
    of a pixel, and shrinking averages); with a fixed pixel margin it would
    not (the margin would shrink relative to the face)."""
    img = load_image(HOPPER)
    face = detect_faces(img)[0]
    crop = align_face(img, face).astype(np.float64)
    h, w = img.shape[:2]
    for k in (2, 3):
        big = np.asarray(Image.fromarray(img).resize((w * k, h * k), Image.BICUBIC))
        box = [v * k for v in face["box"]]
        scaled = align_face(big, box).astype(np.float64)
        # grey levels of 255: measured 0.54 and 0.50; 3.1 and 4.1 when the region was
        # truncated to whole pixels before resizing (the crop shifted by up to a pixel)
        assert np.abs(scaled - crop).mean() < 1.5, k
        # a margin in pixels (32 at 1x, 32 at k x) would frame the face differently
        fixed = align_face(big, box, margin=margin_pixels(face)).astype(np.float64)
        assert np.abs(fixed - crop).mean() > 2 * np.abs(scaled - crop).mean(), k


def test_the_face_detected_at_twice_the_size_is_cropped_alike():
    """Detection and crop together: the largest face of the photo and of its 2x
    upscale (detected apart) give nearly the same region of the face."""
    img = load_image(HOPPER)
    h, w = img.shape[:2]
    big = np.asarray(Image.fromarray(img).resize((w * 2, h * 2), Image.BICUBIC))
    a = np.array(crop_box(img.shape, detect_faces(img)[0]), dtype=float)
    b = np.array(crop_box(big.shape, detect_faces(big)[0]), dtype=float) / 2
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    assert inter / union > 0.85  # MTCNN's own jitter across sizes (measured 0.89)


def test_align_face_resamples_the_crop_region_where_it_lies():
    img = load_image(HOPPER)
    face = detect_faces(img)[0]
    crop = align_face(img, face)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    region = crop_region(img.shape, face)
    x, y, w, h = face["box"]
    half = MARGIN_FRACTION * (w + h) / 4
    assert region == pytest.approx((x - half, y - half, x + w + half, y + h + half))
    assert crop_box(img.shape, face) == tuple(int(v) for v in region)  # the same, truncated
    np.testing.assert_array_equal(crop, resize_region(img, region, 160, CROP_RESAMPLE))
    # Pillow's filter reads the region itself: on whole pixels, inside, it is the resize of the slice
    x1, y1, x2, y2 = crop_box(img.shape, face)
    inside = align_face(img, [x1, y1, x2 - x1, y2 - y1], margin=0)
    cut = np.asarray(Image.fromarray(img[y1:y2, x1:x2]).resize((160, 160), RESAMPLE_FILTERS[CROP_RESAMPLE]))
    np.testing.assert_array_equal(inside[3:-3, 3:-3], cut[3:-3, 3:-3])  # the filter reaches 2 px out
    # the same from a path, or from the box alone
    np.testing.assert_array_equal(align_face(HOPPER, face["box"]), crop)
    assert align_face(img, face, size=182, margin=44).shape == (182, 182, 3)
    assert crop_name() == f"box{MARGIN_FRACTION:.4f}-sub-{CROP_RESAMPLE}"


def test_align_face_near_the_border_and_outside():
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    img[:50, :50] = 255
    crop = align_face(img, [0, 0, 50, 50], size=32, margin=32)
    # 16 px on each side, clipped: (0, 0, 66, 66), three quarters white, to the top left
    assert crop.shape == (32, 32, 3)
    assert crop[:20, :20].min() == 255 and crop[28:, 28:].max() == 0
    with pytest.raises(FaceImageError):
        align_face(img, [200, 200, 10, 10])


def test_align_faces_stacks_every_face():
    faces = detect_faces(TWO_FACES)
    crops = align_faces(TWO_FACES, faces)
    assert crops.shape == (2, 160, 160, 3) and crops.dtype == np.uint8
    assert align_faces(NO_FACE, []).shape == (0, 160, 160, 3)


# --------------------------------------------------------------------------
# draw


def test_draw_faces_draws_on_a_copy():
    img = load_image(TWO_FACES)
    before = img.copy()
    faces = detect_faces(img)
    out = draw_faces(img, faces, labels=["Grace Hopper", None])
    np.testing.assert_array_equal(img, before)
    assert out.shape == img.shape and out.dtype == np.uint8
    x, y, w, h = faces[1]["box"]
    assert not np.array_equal(out[y : y + h, x], img[y : y + h, x])  # left edge of the box
    far = np.s_[img.shape[0] - 20 :, img.shape[1] // 2 - 10 : img.shape[1] // 2 + 10]
    np.testing.assert_array_equal(out[far], img[far])  # nothing drawn far from the faces
    assert draw_faces(img, []).shape == img.shape


# --------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_aligned_sample_faces_are_recognised():
    """Detect, align and encode the cast: the three photos of Barack Obama are
    closer to each other than to anyone else's, and under the usual threshold."""
    from fr_utils.weights import MODEL_NAME

    if not (REPO / "weights" / f"{MODEL_NAME}.weights.h5").exists():
        pytest.skip("weights/ not built (make weights)")
    from fr_utils import encode_images, load_facenet

    crops = [align_face(p, detect_faces(p)[0]) for p in PEOPLE]
    emb = encode_images(crops, load_facenet())
    dist = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)
    who = np.array([p.parent.name for p in PEOPLE])
    same = (who[:, None] == who[None, :]) & ~np.eye(len(who), dtype=bool)
    different = who[:, None] != who[None, :]
    assert same.sum() >= 6  # the Obama pairs
    assert dist[same].max() < 1.1 < dist[different].min()
