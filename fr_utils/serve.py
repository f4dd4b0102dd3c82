"""``facedoor serve``: the door as a long-running HTTP JSON service, the model loaded once.

    facedoor [--db PATH] [--metric M] [--threshold T] serve [--host H] [--port P] [--max-upload MB]
    python -m fr_utils.serve ...            (the same options)

Standard library only (``http.server.ThreadingHTTPServer``): nothing to install. A
photo is sent as the raw body of a POST (any format ``fr_utils.images.load_image``
reads); ``X-Photo-Name`` optionally names it in messages (else ``<N bytes>``)::

    GET  /health                      {"status": "ok", "database": ..., "people": n}
    GET  /people                      what ``facedoor --json list`` prints
    POST /enroll?name=NAME[&strict=1] body: a photo -> 201 {"name", "added", "embeddings", "warnings"}
    POST /verify?name=NAME            body: a photo -> 200 {"decision": "OPEN"|"CLOSED", "match", "distance", ...}
    POST /identify[?all=1]            body: a photo -> 200 {"name" (null: unknown), "distance", "nearest", ...}

The decisions are the command line's (:func:`fr_utils.matching.is_match`, the same
:class:`~fr_utils.database.FaceDatabase` file, which ``facedoor`` may use at the same
time). A CLOSED door or an unknown face is an answer (200), not an error. Errors are
``{"error": message, "exit_code": the CLI's}`` with the CLI's message and a status:

    400  bad request: no body, bad name or option, not an image, truncated, too many pixels
    404  unknown person, no one enrolled, unknown path           (CLI exit 2)
    405  wrong method; 411  no Content-Length
    409  --strict / strict=1 refusal of a look-alike face or name  (CLI exit 2)
    413  upload larger than --max-upload (refused before reading it)
    422  a photo without a face                                   (CLI exit 2)
    500  the database or the model cannot be used, or a bug        (CLI exit 3)

The service keeps serving after every error. Requests are read by a thread each; the
database and the model are used by one worker thread (TensorFlow already uses every core
for one photo, and an SQLite connection belongs to one thread). Each request's thread decodes
its photo; the worker then takes all the verify/identify requests waiting (``--max-batch``),
finds their faces together (one MTCNN pass per photo size) and encodes them in one model call.

While it runs, the service records its address beside the database (``faces.db`` ->
``faces.db.serve.json``); ``facedoor verify/identify/enroll`` on that database find it
(:func:`find_service`) and send their photos here instead of loading TensorFlow
(:class:`DoorClient`, standard library only), answering as they would in-process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import sys
import tempfile
import threading
import time
import warnings
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from fr_utils.errors import (
    EmptyDatabaseError,
    EnrolmentRefused,
    FaceDatabaseError,
    FaceImageError,
    NoFaceError,
    RequestRefused,
    SimilarFaceWarning,
    SimilarNameWarning,
    UnknownPersonError,
    WeightsError,
)
from fr_utils.images import describe
from fr_utils.matching import check_metric, check_threshold, is_match

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 20.0


def error_status(err: BaseException) -> tuple[int, int]:
    """(HTTP status, the CLI's exit code) of an exception raised while answering."""
    if isinstance(err, RequestRefused):
        return err.status, err.exit_code
    if isinstance(err, (UnknownPersonError, EmptyDatabaseError)):
        return 404, 2
    if isinstance(err, EnrolmentRefused):
        return 409, 2
    if isinstance(err, NoFaceError):
        return 422, 2
    if isinstance(err, (FaceDatabaseError, WeightsError, OSError)):
        return 500, 3
    if isinstance(err, ValueError):  # FaceImageError, a bad name, metric or threshold
        return 400, 2
    return 500, 3


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:  # KeyError's str() quotes its message
        return str(err.args[0])
    return str(err)


#: At most this many waiting requests' faces are encoded in one model call (see :meth:`Door.encode_then`).
MAX_BATCH = 8
#: Seconds the worker waits, at most, before a batch, for as many requests as were in the service
#: at once during the last one (when several): the clients it just answered send their next
#: requests a few ms apart, and are then detected and encoded together instead of in alternating
#: batches of 1 and 3 (or 2 and 2). A lone client never waits. Measured in docs/door.md.
BATCH_WAIT = 0.050
_NOTHING = object()


class Door:
    """The database and the model, used by one worker thread; :meth:`call` runs a function there,
    :meth:`encode_then` a photo's encoding, batched with the other requests waiting."""

    def __init__(self, db_path, *, metric: str = "euclidean", threshold: float | None = None, model=None,
                 max_batch: int = MAX_BATCH, detect_side: int | None = None, batch_wait: float = BATCH_WAIT):
        self._jobs: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.db = None
        self.metric, self.threshold = check_metric(metric), check_threshold(threshold)  # the service's defaults
        self.max_batch = max(1, int(max_batch))
        self.batch_wait = max(0.0, float(batch_wait))
        self._inflight = 0  # verify/identify requests in this service now (decoding, queued or in a batch)
        self._seen = 0  # the most of them at once since the last batch began
        self._count = threading.Lock()
        self.detect_side = detect_side  # None: fr_utils.detect.MAX_SIDE, as img_to_encoding
        self.batches: list[int] = []  # the size of each encoder call made for requests (for benchmarks)
        self.load_seconds = 0.0
        self._thread = threading.Thread(target=self._work, args=(db_path, metric, threshold, model),
                                        name="facedoor-worker", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def _work(self, db_path, metric, threshold, model) -> None:
        from fr_utils.database import FaceDatabase

        try:
            start = time.perf_counter()
            if model is None:
                from fr_utils.weights import load_facenet

                model = load_facenet()
            self.db = FaceDatabase(db_path, model, metric=metric, threshold=threshold, create=True)
            self.db.threshold  # the manifest's threshold, checked now rather than at the first request
            self._warm_up()
            self.load_seconds = time.perf_counter() - start
        except BaseException as err:  # reported by __init__ in the caller's thread
            self._failure = err
            self._ready.set()
            return
        self._ready.set()
        job = self._jobs.get()
        while job is not None:
            following = _NOTHING
            if job[0] == "encode":  # every encoding request waiting (up to max_batch) in one model call
                batch = [job]
                # as many requests as were in the service at once lately: wait up to batch_wait for
                # them (the clients just answered send their next ones), then take what else waits
                with self._count:
                    expected, self._seen = self._seen, self._inflight
                deadline = time.monotonic() + (self.batch_wait if expected > 1 else 0.0)
                while len(batch) < self.max_batch:
                    wait = deadline - time.monotonic() if len(batch) < expected else 0.0
                    try:
                        item = self._jobs.get(timeout=max(0.0, wait))
                    except queue.Empty:
                        break
                    if item is None or item[0] != "encode":
                        following = item
                        break
                    batch.append(item)
                self._encode(batch)
            else:
                _, fn, box, done = job
                try:
                    box["value"] = fn(self.db)
                except BaseException as err:  # handed back to the request's thread
                    box["error"] = err
                done.set()
            job = self._jobs.get() if following is _NOTHING else following
        self.db.close()

    def _encode(self, batch: list) -> None:
        """Encode the face of each job's photo as ``img_to_encoding`` does (one MTCNN pass per photo
        size, one model call for all), then run each job's ``then(db, embedding)``; every failure
        goes back to its own request."""
        import numpy as np

        from fr_utils.encoding import _model_input, face_crops, inference_function, standardization

        model = self.db.model
        size, standardize = int(model.input_shape[1]), standardization(model)
        inputs, ready = [], []
        try:
            self.db._check_model()
            # the crop of img_to_encoding, the photos' faces found together (one MTCNN call per photo size)
            crops = face_crops([job[1] for job in batch], max_side=self.detect_side)
        except BaseException as err:
            crops = [err] * len(batch)
        for job, crop in zip(batch, crops):
            _, data, then, box, done = job
            try:
                if isinstance(crop, BaseException):
                    raise crop
                inputs.append(_model_input(crop, size, standardize))
                ready.append(job)
            except BaseException as err:
                box["error"] = err
                done.set()
        if not ready:
            return
        try:
            embeddings = np.asarray(inference_function(model)(np.stack(inputs)), dtype=np.float32)
            self.batches.append(len(ready))
        except BaseException as err:
            embeddings = None
            failure = err
        for i, (_, data, then, box, done) in enumerate(ready):
            try:
                if embeddings is None:
                    raise failure
                box["value"] = then(self.db, embeddings[i])
            except BaseException as err:
                box["error"] = err
            done.set()

    def _warm_up(self) -> None:
        """Encode one shipped photo at each batch size up to 4, so that the first requests do not pay
        for graph building (nor oneDNN for its first calls at a new batch size)."""
        import numpy as np

        from fr_utils.data import sample_cast
        from fr_utils.encoding import img_to_encoding, inference_function

        cast = sample_cast()
        photo = cast[sorted(cast)[0]][0]
        img_to_encoding(photo, self.db.model)
        run, side = inference_function(self.db.model), int(self.db.model.input_shape[1])
        for n in range(2, min(self.max_batch, 4) + 1):
            run(np.zeros((n, side, side, 3), np.float32))

    def _settings(self, fn, metric: str | None, threshold: float | None):
        """``fn(db, ...)`` under a request's ``metric`` and ``threshold`` (``None``: the service's own)."""
        if metric is None and threshold is None:
            return fn

        def job(db, *args):
            db.metric = metric or self.metric
            db.threshold = threshold if metric is not None else (threshold or self.threshold)
            try:
                return fn(db, *args)
            finally:
                db.metric, db.threshold = self.metric, self.threshold

        return job

    def _wait(self, job) -> object:
        box, done = job[-2], job[-1]
        self._jobs.put(job)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def call(self, fn, metric: str | None = None, threshold: float | None = None):
        """``fn(db)`` in the worker thread; returns its value or raises its exception.

        ``metric`` and ``threshold`` (a request's, as the command line passes them) hold for this
        call only; ``None``: the service's own (``facedoor serve --metric/--threshold``)."""
        return self._wait(("call", self._settings(fn, metric, threshold), {}, threading.Event()))

    def encode_then(self, data: bytes, then, metric: str | None = None, threshold: float | None = None):
        """``then(db, embedding)`` for the face of the photo ``data`` (``img_to_encoding``'s), in the worker thread.

        The photo is decoded and resized for detection here, in the request's thread (while the
        worker runs the networks), then encoded as ``img_to_encoding`` does; requests waiting at
        the same time are detected and encoded together (at most ``max_batch``): MTCNN once per
        photo size, the encoder once, so 4 clients at once cost about one batch of 4 rather than
        4 of each. Raises what decoding, encoding or ``then`` raises."""
        from fr_utils.detect import MAX_SIDE, prepare
        from fr_utils.images import as_rgb_array

        with self._count:
            self._inflight += 1
            self._seen = max(self._seen, self._inflight)
        try:
            image = prepare(as_rgb_array(data), self.detect_side or MAX_SIDE)  # resized here, for MTCNN
            return self._wait(("encode", image, self._settings(then, metric, threshold), {}, threading.Event()))
        finally:
            with self._count:
                self._inflight -= 1

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


# --------------------------------------------------------------------------- the answers


def _name_photo(err: BaseException, data: bytes, name: str | None) -> BaseException:
    """Messages about an upload name it as the client did (``X-Photo-Name``), else ``<N bytes>``."""
    if not isinstance(err, FaceImageError):
        return err
    message, label = str(err), name or describe(data)
    for prefix in (describe(data), "the image"):  # how fr_utils names bytes, and how the encoder does
        if message.startswith(prefix + ":"):
            return type(err)(label + message[len(prefix):])
    return err


def _warnings_of(caught) -> list[str]:
    return [str(w.message) for w in caught if isinstance(w.message, (SimilarFaceWarning, SimilarNameWarning))]


def answer_people(db) -> dict:
    info = db.info()
    return {"command": "list", "database": db.name, "model": info.get("model_name"),
            "created": info.get("created"), "people": db.people()}


class _NamedUpload(os.PathLike):
    """An uploaded photo saved to a private temporary file, named in messages and in the database
    as the client named it (``X-Photo-Name``): an enrolment through the service records the same
    source, and warns with the same words, as ``facedoor enroll`` in-process."""

    def __init__(self, data: bytes, label: str):
        fd, self._path = tempfile.mkstemp(prefix="facedoor-upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self._label = label

    def __fspath__(self) -> str:
        return self._path

    def __str__(self) -> str:
        return self._label

    def remove(self) -> None:
        try:
            os.unlink(self._path)
        except OSError:
            pass


def answer_enroll(db, name: str, data: bytes, strict: bool, photo_name: str | None = None) -> dict:
    photo = _NamedUpload(data, photo_name) if photo_name else data
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            added = db.enroll(name, photo, strict=strict)
    finally:
        if photo is not data:
            photo.remove()
    return {"command": "enroll", "name": name, "added": added, "embeddings": len(db.embeddings(name)),
            "warnings": _warnings_of(caught)}


def answer_verify(db, name: str, data: bytes) -> dict:
    distance, match = db.verify(data, name)
    return verify_answer(db, name, distance, match)


def verify_answer(db, name: str, distance: float, match: bool) -> dict:
    return {"command": "verify", "name": name, "distance": distance, "threshold": db.threshold,
            "metric": db.metric, "match": match, "decision": "OPEN" if match else "CLOSED"}


def answer_identify(db, data: bytes, every_face: bool) -> dict:
    out = {"command": "identify", "threshold": db.threshold, "metric": db.metric}
    if every_face:
        faces = db.identify_all(data)
        if not faces:
            raise NoFaceError(f"{describe(data)}: no face found")
        out["faces"] = [{"box": [int(v) for v in f["box"]], "confidence": float(f["confidence"]), "name": f["name"],
                         "distance": float(f["distance"]), "nearest": f["nearest"]} for f in faces]
        return out
    if len(db) == 0:
        raise EmptyDatabaseError(f"{db.name}: no one is enrolled yet (enrol someone first: POST /enroll?name=NAME)")
    return identify_answer(db, db.encode(data))


def verify_embedding(db, name: str, embedding) -> dict:
    """:func:`answer_verify` for a face already encoded (``FaceDatabase.verify``'s decision)."""
    db._person_id(name)
    distance = db.distance(embedding, name)
    return verify_answer(db, name, distance, bool(is_match(distance, db.threshold)))


def identify_answer(db, embedding) -> dict:
    """:func:`answer_identify` (the door's face) for a face already encoded."""
    if len(db) == 0:
        raise EmptyDatabaseError(f"{db.name}: no one is enrolled yet (enrol someone first: POST /enroll?name=NAME)")
    nearest, distance = db.nearest(embedding)[0]
    return {"command": "identify", "threshold": db.threshold, "metric": db.metric,
            "name": nearest if is_match(distance, db.threshold) else None, "distance": distance, "nearest": nearest}


# --------------------------------------------------------------------------- HTTP


class DoorHandler(BaseHTTPRequestHandler):
    """One request; ``self.server`` carries ``door`` (a :class:`Door`) and ``max_upload`` (bytes)."""

    protocol_version = "HTTP/1.1"  # keep-alive: a client may send many requests on one connection
    server_version = "facedoor"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet unless asked
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, err: BaseException) -> None:
        status, code = error_status(err)
        message = _message(err)
        if status == 500 and not isinstance(err, (RequestRefused, FaceDatabaseError, WeightsError, OSError)):
            message = f"internal error: {type(err).__name__}: {message}"
        self._send(status, {"error": message, "status": status, "exit_code": code})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise RequestRefused(411, "send the photo as the request body, with a Content-Length header")
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestRefused(400, f"bad Content-Length: {length!r}") from None
        limit = self.server.max_upload
        if size > limit:
            self.close_connection = True  # the body is not read: this connection cannot carry another request
            raise RequestRefused(413, f"upload of {size:,} bytes is more than the {limit:,} accepted "
                                 f"(facedoor serve --max-upload)")
        data = self.rfile.read(size)
        self._body_read = True
        if len(data) < size:
            self.close_connection = True
            raise RequestRefused(400, f"the body ended after {len(data):,} of {size:,} bytes")
        if not data:
            raise RequestRefused(400, "no photo: the request body is empty")
        return data

    def _route(self, method: str) -> tuple[int, dict]:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        door: Door = self.server.door
        routes = {"/health": "GET", "/people": "GET", "/enroll": "POST", "/verify": "POST", "/identify": "POST"}
        if url.path not in routes:
            raise RequestRefused(404, f"no such endpoint: {url.path} (try {', '.join(sorted(routes))})")
        if routes[url.path] != method:
            raise RequestRefused(405, f"{url.path} takes {routes[url.path]}, not {method}")
        if method == "GET":
            if url.path == "/health":  # ?quick=1: without the count, so never queued behind the photos
                body = {"status": "ok", "database": str(door.db.name)}
                if query.get("quick") != "1":
                    body["people"] = door.call(len)
                    sizes = list(door.batches)
                    body["encoder_batches"] = {str(n): sizes.count(n) for n in sorted(set(sizes))}
                return 200, dict(body, database_path=os.path.realpath(door.db.name), pid=os.getpid(),
                                 max_upload=self.server.max_upload, precision=_precision())
            return 200, door.call(answer_people)
        metric = query.get("metric") or None
        threshold = query.get("threshold") or None
        if metric is not None:
            check_metric(metric)
        if threshold is not None:
            try:
                threshold = float(threshold)
            except ValueError:
                raise RequestRefused(400, f"threshold: not a number: {threshold!r}") from None
            check_threshold(threshold)
        data = self._body()
        photo_name = self.headers.get("X-Photo-Name")

        def run(fn, *args):
            try:
                return door.call(lambda db: fn(db, *args), metric, threshold)
            except FaceImageError as err:
                raise _name_photo(err, data, photo_name) from err

        def batched(then):
            try:
                return door.encode_then(data, then, metric, threshold)
            except FaceImageError as err:
                raise _name_photo(err, data, photo_name) from err

        if url.path == "/identify":
            if query.get("all", "0") not in ("", "0", "false"):
                return 200, run(answer_identify, data, True)
            return 200, batched(identify_answer)
        name = query.get("name")
        if not name:
            raise RequestRefused(400, f"{url.path} needs ?name=NAME (the person's name, URL-encoded)")
        if url.path == "/verify":
            return 200, batched(lambda db, embedding: verify_embedding(db, name, embedding))
        return 201, run(answer_enroll, name, data, query.get("strict", "0") not in ("", "0", "false"), photo_name)

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            status, body = self._route(method)
        except Exception as err:  # every error is an answer; the server goes on
            if not self._body_read and self.headers.get("Content-Length", "0").strip() not in ("", "0"):
                self.close_connection = True  # a body left unread would be taken for the next request
            self._fail(err)
            return
        self._send(status, body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


class DoorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, door: Door, max_upload: int, verbose: bool = False):
        super().__init__(address, DoorHandler)
        self.door, self.max_upload, self.verbose = door, int(max_upload), verbose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``facedoor serve``."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0: any free port, printed when ready)")
    parser.add_argument("--max-upload", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest photo accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g}); larger: 413")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    parser.add_argument("--detect-side", type=int, default=None, metavar="PX",
                        help="verify/identify: find the face on the photo resized to PX on its longest side "
                             "(default: as every other command, fr_utils.detect.MAX_SIDE = 320; smaller is "
                             "faster and misses smaller faces: docs/door.md)")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH, metavar="N",
                        help=f"encode at most N waiting requests' faces in one model call (default {MAX_BATCH})")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=None,
                        help="the encoder's arithmetic (default: $FR_ENCODER_PRECISION, else auto: bfloat16 on a CPU "
                             "with AVX-512 BF16 or AMX, else float32; LFW verdicts measured alike: docs/door.md)")
    parser.add_argument("--batch-wait", type=float, default=BATCH_WAIT * 1000, metavar="MS",
                        help=f"with several clients, wait up to MS milliseconds for as many requests as were in the "
                             f"service at once before the next batch (default {BATCH_WAIT * 1000:g}; 0: never "
                             f"wait; a lone client never waits)")


