"""The webcam widget (fr_utils.camera): photos to RGB arrays, and a real browser with a fake webcam.

The browser test starts JupyterLab on a temporary folder holding a notebook made of
the beyond notebook's first cell (the model, the cast, the threshold) and its live
door cell, then drives Debian's chromium with Playwright. Chromium's fake webcam
plays a ``.y4m`` file that this test makes from a cast photo that is NOT the one
enrolled; the test presses *Take photo* and waits for the door to recognise that
person. Screenshots are kept in test-artifacts/camera/.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils.camera import MAX_PHOTOS, Camera, decode_data_url
from fr_utils.data import sample_cast
from fr_utils.errors import FaceImageError
from fr_utils.images import load_image
from nbgrader_helpers import REPO, read_notebook

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "camera"
BEYOND = REPO / "notebooks" / "beyond" / "beyond.ipynb"
PERSON, SHOWN = "Barack_Obama", 2  # the camera shows Barack_Obama_0003.jpg; _0001 is enrolled


def _data_url(rgb: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


# -- the kernel side, without a browser ------------------------------------------------


def test_a_photo_arrives_as_the_same_rgb_array_and_reaches_every_callback():
    photo = sample_cast()[PERSON][SHOWN]
    rgb = load_image(photo)
    camera = Camera()
    seen = []
    camera.on_photo(lambda got: seen.append(got.shape))
    assert camera.image is None and camera.images == []
    got = camera.receive(_data_url(rgb), "camera")
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    np.testing.assert_array_equal(got, rgb)  # PNG is lossless: the very pixels
    assert seen == [rgb.shape] and camera.image is got


def test_the_browser_path_sets_the_traits_and_the_kernel_answers():
    camera = Camera()
    seen = []
    camera.on_photo(lambda got: seen.append(got.shape))
    rgb = load_image(sample_cast()[PERSON][0])
    camera.photo, camera.source = _data_url(rgb, "JPEG"), "file me.jpg"
    camera.count += 1  # what the widget's JavaScript does after each photo
    assert seen == [rgb.shape]
    assert camera.message == "photo 1 received in the kernel (file me.jpg)"


@pytest.mark.parametrize("url, says", [
    ("not a url", "expected a 'data:image/...;base64,' URL"),
    ("data:text/plain;base64,aGVsbG8=", "expected a 'data:image/...;base64,' URL"),
    ("data:image/png;base64,@@@", "base64 text is damaged"),
    ("data:image/png;base64," + base64.b64encode(b"hello, not a picture").decode(), "not an image"),
    ("data:image/png;base64,", "empty"),
])
def test_a_damaged_photo_is_refused_with_a_message_and_nothing_is_kept(url, says):
    with pytest.raises(FaceImageError, match="photo from camera") as caught:
        Camera().receive(url)
    assert says in str(caught.value)
    camera = Camera()
    camera.photo, camera.count = url, 1
    assert camera.images == [] and says in camera.message


def test_only_the_last_photos_are_kept():
    camera = Camera()
    small = _data_url(np.full((8, 8, 3), 7, np.uint8))
    for _ in range(MAX_PHOTOS + 3):
        camera.receive(small)
    assert len(camera.images) == MAX_PHOTOS


def test_decode_names_its_source():
    with pytest.raises(FaceImageError, match="^upload x.png: "):
        decode_data_url("data:image/png;base64,", "upload x.png")


# -- a real browser with a fake webcam -------------------------------------------------


def write_y4m(rgb: np.ndarray, path: Path, size=(640, 480), frames: int = 30) -> None:
    """A YUV4MPEG2 (4:2:0, BT.601 studio range) video of ``rgb`` centred on a grey frame."""
    width, height = size
    canvas = Image.new("RGB", size, (128, 128, 128))
    photo = Image.fromarray(rgb)
    scale = min(width / photo.width, height / photo.height)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
    canvas.paste(photo, ((width - photo.width) // 2, (height - photo.height) // 2))
    y, cb, cr = (np.asarray(band, np.float64) for band in canvas.convert("YCbCr").split())  # full range
    y = np.round(16 + y * 219 / 255).astype(np.uint8)
    half = (width // 2, height // 2)
    chroma = [np.round(128 + (np.asarray(Image.fromarray(c.astype(np.uint8)).resize(half, Image.Resampling.BOX),
                                         np.float64) - 128) * 224 / 255).astype(np.uint8) for c in (cb, cr)]
    frame = b"FRAME\n" + y.tobytes() + chroma[0].tobytes() + chroma[1].tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(frame)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live_notebook(folder: Path) -> Path:
    """The beyond notebook's set-up cell and its live-door cell, nothing else."""
    beyond = read_notebook(BEYOND)
    code = [cell for cell in beyond.cells if cell.cell_type == "code"]
    live = [cell for cell in code if "Camera()" in cell.source]
    assert len(live) == 1, "the beyond notebook must have exactly one cell that makes the Camera"
    beyond.cells = [code[0], live[0]]
    path = folder / "camera.ipynb"
    path.write_text(json.dumps(beyond, indent=1))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (system-packages.txt; `make test` does)")
    root = tmp_path_factory.mktemp("camera-lab")
    _live_notebook(root)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(REPO), "JUPYTER_CONFIG_DIR": str(root / ".jupyter")}
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; its log: {(root / 'lab.log').read_text()[-3000:]}")
                time.sleep(1)
        yield url, token, root
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.slow
def test_the_widget_takes_a_photo_from_the_webcam_and_the_door_recognises_that_person(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    shown = sample_cast()[PERSON][SHOWN]
    video = tmp_path / "webcam.y4m"
    write_y4m(load_image(shown), video)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox",  # Chromium refuses to sandbox itself as root
            "--use-fake-ui-for-media-stream",  # allow the camera without asking
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ])
        page = None
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            _drive(page, url, token)
        except Exception:
            if page is not None:
                page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
                outputs = page.locator(".jp-OutputArea").all_inner_texts()
                print("cell outputs:", *outputs, sep="\n---\n")
            print("JupyterLab log:", (root / "lab.log").read_text()[-4000:], sep="\n")
            raise
        finally:
            browser.close()


def _drive(page, url: str, token: str) -> None:
    """Open the notebook, run it, take two photos; screenshots on the way."""
    page.goto(f"{url}/lab/tree/camera.ipynb?token={token}")
    page.locator(".jp-Notebook").wait_for()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    # Run only once the kernel is connected and idle: cells queued before are lost.
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")  # the set-up cell; then the camera's cell, staying on it
    page.keyboard.press("Control+Enter")
    take = page.locator("button.fr-camera-take")
    take.wait_for(timeout=int(os.environ.get("FR_CAMERA_TEST_WAIT_S", "300")) * 1000)  # the kernel imports TensorFlow and loads the model first
    page.wait_for_function("() => { const b = document.querySelector('button.fr-camera-take');"
                           " return b && !b.disabled; }", timeout=60_000)
    page.wait_for_timeout(1500)  # a few frames into the video
    page.screenshot(path=str(ARTIFACTS / "1-camera-on.png"), full_page=True)
    assert "camera on" in page.locator(".fr-camera-status").inner_text()
    take.click()
    answer = page.get_by_text(f"recognised as {PERSON}")
    try:
        answer.wait_for(timeout=180_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "2-door-answer.png"), full_page=True)
    text = page.locator(".jp-OutputArea", has_text="recognised as").last.inner_text()
    assert "the door opens" in text and 'enrolled this photo as "you"' in text, text
    take.click()  # the same face again: now nearest to "you", the photo just enrolled
    page.get_by_text("recognised as you").wait_for(timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "3-you.png"), full_page=True)
