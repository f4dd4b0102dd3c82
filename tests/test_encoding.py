"""img_to_encoding and friends: shapes, norms, preprocessing, bad input."""

from pathlib import Path

import numpy as np
import pytest

import fr_utils
from fr_utils.data import cast_dir
from fr_utils.encoding import encode_faces, encode_images, face_crop, face_crops, img_to_encoding, inference_function, preprocess
from fr_utils.images import FaceImageError, NoFaceError, fixed_image_standardization, prewhiten


def test_fixed_standardization_values():
    x = np.array([0, 127.5, 255], dtype=np.float32)
    np.testing.assert_allclose(fixed_image_standardization(x), [-127.5 / 128, 0, 127.5 / 128])
    assert fixed_image_standardization(np.zeros((2, 2, 3), np.uint8)).dtype == np.float32


def test_prewhiten_zero_mean_unit_std_and_flat_image():
    rng = np.random.default_rng(0)
    y = prewhiten(rng.uniform(0, 255, (160, 160, 3)))
    assert abs(y.mean()) < 1e-5 and abs(y.std() - 1) < 1e-4
    flat = prewhiten(np.full((160, 160, 3), 80.0))
    assert np.all(np.isfinite(flat)) and np.all(flat == 0)


def test_encoding_shape_dtype_norm(facenet, cast_photos):
    enc = img_to_encoding(cast_photos[0], facenet)
    assert enc.shape == (1, 128) and enc.dtype == np.float32
    assert abs(np.linalg.norm(enc) - 1) < 1e-5


def test_path_bytes_and_array_agree(facenet, cast_photos):
    path = cast_photos[0]
    by_path = img_to_encoding(path, facenet)
    by_str = img_to_encoding(str(path), facenet)
    by_bytes = img_to_encoding(path.read_bytes(), facenet)
    by_array = img_to_encoding(fr_utils.load_image(path), facenet)
    for other in (by_str, by_bytes, by_array):
        np.testing.assert_allclose(other, by_path, atol=1e-6)


def test_default_model_is_the_pretrained_one(facenet, cast_photos):
    np.testing.assert_allclose(img_to_encoding(cast_photos[0]), img_to_encoding(cast_photos[0], facenet), atol=1e-6)


def test_batch_matches_single(facenet, cast_photos):
    photos = cast_photos[:5]
    batch = encode_images(photos, facenet, batch_size=2)
    assert batch.shape == (len(photos), 128)
    singles = np.concatenate([img_to_encoding(p, facenet) for p in photos])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_different_photos_give_different_encodings(facenet, cast_photos):
    a, b = encode_images(cast_photos[:2], facenet)
    assert np.linalg.norm(a - b) > 0.1


def test_fast_path_equals_predict_on_batch(facenet, cast_photos):
    x = np.stack([preprocess(p) for p in cast_photos[:3]])
    np.testing.assert_allclose(inference_function(facenet)(x), facenet.predict_on_batch(x), atol=1e-5)


def test_bfloat16_path_is_close_but_not_the_float32_one(facenet, cast_photos, monkeypatch):
    """FR_ENCODER_PRECISION=bfloat16: float32 unit vectors within 1e-2 of float32's, and really rounded
    (docs/measured.md, bfloat16 on LFW: the default 128-number encoder moves a coordinate by at most
    6.6e-3 and a distance by at most 7.2e-3; the 512-number one 2.6e-3 and 5.3e-3)."""
    x = np.stack([preprocess(p) for p in cast_photos[:4]])
    full = inference_function(facenet, "float32")(x)
    monkeypatch.setenv("FR_ENCODER_PRECISION", "bfloat16")
    run = inference_function(facenet)
    assert run is inference_function(facenet, "bfloat16") and run is not inference_function(facenet, "float32")
    half = run(x)
    assert half.dtype == np.float32 and half.shape == full.shape
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1, atol=1e-5)
    diff = np.abs(half - full).max()
    assert 1e-5 < diff < 1e-2, diff
    # encode_batch follows the variable: the same photos through img_to_encoding
    np.testing.assert_allclose(img_to_encoding(cast_photos[0], facenet, detect=True),
                               inference_function(facenet, "bfloat16")(np.stack([preprocess(face_crop(cast_photos[0]))])),
                               atol=1e-5)
    # a distance between two people moves by far less than the gap between same and different
    assert abs(np.linalg.norm(half[0] - half[2]) - np.linalg.norm(full[0] - full[2])) < 1e-2


