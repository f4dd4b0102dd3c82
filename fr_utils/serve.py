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
database and the model are used by one worker thread, one request at a time (TensorFlow
already uses every core for one photo, and an SQLite connection belongs to one thread).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import warnings
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
from fr_utils.matching import is_match

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


class Door:
    """The database and the model, used by one worker thread; :meth:`call` runs a function there."""

    def __init__(self, db_path, *, metric: str = "euclidean", threshold: float | None = None, model=None):
        self._jobs: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.db = None
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
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, box, done = job
            try:
                box["value"] = fn(self.db)
            except BaseException as err:  # handed back to the request's thread
                box["error"] = err
            done.set()
        self.db.close()

    def _warm_up(self) -> None:
        """Encode one shipped photo, so that the first request does not pay for graph building."""
        from fr_utils.data import sample_cast
        from fr_utils.encoding import img_to_encoding

        cast = sample_cast()
        photo = cast[sorted(cast)[0]][0]
        img_to_encoding(photo, self.db.model)

    def call(self, fn):
        """``fn(db)`` in the worker thread; returns its value or raises its exception."""
        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

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


def answer_enroll(db, name: str, data: bytes, strict: bool) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        added = db.enroll(name, data, strict=strict)
    return {"command": "enroll", "name": name, "added": added, "embeddings": len(db.embeddings(name)),
            "warnings": _warnings_of(caught)}


def answer_verify(db, name: str, data: bytes) -> dict:
    distance, match = db.verify(data, name)
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
    nearest, distance = db.nearest(db.encode(data))[0]
    out.update(name=nearest if is_match(distance, db.threshold) else None, distance=distance, nearest=nearest)
    return out


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
            if url.path == "/health":
                people = door.call(len)
                return 200, {"status": "ok", "database": str(door.db.name), "people": people}
            return 200, door.call(answer_people)
        data = self._body()
        photo_name = self.headers.get("X-Photo-Name")

        def run(fn, *args):
            try:
                return door.call(lambda db: fn(db, *args))
            except FaceImageError as err:
                raise _name_photo(err, data, photo_name) from err

        if url.path == "/identify":
            return 200, run(answer_identify, data, query.get("all", "0") not in ("", "0", "false"))
        name = query.get("name")
        if not name:
            raise RequestRefused(400, f"{url.path} needs ?name=NAME (the person's name, URL-encoded)")
        if url.path == "/verify":
            return 200, run(answer_verify, name, data)
        return 201, run(answer_enroll, name, data, query.get("strict", "0") not in ("", "0", "false"))

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


def serve(db_path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          metric: str = "euclidean", threshold: float | None = None, verbose: bool = False, prog: str = "facedoor",
          ready=None) -> int:
    """Load the model, open the database, then answer requests until interrupted; returns an exit code.

    Prints ``<prog>: serving http://HOST:PORT/ ...`` on stderr once it answers (``ready(server)`` is
    called then too). Raises what opening the database or loading the model raises."""
    if not 0 < max_upload_mb <= 256:
        raise ValueError(f"--max-upload must be more than 0 and at most 256 (MB), got {max_upload_mb:g}")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {port}")
    try:  # the port first: a busy one fails at once, not after the model has loaded
        server = DoorServer((host, port), None, int(max_upload_mb * 1_000_000), verbose)
    except OSError as err:
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        door = server.door = Door(db_path, metric=metric, threshold=threshold)
    except BaseException:
        server.server_close()
        raise
    bound_host, bound_port = server.server_address[:2]
    print(f"{prog}: serving http://{bound_host}:{bound_port}/ (database {Path(db_path)}, {door.call(len)} people, "
          f"model ready in {door.load_seconds:.1f} s; Ctrl-C stops)", file=sys.stderr, flush=True)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        door.close()
    return 0
