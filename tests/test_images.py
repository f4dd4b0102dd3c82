"""fr_utils.images: every kind of file a student may hand in, good or bad.

Each case is written to ``tmp_path`` with Pillow, then fed to ``load_image``,
``as_rgb_array`` and ``img_to_encoding``. Good files must come back as
(H, W, 3) uint8 RGB with the expected pixels; bad ones must raise
``FaceImageError`` (a ``ValueError``) whose message names the file, before any
model is run. The sample photos in fr_utils/cast/ are checked too.
"""

from __future__ import annotations

import inspect
import io
import os
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils import encoding
from fr_utils.data import cast_dir
from fr_utils.images import (
    MAX_PIXELS,
    FaceImageError,
    as_rgb_array,
    fixed_image_standardization,
    load_image,
    resize,
    resize_region,
)

REPO = Path(__file__).resolve().parents[1]
IMAGES = cast_dir()  # the sample cast, package data of fr_utils


def img_to_encoding(image, model):
    """Encode ``image`` as a face crop, whole, without looking for a face in it.

    The test files here are not faces, so where ``img_to_encoding`` can detect
    faces first, that step is turned off (``detect=False``).
    """
    if "detect" in inspect.signature(encoding.img_to_encoding).parameters:
        return encoding.img_to_encoding(image, model, detect=False)
    return encoding.img_to_encoding(image, model)


class RecordingModel:
    """Stands in for the encoder: records its input, returns a unit vector."""

    input_shape = (None, 160, 160, 3)
    output_shape = (None, 512)

    def __init__(self):
        self.inputs = []

    def predict_on_batch(self, x):
        x = np.asarray(x)
        self.inputs.append(x)
        out = np.zeros((len(x), 512), dtype=np.float32)
        out[:, 0] = 1.0
        return out


@pytest.fixture
def model():
    return RecordingModel()


