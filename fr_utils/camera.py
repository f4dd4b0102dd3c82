"""A webcam in a notebook: take a photo in JupyterLab and get it in Python as RGB.

:class:`Camera` is a Jupyter widget (built on ``anywidget``). In the browser it
shows the webcam's live picture (``navigator.mediaDevices.getUserMedia``), a
*Take photo* button and a *choose a photo* file button, which is the fallback
when there is no camera, the user refuses it, or the page is not a secure
context. Each photo, taken or chosen, reaches the kernel as an image file
(PNG from the camera, the file's own bytes when chosen) and is decoded with
:func:`fr_utils.load_image`::

    from fr_utils.camera import Camera

    camera = Camera()
    camera.on_photo(lambda rgb: print("got", rgb.shape))   # each new photo, (H, W, 3) uint8
    display(camera, camera.output)                         # the callbacks print below it
    ...
    camera.images      # every photo so far, oldest first, (H, W, 3) uint8 arrays
    camera.image       # the last one, or None when no photo was taken

Without a browser (``nbconvert``, nbgrader, a plain ``python``) nothing is ever
taken: ``camera.images`` stays empty and a notebook should fall back to a demo.

Nothing is stored on disk: the photos live in the kernel's memory, at most
:data:`MAX_PHOTOS` of them (the oldest are dropped).
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Optional

import anywidget
import ipywidgets
import numpy as np
import traitlets

from fr_utils.errors import FaceImageError
from fr_utils.images import load_image

MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 20 << 20  # a chosen file larger than this is refused in the browser

_ESM = r"""
const MAX_BYTES = %(max_bytes)d;

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "fr-camera";
  box.style.cssText = "display:flex;flex-direction:column;gap:6px;align-items:flex-start";
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; video.playsInline = true;
  video.style.cssText = "width:320px;max-width:100%%;background:#222;border-radius:4px";
  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:8px;align-items:center";
  const take = document.createElement("button");
  take.textContent = "Take photo"; take.className = "fr-camera-take jupyter-button"; take.disabled = true;
  const choose = document.createElement("input");
  choose.type = "file"; choose.accept = "image/*"; choose.className = "fr-camera-choose";
  const status = document.createElement("div");
  status.className = "fr-camera-status";
  row.append(take, choose);
  box.append(video, row, status);
  el.append(box);

  const say = (text) => {
    status.textContent = text;
    model.set("status", text);
    model.save_changes();
  };
  const send = (dataUrl, source) => {
    model.set("photo", dataUrl);
    model.set("source", source);
    model.set("count", model.get("count") + 1);
    model.save_changes();
    say(`photo ${model.get("count")} sent (${source})`);
  };

  let stream = null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    video.style.display = "none";
    say("no camera here (the page is not a secure context, or the browser has none): choose a photo instead");
  } else {
    navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
      .then((s) => {
        stream = s; video.srcObject = s; say("starting the camera...");
        video.play().catch(() => {});
        waitForFrames();
      })
      .catch((err) => {
        video.style.display = "none";
        say(`no camera (${err.name}): choose a photo instead`);
      });
  }
  // The button waits for real frames: a photo taken before the first one would be blank.
  function waitForFrames() {
    if (video.readyState >= 2 && video.videoWidth && video.currentTime > 0.2) {
      take.disabled = false;
      say("camera on: press Take photo");
    } else if (stream) {
      setTimeout(waitForFrames, 100);
    }
  }
  take.addEventListener("click", () => {
    if (!video.videoWidth) { say("the camera has no picture yet: try again in a second"); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    send(canvas.toDataURL("image/png"), "camera");
  });
  choose.addEventListener("change", () => {
    const file = choose.files && choose.files[0];
    if (!file) return;
    if (file.size > MAX_BYTES) { say(`${file.name}: ${file.size} bytes is more than the ${MAX_BYTES} accepted`); return; }
    const reader = new FileReader();
    reader.onload = () => send(reader.result, `file ${file.name}`);
    reader.onerror = () => say(`${file.name}: could not be read`);
    reader.readAsDataURL(file);
    choose.value = "";
  });
  model.on("change:message", () => { if (model.get("message")) status.textContent = model.get("message"); });
  return () => { if (stream) stream.getTracks().forEach((t) => t.stop()); };
}
export default { render };
""" % {"max_bytes": MAX_PHOTO_BYTES}


def decode_data_url(data_url: str, source: str = "camera photo") -> np.ndarray:
    """The RGB uint8 array, shape (H, W, 3), of an ``data:image/...;base64,...`` URL.

    Raises:
        FaceImageError: not a base64 image data URL, or not a readable image
            (the message names ``source``).
    """
    head, comma, payload = data_url.partition(",")
    if not comma or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise FaceImageError(f"{source}: expected a 'data:image/...;base64,' URL, got {data_url[:40]!r}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise FaceImageError(f"{source}: the photo's base64 text is damaged ({error})") from None
    try:
        return load_image(data)
    except FaceImageError as error:
        raise FaceImageError(f"{source}: {error}") from None


class Camera(anywidget.AnyWidget):
    """The webcam (or a chosen photo) as RGB arrays in the kernel; see the module's docstring.

    Attributes:
        images: the photos so far, oldest first, each an (H, W, 3) uint8 array.
        output: an ``ipywidgets.Output`` where :meth:`on_photo` callbacks print
            and draw (display it below the camera).
        status: what the widget last told the user (camera on, no camera, ...).
    """

    _esm = _ESM
    photo = traitlets.Unicode("").tag(sync=True)   # the last photo as a data URL
    source = traitlets.Unicode("").tag(sync=True)  # "camera" or "file NAME"
    count = traitlets.Int(0).tag(sync=True)        # photos sent by the browser so far
    status = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)  # a line from the kernel shown under the buttons

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.images: list[np.ndarray] = []
        self.output = ipywidgets.Output()
        self._callbacks: list[Callable[[np.ndarray], object]] = []
        self.observe(self._received, names="count")

    @property
    def image(self) -> Optional[np.ndarray]:
        """The last photo, an (H, W, 3) uint8 array, or None when there is none."""
        return self.images[-1] if self.images else None

    def on_photo(self, callback: Callable[[np.ndarray], object]) -> None:
        """Call ``callback(rgb)`` for every new photo, its output going to :attr:`output`."""
        self._callbacks.append(callback)

    def receive(self, data_url: str, source: str = "camera") -> np.ndarray:
        """Take one photo given as a data URL, as the browser does; returns its RGB array.

        Raises:
            FaceImageError: the URL is not a readable image (nothing is kept).
        """
        rgb = decode_data_url(data_url, f"photo from {source}")
        self.images = (self.images + [rgb])[-MAX_PHOTOS:]
        for callback in self._callbacks:
            with self.output:
                callback(rgb)
        return rgb

    def _received(self, change) -> None:
        if not self.photo:
            return
        self.output.clear_output(wait=True)
        try:
            self.receive(self.photo, self.source or "camera")
        except FaceImageError as error:
            self.message = str(error)
            with self.output:
                print(error)
        else:
            self.message = f"photo {len(self.images)} received in the kernel ({self.source or 'camera'})"