@pytest.mark.parametrize("value", ["float16", "BF16", "int8"])
def test_a_bad_precision_is_refused_naming_it(facenet, monkeypatch, value):
    monkeypatch.setenv("FR_ENCODER_PRECISION", value)
    with pytest.raises(ValueError, match=rf"\$FR_ENCODER_PRECISION must be one of 'auto', 'float32', 'bfloat16', got '{value}'"):
        inference_function(facenet)
    monkeypatch.delenv("FR_ENCODER_PRECISION")
    with pytest.raises(ValueError, match=rf"precision must be one of .* got '{value}'"):
        inference_function(facenet, value)


def test_quick_start_graph_gives_the_same_numbers(facenet, cast_photos):
    """facedoor's quick start (the graph over the variables, not folded) encodes as the default graph does."""
    from fr_utils import encoding

    x = np.stack([preprocess(p) for p in cast_photos[:3]])
    np.testing.assert_allclose(encoding._traced(facenet)(x), inference_function(facenet)(x), atol=1e-5)
    assert encoding._QUICK_START is False  # the default: a library user gets the folded graph


def test_unregistered_models_see_weight_changes():
    """Only the read-only pretrained model is frozen; a model being trained is always called live."""
    from fr_utils.models import inception_resnet_v1

    model = inception_resnet_v1(input_size=96, embedding_size=8)
    assert inference_function(model) == model.predict_on_batch


def test_missing_path_raises_value_error_naming_it(facenet, tmp_path):
    missing = tmp_path / "nobody.jpg"
    with pytest.raises(FaceImageError, match="nobody.jpg") as err:
        img_to_encoding(missing, facenet)
    assert isinstance(err.value, ValueError)
    assert "no such file" in str(err.value)