def _pattern(h: int = 48, w: int = 64) -> np.ndarray:
    """An RGB test card: four flat quadrants, so rotations and flips are easy to tell apart."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 2] = (220, 30, 30)  # top left: red
    img[: h // 2, w // 2 :] = (30, 220, 30)  # top right: green
    img[h // 2 :, : w // 2] = (30, 30, 220)  # bottom left: blue
    img[h // 2 :, w // 2 :] = (230, 230, 40)  # bottom right: yellow
    return img


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Bad files: each maker writes one into tmp_path and returns (path, words the
# message must contain).


def _missing(tmp: Path):
    return tmp / "nobody_here.jpg", "no such file"


def _empty(tmp: Path):
    p = tmp / "empty.jpg"
    p.write_bytes(b"")
    return p, "empty"


def _truncated_jpeg(tmp: Path):
    data = _jpeg_bytes((np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8))
    p = tmp / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    return p, "truncated or corrupt"


def _jpeg_header_only(tmp: Path):
    p = tmp / "header_only.jpg"
    p.write_bytes(_jpeg_bytes(_pattern())[:120])
    return p, "truncated or corrupt"


def _text_named_jpg(tmp: Path):
    p = tmp / "notes.jpg"
    p.write_text("These are my notes, not a photo.\n")
    return p, "not an image"


def _eps_file(tmp: Path):
    # Pillow would hand EPS to Ghostscript; load_image never opens that format.
    p = tmp / "drawing.eps"
    p.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    return p, "not an image"


def _decompression_bomb(tmp: Path):
    p = tmp / "bomb.png"
    p.write_bytes(_png_claiming(100_000, 100_000))
    return p, "decompression bomb"


def _just_over_the_limit(tmp: Path):
    # 12000 x 12000 = 144 Mpx: above MAX_PIXELS, below Pillow's own hard limit.
    p = tmp / "too_big.png"
    p.write_bytes(_png_claiming(12_000, 12_000))
    return p, "decompression bomb"


def _directory(tmp: Path):
    p = tmp / "photos.jpg"
    p.mkdir()
    return p, "directory"


def _file_inside_a_file(tmp: Path):
    f = tmp / "a_file"
    f.write_bytes(b"x")
    return f / "photo.jpg", "no such file"


BAD_FILES = [
    _missing,
    _empty,
    _truncated_jpeg,
    _jpeg_header_only,
    _text_named_jpg,
    _eps_file,
    _decompression_bomb,
    _just_over_the_limit,
    _directory,
    _file_inside_a_file,
]


@pytest.mark.parametrize("make", BAD_FILES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("as_str", [False, True], ids=["Path", "str"])
def test_bad_file_raises_naming_it(tmp_path, make, as_str):
    path, words = make(tmp_path)
    source = str(path) if as_str else path
    with pytest.raises(FaceImageError, match=re.escape(words)) as info:
        load_image(source)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("make", BAD_FILES, ids=lambda f: f.__name__.strip("_"))
def test_bad_file_through_as_rgb_array_and_img_to_encoding(tmp_path, make, model):
    path, words = make(tmp_path)
    with pytest.raises(FaceImageError, match=re.escape(words)):
        as_rgb_array(path)
    with pytest.raises(FaceImageError, match=re.escape(str(path))):
        img_to_encoding(path, model)
    assert model.inputs == [], "the model must not run on a bad file"


@pytest.mark.parametrize(
    "make", [_empty, _truncated_jpeg, _text_named_jpg, _decompression_bomb], ids=lambda f: f.__name__.strip("_")
)
def test_bad_bytes_raise_naming_their_size(tmp_path, make):
    path, words = make(tmp_path)
    data = path.read_bytes()
    with pytest.raises(FaceImageError, match=re.escape(words)) as info:
        load_image(data)
    assert f"<{len(data)} bytes>" in str(info.value)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, as_bytes):
    """A header claiming 10 gigapixels must fail at once, without decoding anything."""
    path, _ = _decompression_bomb(tmp_path)
    source = path.read_bytes() if as_bytes else path
    start = time.perf_counter()
    with pytest.raises(FaceImageError, match="decompression bomb"):
        load_image(source)
    assert time.perf_counter() - start < 1.0


def test_over_the_limit_message_gives_the_size(tmp_path):
    path, _ = _just_over_the_limit(tmp_path)
    with pytest.raises(FaceImageError, match=r"12000x12000 pixels") as info:
        load_image(path)
    assert f"{MAX_PIXELS:,}" in str(info.value)


def test_large_but_allowed_header_is_not_called_a_bomb(tmp_path):
    """9000 x 9000 (81 Mpx) is under MAX_PIXELS and within the decoding budget: this
    fake one must fail as truncated, not as a bomb."""
    p = tmp_path / "big_but_broken.png"
    p.write_bytes(_png_claiming(9_000, 9_000))
    with pytest.raises(FaceImageError, match="truncated or corrupt"):
        load_image(p)


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "locked.jpg"
    p.write_bytes(_jpeg_bytes(_pattern()))

    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path) == str(p):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FaceImageError, match="cannot read") as info:
        load_image(p)
    assert str(p) in str(info.value)


def test_empty_path_and_wrong_types():
    with pytest.raises(FaceImageError, match="empty path"):
        load_image("")
    for wrong in (None, 42, 3.5, ["a.jpg"]):
        with pytest.raises(FaceImageError, match="expected a path"):
            as_rgb_array(wrong)


# --------------------------------------------------------------------------
# Good files: each maker writes one and returns (path, expected RGB array,
# tolerance in grey levels).


def _gray16_png(tmp: Path):
    values = np.array([[0, 257 * 100, 65535], [257 * 50, 257 * 200, 257 * 255]], dtype=np.uint16)
    p = tmp / "depth16.png"
    Image.fromarray(values).save(p)
    assert Image.open(p).mode.startswith("I")
    expected = np.array([[0, 100, 255], [50, 200, 255]], dtype=np.uint8)
    return p, np.repeat(expected[:, :, None], 3, axis=2), 0


def _rgba_png(tmp: Path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (0, 0, 255, 0)  # fully transparent: white
    rgba[0, 2] = (255, 0, 0, 128)  # half-transparent red on white: pink
    rgba[1, :] = (0, 100, 0, 255)
    p = tmp / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    expected = np.array(
        [[(255, 0, 0), (255, 255, 255), (255, 127, 127)], [(0, 100, 0)] * 3], dtype=np.uint8
    )
    return p, expected, 1


def _gray_jpeg(tmp: Path):
    gray = np.full((32, 40), 90, dtype=np.uint8)
    gray[:, 20:] = 200
    p = tmp / "gray.jpg"
    Image.fromarray(gray, "L").save(p, quality=95)
    assert Image.open(p).mode == "L"
    return p, np.repeat(gray[:, :, None], 3, axis=2), 2


def _palette_png(tmp: Path):
    arr = _pattern(8, 8)
    p = tmp / "palette.png"
    Image.fromarray(arr).quantize(colors=4, method=Image.Quantize.MEDIANCUT).save(p)
    assert Image.open(p).mode == "P"
    return p, arr, 0


def _palette_png_transparent(tmp: Path):
    arr = _pattern(8, 8)
    pal = Image.fromarray(arr).quantize(colors=4, method=Image.Quantize.MEDIANCUT)
    index_of_red = pal.getpixel((0, 0))
    p = tmp / "palette_alpha.png"
    pal.save(p, transparency=index_of_red)
    expected = arr.copy()
    expected[:4, :4] = 255  # the transparent colour shows white
    return p, expected, 0


def _pgm(tmp: Path):
    gray = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    p = tmp / "scan.pgm"
    Image.fromarray(gray, "L").save(p)
    assert p.read_bytes().startswith(b"P5")
    return p, np.repeat(gray[:, :, None], 3, axis=2), 0


def _tiff(tmp: Path):
    arr = _pattern()
    p = tmp / "photo.tiff"
    Image.fromarray(arr).save(p)
    return p, arr, 0


def _tiff_16bit_gray(tmp: Path):
    values = np.array([[0, 65535], [257 * 10, 257 * 240]], dtype=np.uint16)
    p = tmp / "depth16.tif"
    Image.fromarray(values).save(p)
    expected = np.repeat(np.array([[0, 255], [10, 240]], dtype=np.uint8)[:, :, None], 3, axis=2)
    return p, expected, 0


def _webp(tmp: Path):
    arr = _pattern()
    p = tmp / "photo.webp"
    Image.fromarray(arr).save(p, lossless=True)
    return p, arr, 0


def _bmp(tmp: Path):
    arr = _pattern()
    p = tmp / "photo.bmp"
    Image.fromarray(arr).save(p)
    return p, arr, 0


def _gif(tmp: Path):
    arr = _pattern(8, 8)
    p = tmp / "photo.gif"
    Image.fromarray(arr).save(p)
    return p, arr, 0


def _cmyk_jpeg(tmp: Path):
    arr = _pattern()
    p = tmp / "print.jpg"
    Image.fromarray(arr).convert("CMYK").save(p, quality=95)
    return p, arr, 4


def _one_pixel(tmp: Path):
    p = tmp / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(p)
    return p, np.array([[[10, 20, 30]]], dtype=np.uint8), 0


def _jpeg_named_png(tmp: Path):
    # The extension lies; the content decides.
    arr = _pattern()
    p = tmp / "really_a_jpeg.png"
    p.write_bytes(_jpeg_bytes(arr))
    return p, arr, 3


GOOD_FILES = [
    _gray16_png,
    _rgba_png,
    _gray_jpeg,
    _palette_png,
    _palette_png_transparent,
    _pgm,
    _tiff,
    _tiff_16bit_gray,
    _webp,
    _bmp,
    _gif,
    _cmyk_jpeg,
    _one_pixel,
    _jpeg_named_png,
]


def _close(got: np.ndarray, expected: np.ndarray, tol: float) -> None:
    """Equal pixels (tol 0), or for lossy JPEG a mean difference within tol.

    JPEG rings at the test card's sharp edges, so its worst pixel says little;
    a wrong rotation or channel order moves the mean by 50 and more.
    """
    assert got.dtype == np.uint8
    assert got.shape == expected.shape
    diff = np.abs(got.astype(int) - expected.astype(int))
    if tol == 0:
        assert diff.max() == 0, f"max difference {diff.max()}"
    else:
        assert diff.mean() <= tol, f"mean difference {diff.mean():.1f} > {tol}"


@pytest.mark.parametrize("make", GOOD_FILES, ids=lambda f: f.__name__.strip("_"))
def test_good_file_loads_as_rgb_uint8(tmp_path, make):
    path, expected, tol = make(tmp_path)
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        img = load_image(source)
        assert img.ndim == 3 and img.shape[2] == 3
        _close(img, expected, tol)
        assert img.flags.writeable and img.flags.c_contiguous
    _close(as_rgb_array(path), expected, tol)


@pytest.mark.parametrize("make", GOOD_FILES, ids=lambda f: f.__name__.strip("_"))
def test_good_file_encodes(tmp_path, make, model):
    path, _, _ = make(tmp_path)
    emb = img_to_encoding(path, model)
    assert emb.shape == (1, 512) and emb.dtype == np.float32
    (x,) = model.inputs
    assert x.shape == (1, 160, 160, 3) and x.dtype == np.float32
    assert np.isfinite(x).all() and -1.0 <= x.min() and x.max() <= 1.0
    # What the model saw is exactly the loaded image, resized and standardised.
    np.testing.assert_array_equal(x[0], fixed_image_standardization(resize(load_image(path), 160)))


def test_one_pixel_image_encodes_to_a_flat_input(tmp_path, model):
    path, _, _ = _one_pixel(tmp_path)
    img_to_encoding(path, model)
    x = model.inputs[0][0]
    flat = np.broadcast_to(fixed_image_standardization(np.array([10, 20, 30])), x.shape)
    np.testing.assert_allclose(x, flat)


# --------------------------------------------------------------------------
# EXIF orientation

# orientation tag -> how the stored pixels must be turned to stand upright
_ORIENT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.transpose(a, (1, 0, 2)),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.transpose(a[::-1, ::-1], (1, 0, 2)),
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(_ORIENT))
def test_exif_orientation_is_applied(tmp_path, orientation):
    stored = _pattern(48, 64)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"phone_{orientation}.jpg"
    p.write_bytes(_jpeg_bytes(stored, exif=exif.tobytes()))
    img = load_image(p)
    expected = np.ascontiguousarray(_ORIENT[orientation](stored))
    if orientation >= 5:
        assert img.shape == (64, 48, 3)  # portrait now
    _close(img, expected, 3)
    # The same through bytes, and through the encoder's input.
    _close(load_image(p.read_bytes()), expected, 3)


def test_exif_rotated_photo_reaches_the_model_upright(tmp_path, model):
    stored = _pattern(48, 64)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    p.write_bytes(_jpeg_bytes(stored, exif=exif.tobytes()))
    img_to_encoding(p, model)
    x = model.inputs[0][0]
    # Rotated 90 degrees clockwise: the stored bottom-left (blue) is now top-left.
    top_left = x[:40, :40].reshape(-1, 3).mean(axis=0) * 128 + 127.5
    assert top_left[2] > 180 and top_left[0] < 80


def test_pillow_image_gets_its_exif_orientation_too():
    stored = _pattern(48, 64)
    exif = Image.Exif()
    exif[0x0112] = 8
    pil = Image.open(io.BytesIO(_jpeg_bytes(stored, exif=exif.tobytes())))
    _close(as_rgb_array(pil), np.rot90(stored, k=1), 3)


# --------------------------------------------------------------------------
# as_rgb_array on arrays


def test_arrays_of_every_documented_kind():
    rgb = _pattern(4, 6)
    gray = rgb[:, :, 0]
    np.testing.assert_array_equal(as_rgb_array(rgb), rgb)
    np.testing.assert_array_equal(as_rgb_array(gray), np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(as_rgb_array(gray[:, :, None]), np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(as_rgb_array(rgb.astype(np.float32)), rgb)
    np.testing.assert_array_equal(as_rgb_array(rgb.astype(np.int64)), rgb)
    np.testing.assert_array_equal(as_rgb_array(rgb.astype(np.float64) + 0.3), rgb)
    # float in [0, 1], as matplotlib.pyplot.imread gives for a PNG
    np.testing.assert_array_equal(as_rgb_array(rgb.astype(np.float32) / 255.0), rgb)
    # out of range values are clipped
    np.testing.assert_array_equal(
        as_rgb_array(np.array([[[-20.0, 300.0, 128.0]]])), np.array([[[0, 255, 128]]], dtype=np.uint8)
    )


def test_rgba_arrays_composite_on_white_whatever_the_dtype():
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [255, 0, 0, 128]]], dtype=np.uint8)
    expected = np.array([[[255, 0, 0], [255, 255, 255], [255, 127, 127]]], dtype=np.uint8)
    for arr in (rgba, rgba.astype(np.float32), rgba.astype(np.int32)):
        _close(as_rgb_array(arr), expected, 1)
    _close(as_rgb_array(rgba.astype(np.float32) / 255.0), expected, 1)


@pytest.mark.parametrize(
    "arr, words",
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros(12, np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 0), np.uint8), "empty"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.full((4, 4, 3), np.inf, np.float32), "NaN or infinite"),
        (np.zeros((4, 4, 3), bool), "dtype"),
        (np.full((4, 4, 3), "x"), "dtype"),
        (np.zeros((4, 4, 3), complex), "dtype"),
    ],
    ids=["2ch", "5ch", "batch", "flat", "empty_rows", "empty_cols", "nan", "inf", "bool", "str", "complex"],
)
def test_bad_arrays_raise(arr, words, model):
    with pytest.raises(FaceImageError, match=re.escape(words)):
        as_rgb_array(arr)
    with pytest.raises(FaceImageError):
        img_to_encoding(arr, model)
    assert model.inputs == []


def test_as_rgb_array_takes_pillow_images_of_any_mode():
    rgb = _pattern(4, 6)
    for mode in ("RGB", "L", "RGBA", "P", "CMYK", "I;16"):
        pil = Image.fromarray(rgb).convert(mode)
        out = as_rgb_array(pil)
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8


def test_bytes_input_equals_path_input(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_bytes(_jpeg_bytes(_pattern()))
    data = p.read_bytes()
    ref = load_image(p)
    for source in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(source), ref)
        np.testing.assert_array_equal(as_rgb_array(source), ref)


# --------------------------------------------------------------------------
# The sample photos shipped in fr_utils/cast/


PEOPLE = sorted((IMAGES / "people").glob("*/*.jpg"))
OTHER = sorted((IMAGES / "other").glob("*.jpg"))


def test_sample_cast_layout():
    people = {p.parent.name for p in PEOPLE}
    assert len(people) >= 4
    assert max(sum(p.parent.name == name for p in PEOPLE) for name in people) >= 3
    for p in PEOPLE:
        # LFW's layout: First_Last/First_Last_0001.jpg
        assert re.fullmatch(re.escape(p.parent.name) + r"_\d{4}\.jpg", p.name), p
    total = sum(f.stat().st_size for f in IMAGES.rglob("*") if f.is_file())
    assert total < 3 * 1024 * 1024


def test_every_sample_photo_is_credited():
    credits = (IMAGES / "CREDITS.md").read_text()
    for p in PEOPLE + OTHER:
        rel = p.relative_to(IMAGES).as_posix()
        assert f"`{rel}`" in credits, f"{rel} has no line in fr_utils/cast/CREDITS.md"


@pytest.mark.parametrize("path", PEOPLE + OTHER, ids=lambda p: p.relative_to(IMAGES).as_posix())
def test_sample_photo_loads(path):
    img = load_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert 256 <= max(img.shape[:2]) <= 640
    assert img.std() > 20  # a real photo, not a flat placeholder


@pytest.mark.slow
def test_real_encoder_on_a_sample_photo_and_its_odd_copies(tmp_path):
    """End to end with the real encoder: one photo saved as an EXIF-rotated JPEG
    and as a 16-bit grayscale PNG still encodes like the original."""
    from fr_utils.weights import WeightsError, weights_path

    try:
        weights = weights_path()
    except WeightsError:
        weights = None
    if weights is None or not weights.exists():
        pytest.skip("weights/ not built (make weights)")
    from fr_utils import load_facenet

    facenet = load_facenet()
    photo = IMAGES / "people" / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
    face = load_image(photo)[100:340, 170:360]  # the face, roughly
    ref = img_to_encoding(face, facenet)
    assert ref.shape == (1, 128)
    assert abs(float(np.linalg.norm(ref)) - 1.0) < 1e-4

    # Stored rotated, with an EXIF tag that turns it back upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(_jpeg_bytes(np.ascontiguousarray(np.rot90(face, k=1)), exif=exif.tobytes()))
    emb = img_to_encoding(rotated, facenet)
    assert float(np.sum((emb - ref) ** 2)) < 0.01

    # Without its orientation applied, the same file would be a different "face".
    sideways = img_to_encoding(np.rot90(face, k=1), facenet)
    assert float(np.sum((sideways - ref) ** 2)) > 0.5


# --------------------------------------------------------------------------- issue #18: hostile files


def _gray16_png(width: int, height: int) -> bytes:
    """A real, complete 16-bit grayscale PNG (all black), compressed row by row."""
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + 2 * width)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_16bit_png_just_under_the_pixel_limit_is_refused_before_decoding(tmp_path):
    """The issue's 233 KB 10950 x 10950 16-bit PNG cost 35 s and 3.3 GB; now it fails at once."""
    import fr_utils.images as I

    p = tmp_path / "huge16.png"
    p.write_bytes(_gray16_png(10_950, 10_950))
    assert 10_950 ** 2 < MAX_PIXELS and p.stat().st_size < 400_000
    start = time.perf_counter()
    with pytest.raises(FaceImageError, match=r"10950x10950 I;16 image would take about [\d,]+ MiB.*1,024 MiB allowed") as info:
        load_image(p)
    assert time.perf_counter() - start < 1.0
    assert str(p) in str(info.value)
    assert I.decode_estimate(10_950, 10_950, "I;16") > I.MAX_DECODE_BYTES