def _precision() -> str:
    from fr_utils.encoding import encoder_precision

    return encoder_precision()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(db_path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          metric: str = "euclidean", threshold: float | None = None, verbose: bool = False, prog: str = "facedoor",
          ready=None, detect_side: int | None = None, max_batch: int = MAX_BATCH,
          batch_wait_ms: float = BATCH_WAIT * 1000, precision: str | None = None) -> int:
    """Load the model, open the database, then answer requests until interrupted; returns an exit code.

    Prints ``<prog>: serving http://HOST:PORT/ ...`` on stderr once it answers (``ready(server)`` is
    called then too). ``precision``: the encoder's arithmetic for the whole process (None:
    ``$FR_ENCODER_PRECISION``, else ``"auto"``; see :func:`fr_utils.encoding.encoder_precision`).
    Raises what opening the database or loading the model raises."""
    if not 0 < max_upload_mb <= 256:
        raise ValueError(f"--max-upload must be more than 0 and at most 256 (MB), got {max_upload_mb:g}")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {port}")
    if detect_side is not None and not 48 <= detect_side <= 4096:
        raise ValueError(f"--detect-side must be between 48 and 4096 (pixels), got {detect_side}")
    if not 1 <= max_batch <= 256:
        raise ValueError(f"--max-batch must be between 1 and 256, got {max_batch}")
    if not 0 <= batch_wait_ms <= 1000:
        raise ValueError(f"--batch-wait must be between 0 and 1000 (milliseconds), got {batch_wait_ms:g}")
    from fr_utils.encoding import PRECISION_CHOICES, PRECISION_ENV, encoder_precision

    if precision is None:
        precision = os.environ.get(PRECISION_ENV) or "auto"
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    asked, precision = precision, encoder_precision(precision)
    os.environ[PRECISION_ENV] = precision  # every encoder call of this process: requests, enrolments, warm-up
    try:  # the port first: a busy one fails at once, not after the model has loaded
        server = DoorServer((host, port), None, int(max_upload_mb * 1_000_000), verbose)
    except OSError as err:
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        door = server.door = Door(db_path, metric=metric, threshold=threshold, detect_side=detect_side,
                                  max_batch=max_batch, batch_wait=batch_wait_ms / 1000)
    except BaseException:
        server.server_close()
        raise
    bound_host, bound_port = server.server_address[:2]
    record = write_address(db_path, _client_url(bound_host, bound_port), server.max_upload, prog)
    how = f"{precision}{' (auto)' if asked == 'auto' else ''}"
    print(f"{prog}: serving http://{bound_host}:{bound_port}/ (database {Path(db_path)}, {door.call(len)} people, "
          f"encoder {how}, model ready in {door.load_seconds:.1f} s; Ctrl-C stops)", file=sys.stderr, flush=True)
    if ready is not None:
        ready(server)
    if threading.current_thread() is threading.main_thread():  # SIGTERM (kill, systemd): stop as Ctrl-C does
        import signal

        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if record is not None:
            remove_address(record)
        server.server_close()
        door.close()
    return 0