def test_non_image_file_raises_value_error_naming_it(facenet, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture\n")
    with pytest.raises(ValueError, match="notes.jpg.*not an image"):
        img_to_encoding(fake, facenet)


def test_bad_array_shape(facenet):
    with pytest.raises(FaceImageError, match="shape"):
        img_to_encoding(np.zeros((10, 10, 5), np.uint8), facenet)


# --- whole photos: detect, take the largest face, align, encode ---------------------------

OTHER = cast_dir() / "other"


def test_no_face_raises_no_face_error_naming_the_file(facenet):
    photo = OTHER / "no_face_coffee.jpg"
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg: no face found") as err:
        img_to_encoding(photo, facenet)
    assert isinstance(err.value, FaceImageError) and isinstance(err.value, ValueError)


def test_detect_false_takes_the_image_as_a_crop(facenet, cast_photos):
    crop = face_crop(cast_photos[0])
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(
        img_to_encoding(crop, facenet, detect=False), img_to_encoding(cast_photos[0], facenet), atol=1e-5
    )
    # the whole photo taken as a crop is a different (worse) input
    assert np.linalg.norm(img_to_encoding(cast_photos[0], facenet, detect=False) - img_to_encoding(crop, facenet, detect=False)) > 0.05


def test_face_crops_give_each_photo_its_crop_or_its_own_error(cast_photos):
    """Photos cropped together (the service's batch): each good photo gets face_crop's crop, each
    bad one the error face_crop raises for it, naming it, and the others are unaffected."""
    no_face = OTHER / "no_face_coffee.jpg"
    photos = [cast_photos[0], no_face, cast_photos[1].read_bytes(), b"not a photo", cast_photos[2]]
    crops = face_crops(photos)
    assert len(crops) == 5
    for i in (0, 2, 4):
        np.testing.assert_array_equal(crops[i], face_crop(photos[i]))
    assert isinstance(crops[1], NoFaceError) and str(crops[1]).startswith(f"{no_face}: no face found")
    assert isinstance(crops[3], FaceImageError) and not isinstance(crops[3], NoFaceError)
    with pytest.raises(FaceImageError) as alone:
        face_crop(b"not a photo")
    assert str(crops[3]) == str(alone.value)
    np.testing.assert_array_equal(face_crops([cast_photos[0]], max_side=160)[0], face_crop(cast_photos[0], max_side=160))
    # photos resized for detection ahead of time (the service does it in the requests' threads): the same crops
    from fr_utils.detect import MAX_SIDE, prepare
    from fr_utils.images import as_rgb_array

    ready = [prepare(as_rgb_array(photos[0])), prepare(as_rgb_array(photos[1])), prepare(as_rgb_array(photos[4]), 160)]
    again = face_crops(ready)
    np.testing.assert_array_equal(again[0], crops[0])
    assert isinstance(again[1], NoFaceError)
    np.testing.assert_array_equal(again[2], crops[4])  # prepared for another size: resized again, as asked
    np.testing.assert_array_equal(face_crops([ready[2]], max_side=160)[0], face_crop(photos[4], max_side=160))
    assert ready[0].max_side == MAX_SIDE and ready[0].small.shape[:2] != ready[0].image.shape[:2]


def test_batch_nan_rows_for_photos_without_a_face(facenet, cast_photos):
    photos = [cast_photos[0], OTHER / "no_face_coffee.jpg", cast_photos[1]]
    out = encode_images(photos, facenet, on_no_face="nan")
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    with pytest.raises(NoFaceError, match="no_face_coffee"):
        encode_images(photos, facenet)


def test_encode_faces_returns_every_face_largest_first(facenet):
    faces = encode_faces(OTHER / "two_faces_hopper_collins.jpg", facenet)
    assert len(faces) == 2
    areas = [f["box"][2] * f["box"][3] for f in faces]
    assert areas[0] >= areas[1]
    for f in faces:
        assert f["embedding"].shape == (128,) and abs(np.linalg.norm(f["embedding"]) - 1) < 1e-5
    assert encode_faces(OTHER / "no_face_coffee.jpg", facenet) == []


def test_sample_cast_same_person_closer_than_any_other_pair(facenet, cast_photos):
    enc = encode_images(cast_photos, facenet)
    dist = np.linalg.norm(enc[:, None] - enc[None], axis=-1)
    same = np.array([[a.parent == b.parent for b in cast_photos] for a in cast_photos])
    off_diagonal = ~np.eye(len(cast_photos), dtype=bool)
    assert same[off_diagonal].any(), "the cast needs one person with several photos"
    assert dist[same & off_diagonal].max() < dist[~same].min()


def test_native_bfloat16_reads_the_cpu_flags_and_auto_follows_them(tmp_path, monkeypatch):
    from fr_utils import encoding

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert encoding.native_bfloat16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_tile amx_bf16\n")
    assert encoding.native_bfloat16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not encoding.native_bfloat16(info)
    assert not encoding.native_bfloat16(tmp_path / "missing")
    monkeypatch.setattr(encoding, "native_bfloat16", lambda: True)
    assert encoding.encoder_precision("auto") == "bfloat16"
    monkeypatch.setattr(encoding, "native_bfloat16", lambda: False)
    assert encoding.encoder_precision("auto") == "float32"
    monkeypatch.setenv("FR_ENCODER_PRECISION", "auto")
    assert encoding.encoder_precision() == "float32"
    monkeypatch.setenv("FR_ENCODER_PRECISION", "half")
    with pytest.raises(ValueError, match="FR_ENCODER_PRECISION must be one of 'auto', 'float32', 'bfloat16', got 'half'"):
        encoding.encoder_precision()