def test_decode_budget_reduces_a_jpeg_and_refuses_a_png(tmp_path, monkeypatch):
    import fr_utils.images as I

    arr = _pattern()  # 48 x 64
    big = np.asarray(Image.fromarray(arr).resize((1600, 1200)))
    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    Image.fromarray(big).save(jpeg, quality=90)
    Image.fromarray(big).save(png)
    assert load_image(jpeg).shape == (1200, 1600, 3)  # within the real budget: full size
    monkeypatch.setattr(I, "MAX_DECODE_BYTES", I.decode_estimate(1600, 1200, "RGB") // 10)  # fits at 1/4
    reduced = load_image(jpeg)
    assert reduced.shape == (300, 400, 3)
    # the reduced decode is the same picture: compare with the full one shrunk
    full_small = np.asarray(Image.fromarray(big).resize((400, 300), Image.BILINEAR), dtype=np.float64)
    assert np.abs(reduced.astype(np.float64) - full_small).mean() < 12
    with pytest.raises(FaceImageError, match="1600x1200 RGB image would take about .* MiB") as info:
        load_image(png)
    assert str(png) in str(info.value)


def test_fifo_and_devices_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block for ever
    start = time.perf_counter()
    with pytest.raises(FaceImageError, match="camera.jpg: is a FIFO"):
        load_image(fifo)
    for device in ("/dev/zero", "/dev/null"):
        if os.path.exists(device):
            with pytest.raises(FaceImageError, match=f"{device}: is a device, not an image file"):
                load_image(device)
    link = tmp_path / "zero.jpg"
    link.symlink_to("/dev/zero")
    with pytest.raises(FaceImageError, match="zero.jpg: is a device"):
        as_rgb_array(link)
    assert time.perf_counter() - start < 2.0


def test_file_size_cap(tmp_path, monkeypatch):
    import fr_utils.images as I

    p = tmp_path / "photo.jpg"
    p.write_bytes(_jpeg_bytes(_pattern()))
    monkeypatch.setattr(I, "MAX_FILE_BYTES", p.stat().st_size - 1)
    with pytest.raises(FaceImageError, match=r"photo.jpg: [\d,]+ bytes is more than the [\d,]+ accepted"):
        load_image(p)
    with pytest.raises(FaceImageError, match="more than the .* bytes accepted"):
        load_image(p.read_bytes())


# ---------------------------------------------------------------------------
# resize_region: the crop's resampling (fr_utils.align.align_face)


def test_resize_region_on_whole_pixels_is_the_resize_of_the_slice_inside():
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    h, w = img.shape[:2]
    np.testing.assert_array_equal(resize_region(img, (0, 0, w, h), 48), resize(img, 48))
    # inside the photo, the filter of the outermost output pixels also reads the photo's
    # pixels just outside the region (a slice cut out first would repeat its own edge)
    x1, y1, x2, y2 = 3, 5, w - 4, h - 2
    region = resize_region(img, (x1, y1, x2, y2), 48)
    cut = resize(np.ascontiguousarray(img[y1:y2, x1:x2]), 48)
    np.testing.assert_array_equal(region[1:-1, 1:-1], cut[1:-1, 1:-1])
    assert not np.array_equal(region, cut)


def test_resize_region_reads_the_region_to_a_fraction_of_a_pixel():
    """A ramp 2 grey levels per pixel: the region shifted by half a pixel reads values
    one level further (bilinear interpolation of a ramp is exact)."""
    ramp = np.repeat(np.repeat((2 * np.arange(128)).astype(np.uint8)[None, :, None], 64, axis=0), 3, axis=2)
    for resample in ("bilinear", "bicubic", "lanczos"):
        whole = resize_region(ramp, (10, 0, 74, 64), 64, resample).astype(int)
        half = resize_region(ramp, (10.5, 0, 74.5, 64), 64, resample).astype(int)
        np.testing.assert_array_equal(whole[:, 2:-2, 0], 2 * np.arange(12, 72)[None, :].repeat(64, 0))
        assert np.abs(half[:, 2:-2] - whole[:, 2:-2] - 1).max() <= 1, resample
        assert (half[:, 2:-2] - whole[:, 2:-2]).mean() == pytest.approx(1.0, abs=0.1), resample


def test_resize_region_averages_when_it_shrinks():
    """One-pixel black and white stripes shrunk 4x become an even grey: each output
    pixel averages every source pixel under it (no aliasing); taking every 4th pixel
    would give pure black."""
    stripes = np.zeros((256, 256, 3), dtype=np.uint8)
    stripes[:, 1::2] = 255
    for resample in ("bilinear", "bicubic", "lanczos"):
        small = resize_region(stripes, (0, 0, 256, 256), 64, resample).astype(float)
        assert abs(small.mean() - 127.5) < 2 and small.std() < 3, resample
    assert stripes[:, ::4].max() == 0


def test_resize_region_refuses_bad_regions_and_filters():
    img = np.zeros((20, 30, 3), dtype=np.uint8)
    for bad in [(5, 5, 5, 10), (0, 0, 31, 10), (-1, 0, 10, 10), (10, 12, 20, 8)]:
        with pytest.raises(ValueError, match=r"region .* is empty or not inside the 30x20 image"):
            resize_region(img, bad, 16)
    with pytest.raises(ValueError, match="region must be four numbers"):
        resize_region(img, "box", 16)
    with pytest.raises(ValueError, match="resample must be one of .*got 'nearest'"):
        resize_region(img, (0, 0, 10, 10), 16, "nearest")