# --------------------------------------------------------------------------- the command line's way in
#
# A running service writes its address beside the database (``faces.db`` -> ``faces.db.serve.json``),
# and ``facedoor verify/identify/enroll`` send their photos there instead of loading TensorFlow: the
# standard library only (http.client, json), a few milliseconds once the photo is checked.

ADDRESS_SUFFIX = ".serve.json"
#: Seconds to connect to a service found beside the database (it is on this machine): a dead one
#: refuses at once; a full queue still accepts the connection.
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for an answer: requests are answered one at a time, so a busy service may keep
#: a client waiting; past this the command answers in its own process.
ANSWER_TIMEOUT = 300.0


def address_file(db_path) -> Path:
    """Where a service for ``db_path`` records its address: the database's name + ``.serve.json``."""
    return Path(f"{os.fspath(db_path)}{ADDRESS_SUFFIX}")


def _client_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def write_address(db_path, url: str, max_upload: int, prog: str = "facedoor") -> dict | None:
    """Record this service's address beside the database (readable by this user only, written
    whole by a rename); returns what was written, or None when the folder is not writable (then
    commands answer in their own process, and a note says so here)."""
    path = address_file(db_path)
    record = {"url": url, "pid": os.getpid(), "database": os.path.realpath(db_path), "max_upload": int(max_upload),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "file": str(path)}
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)  # mode 0600
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError as err:
        print(f"{prog}: warning: cannot write {path} ({err.strerror or err}): 'facedoor' commands will not "
              "find this service and will load the model themselves", file=sys.stderr, flush=True)
        return None
    return record


def remove_address(record: dict) -> None:
    """Remove the address file if it is still this process's (a newer service may have replaced it)."""
    path = Path(record["file"])
    try:
        if json.loads(path.read_text()).get("pid") == record["pid"]:
            path.unlink()
    except (OSError, ValueError):
        pass


class _ServiceDown(Exception):
    """The service cannot be used for this request (not running, stopped answering, photo over its
    limit): the command answers in its own process."""


class DoorClient:
    """A running ``facedoor serve`` for one database, over one keep-alive HTTP connection.

    :meth:`post` returns the answer's JSON, raises :class:`~fr_utils.errors.RequestRefused`
    (with the message and exit code the command line would give) for an error answer, and
    ``_ServiceDown`` when the service cannot answer."""

    def __init__(self, url: str, max_upload: int, address: Path | None = None):
        parts = urlsplit(url)
        self.url, self.max_upload, self.address = url, int(max_upload), address
        self._host, self._port = parts.hostname, parts.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = ANSWER_TIMEOUT) -> tuple[int, dict]:
        for attempt in (1, 2):  # a keep-alive connection the service closed meanwhile: once more, anew
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
                try:
                    self._conn.connect()
                except OSError as err:
                    self.close()
                    raise _ServiceDown(f"the service at {self.url} does not answer ({err.strerror or err})") from None
                self._conn.sock.settimeout(timeout)
                fresh = True
            else:
                fresh = False
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                response = self._conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as err:
                self.close()
                if fresh or attempt == 2:
                    why = "took too long to answer" if isinstance(err, TimeoutError) else \
                        f"stopped answering ({type(err).__name__}{': ' + str(err) if str(err) else ''})"
                    raise _ServiceDown(f"the service at {self.url} {why}") from None
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            try:
                return response.status, json.loads(data)
            except ValueError:
                raise _ServiceDown(f"the service at {self.url} answered {response.status} without JSON") from None
        raise AssertionError("unreachable")

    def health(self) -> dict:
        status, body = self._request("GET", "/health?quick=1", timeout=CONNECT_TIMEOUT)
        if status != 200:
            raise _ServiceDown(f"the service at {self.url} answered {status} to /health")
        return body

    def post(self, endpoint: str, photo, query: dict | None = None) -> dict:
        """POST the photo file ``photo`` (its bytes; named as given) to ``endpoint`` with ``query``."""
        from fr_utils.images import read_image_bytes

        name, data = read_image_bytes(photo)
        try:
            name.encode("latin-1")  # HTTP headers are Latin-1
        except UnicodeEncodeError:
            raise _ServiceDown(f"{name}: a file name HTTP headers cannot carry") from None
        if len(data) > self.max_upload:
            raise _ServiceDown(f"{name} ({len(data):,} bytes) is over the service's --max-upload "
                               f"({self.max_upload:,} bytes)")
        params = {k: v for k, v in (query or {}).items() if v is not None and v is not False}
        path = endpoint + ("?" + urlencode({k: ("1" if v is True else v) for k, v in params.items()}) if params else "")
        status, body = self._request("POST", path, data, {"X-Photo-Name": name,
                                                           "Content-Type": "application/octet-stream"})
        if status >= 400:
            message = body.get("error", f"HTTP {status}")
            if status >= 500 and message.startswith("internal error"):
                raise _ServiceDown(f"the service at {self.url} failed: {message}")
            raise RequestRefused(status, message, int(body.get("exit_code", 2)))
        return body

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def find_service(db_path) -> tuple[DoorClient | None, str | None]:
    """(a client of the running ``facedoor serve`` for the database file ``db_path``, None) or
    (None, why not: None when no service recorded an address, else a note for stderr).

    A recorded service is used only when it answers ``/health`` within :data:`CONNECT_TIMEOUT`
    and serves the same file (``os.path.samefile``); a stale address file (its service dead) is
    removed, at the cost of one refused connection (milliseconds)."""
    path = address_file(db_path)
    try:
        text = path.read_text()
    except OSError:
        return None, None
    try:
        record = json.loads(text)
        url, database, max_upload = record["url"], record["database"], int(record["max_upload"])
    except (ValueError, KeyError, TypeError):
        return None, f"ignored {path}: not a service address (remove it)"
    try:
        same = os.path.samefile(database, db_path)
    except OSError:
        same = False
    if not same:
        return None, f"ignored {path}: it is the address of a service for {database}, another file"
    client = DoorClient(url, max_upload, path)
    try:
        health = client.health()
        if not os.path.samefile(health.get("database_path", ""), db_path):
            raise _ServiceDown(f"the service at {url} serves {health.get('database_path')}, not {db_path}")
    except (_ServiceDown, OSError) as err:
        client.close()
        stale = isinstance(err, _ServiceDown) and "does not answer" in str(err)
        if stale:
            try:
                if path.read_text() == text:  # not replaced by a service started meanwhile
                    path.unlink()
            except OSError:
                pass
        return None, f"{err}{' (a stale address: removed ' + str(path) + ')' if stale else ''}"
    return client, None
