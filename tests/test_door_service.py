"""facedoor serve: the real HTTP service in a subprocess, on a free port, with the sample cast's photos."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fr_utils.data import cast_dir, other_photo
from fr_utils.door import main as facedoor
from fr_utils.matching import default_threshold
from fr_utils.serve import address_file, write_address

PEOPLE = cast_dir() / "people"
OBAMA = [PEOPLE / "Barack_Obama" / f"Barack_Obama_000{i}.jpg" for i in (1, 2, 3)]
HOPPER = PEOPLE / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
COLLINS = PEOPLE / "Eileen_Collins" / "Eileen_Collins_0001.jpg"
NO_FACE = other_photo("no_face_coffee.jpg")


def start_service(db: Path, *options: str) -> tuple[subprocess.Popen, str, int, str]:
    """``facedoor serve`` on a free port: (process, host, port, its start line)."""
    proc = subprocess.Popen([sys.executable, "-m", "fr_utils.door", "serve", "--db", str(db), "--port", "0", *options],
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"serving http://([\d.]+):(\d+)/", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
            return proc, match.group(1), int(match.group(2)), line
    proc.kill()
    pytest.fail("facedoor serve did not start:\n" + "".join(lines) + proc.stderr.read())


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(host, port, database path) of a running ``facedoor serve`` (1 MB uploads at most), computing
    in float32 as the command line does in-process, so that their answers can be compared exactly."""
    db = tmp_path_factory.mktemp("service") / "door.db"
    proc, host, port, _ = start_service(db, "--max-upload", "1", "--precision", "float32")
    yield host, port, db
    proc.terminate()
    proc.wait(timeout=30)


def request(service, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port, _ = service
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def post(service, path: str, photo: Path | bytes, name: str | None = None):
    data = photo if isinstance(photo, bytes) else Path(photo).read_bytes()
    return request(service, "POST", path, data, {"X-Photo-Name": name} if name else None)


def cli(*argv) -> tuple[int, str, str]:
    """``facedoor`` run in-process: its exit code, stdout and message (the text after 'facedoor: error: ')."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = facedoor([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue().strip().split("facedoor: error: ", 1)[-1]


def test_the_service_answers_refuses_bad_requests_and_keeps_serving(service, tmp_path):
    _, _, db = service
    status, body = request(service, "GET", "/health")
    assert status == 200 and (body["status"], body["database"], body["people"]) == ("ok", str(db), 0)
    status, body = post(service, "/identify", OBAMA[1])
    assert status == 404 and "no one is enrolled" in body["error"]
    for name, photo in [("Barack_Obama", OBAMA[0]), ("Grace_Hopper", HOPPER)]:
        status, body = post(service, f"/enroll?name={name}", photo)
        assert (status, body["name"], body["added"], body["embeddings"]) == (201, name, 1, 1)

    def good():  # the door still works
        status, body = post(service, "/verify?name=Barack_Obama", OBAMA[1])
        assert (status, body["decision"], body["match"]) == (200, "OPEN", True)
        assert body["distance"] < body["threshold"] == pytest.approx(default_threshold())  # the default encoder's
        return body

    first = good()
    status, body = post(service, "/verify?name=Grace_Hopper", COLLINS)
    assert (status, body["decision"], body["match"]) == (200, "CLOSED", False)
    status, body = post(service, "/identify", OBAMA[2])
    assert (status, body["name"], body["nearest"]) == (200, "Barack_Obama", "Barack_Obama")
    status, body = post(service, "/identify", COLLINS)
    assert (status, body["name"]) == (200, None) and body["distance"] >= body["threshold"]
    status, body = post(service, "/identify?all=1", OBAMA[2])
    assert status == 200 and [f["name"] for f in body["faces"]] == ["Barack_Obama"]

    # the same file, the same decision and distance as the command line
    code, out, _ = cli("--db", db, "--json", "verify", "Barack_Obama", OBAMA[1])
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(first["distance"], abs=1e-6)

    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    truncated = OBAMA[0].read_bytes()[:500]
    bad = [  # (method, path, body, X-Photo-Name, status, message)
        ("POST", "/verify?name=Nobody", OBAMA[1].read_bytes(), None, 404, "'Nobody' is not enrolled in"),
        ("POST", "/verify?name=Barack_Obama", text.read_bytes(), str(text), 400,
         f"{text}: not an image file (no known image format)"),
        ("POST", "/identify", truncated, None, 400, "<500 bytes>: truncated or corrupt image"),
        ("POST", "/verify?name=Barack_Obama", NO_FACE.read_bytes(), "coffee.jpg", 422, "coffee.jpg: no face found"),
        ("POST", "/identify", NO_FACE.read_bytes(), None, 422, "bytes>: no face found"),
        ("POST", "/enroll?name=Grace_Hopper&strict=1", OBAMA[2].read_bytes(), None, 409, "refused (strict)"),
        ("POST", "/enroll?name=%20Ann", HOPPER.read_bytes(), None, 400, "must not start or end with spaces"),
        ("POST", "/verify", OBAMA[1].read_bytes(), None, 400, "needs ?name=NAME"),
        ("POST", "/verify?name=Barack_Obama", b"", None, 400, "the request body is empty"),
        ("GET", "/verify?name=Barack_Obama", None, None, 405, "/verify takes POST"),
        ("GET", "/nowhere", None, None, 404, "no such endpoint: /nowhere"),
    ]
    for method, path, data, name, code, message in bad:
        status, body = request(service, method, path, data, {"X-Photo-Name": name} if name else None)
        assert (status, body["status"]) == (code, code) and message in body["error"], (path, status, body)
        good()

    # one keep-alive connection: a refused request's unread body is not taken for the next request
    host, port, _ = service
    conn = http.client.HTTPConnection(host, port, timeout=120)
    for path in ("/nowhere", "/verify?name=Barack_Obama"):
        conn.request("POST", path, body=OBAMA[1].read_bytes())
        response = conn.getresponse()
        answers = response.status, json.loads(response.read())
    conn.close()
    assert answers[0] == 200 and answers[1]["decision"] == "OPEN", answers

    # the command line's messages, word for word
    _, _, message = cli("--db", db, "verify", "Nobody", OBAMA[1])
    assert post(service, "/verify?name=Nobody", OBAMA[1])[1]["error"] == message
    _, _, message = cli("--db", db, "verify", "Barack_Obama", text)
    assert post(service, "/verify?name=Barack_Obama", text, name=str(text))[1]["error"] == message

    # a huge upload is refused from its Content-Length, before its body is read
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.putrequest("POST", "/identify")
    conn.putheader("Content-Length", str(50_000_000))
    conn.endheaders()
    response = conn.getresponse()
    status, body = response.status, json.loads(response.read())
    conn.close()
    assert status == 413 and "50,000,000 bytes is more than the 1,000,000 accepted" in body["error"]
    good()

    # concurrent clients: every answer right
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.extend(good()["decision"] for _ in range(2))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert answers == ["OPEN"] * 8

    # concurrent requests found and encoded together (one batch) each get their own answer: a bad
    # photo, a photo without a face or of another size spoils nothing for the others
    from PIL import Image

    big = io.BytesIO()
    with Image.open(OBAMA[1]) as img:
        img.convert("RGB").resize((500, 500)).save(big, "JPEG", quality=90)
    mixed = [  # (path, body, expected status, what the answer must say)
        ("/verify?name=Barack_Obama", OBAMA[1].read_bytes(), 200, "OPEN"),
        ("/verify?name=Barack_Obama", big.getvalue(), 200, "OPEN"),
        ("/verify?name=Grace_Hopper", COLLINS.read_bytes(), 200, "CLOSED"),
        ("/identify", OBAMA[2].read_bytes(), 200, "Barack_Obama"),
        ("/identify", NO_FACE.read_bytes(), 422, "no face found"),
        ("/verify?name=Barack_Obama", truncated, 400, "truncated or corrupt image"),
        ("/verify?name=Nobody", HOPPER.read_bytes(), 404, "'Nobody' is not enrolled"),
    ] * 2
    got: dict = {}
    start = threading.Barrier(len(mixed))

    def ask(i, path, data):
        start.wait()
        got[i] = request(service, "POST", path, data)

    threads = [threading.Thread(target=ask, args=(i, path, data)) for i, (path, data, _, _) in enumerate(mixed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i, (path, _, code, says) in enumerate(mixed):
        status, body = got[i]
        assert status == code and says in (body.get("decision"), body.get("name"), body.get("error", "")) \
            or says in body.get("error", ""), (path, status, body)

    status, body = request(service, "GET", "/people")
    assert status == 200 and [(p["name"], p["embeddings"]) for p in body["people"]] == [
        ("Barack_Obama", 1), ("Grace_Hopper", 1)]  # the refused photos stored nothing


# --------------------------------------------------------------------------- the command line through the service


def _fake_service(db: Path, answer_posts):
    """A stand-in service for ``db`` on a free port: /health answers as facedoor serve's does, every
    POST is handled by ``answer_posts(handler)``. Returns (server, its address record)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            data = json.dumps({"status": "ok", "database": str(db), "database_path": os.path.realpath(db),
                               "pid": os.getpid(), "max_upload": 10_000_000}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802
            answer_posts(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, write_address(db, f"http://127.0.0.1:{server.server_address[1]}/", 10_000_000)


def test_the_command_line_answers_through_the_running_service_as_in_process(service, tmp_path):
    """verify/identify/enroll find the service beside the database and answer through it: the same
    output, exit codes and messages as --no-service (in-process), and no TensorFlow in the process."""
    _, _, db = service
    assert address_file(db).is_file() and json.loads(address_file(db).read_text())["pid"] > 0
    cli("--db", db, "enroll", "Barack_Obama", OBAMA[0])  # the other test's people, whichever ran first
    cli("--db", db, "enroll", "Grace_Hopper", HOPPER)
    cases = [  # the same command through the service and in this process
        ("verify", "Barack_Obama", OBAMA[1]),
        ("verify", "Grace_Hopper", COLLINS),
        ("--metric", "cosine", "--threshold", "0.3", "verify", "Barack_Obama", OBAMA[2]),
        ("identify", OBAMA[2], COLLINS, NO_FACE),
        ("identify", "--all", other_photo("two_faces_hopper_collins.jpg")),
        ("verify", "Barack_Obama", NO_FACE),
        ("verify", "Nobody", OBAMA[1]),
        ("enroll", "Grace_Hopper", NO_FACE),
        ("enroll", "--strict", "Eileen_Collins", HOPPER),
    ]
    for case in cases:
        remote, local = cli("--db", db, *case), cli("--db", db, "--no-service", *case)
        assert remote == local, (case, remote, local)
    remote = json.loads(cli("--db", db, "--json", "identify", OBAMA[1], COLLINS)[1])
    local = json.loads(cli("--db", db, "--json", "--no-service", "identify", OBAMA[1], COLLINS)[1])
    assert [r["name"] for r in remote["results"]] == [r["name"] for r in local["results"]] == ["Barack_Obama", None]
    for r, l in zip(remote["results"], local["results"]):
        assert r["distance"] == pytest.approx(l["distance"], abs=1e-5)

    # enrolment sends the photo's bytes: the service stores the photo under the command's name for it
    code, out, message = cli("--db", db, "enroll", "Eileen_Collins", COLLINS, NO_FACE)
    assert (code, out) == (0, "enrolled Eileen_Collins: 1 new photo(s), 1 in all\n"), message
    code, out, _ = cli("--db", db, "enroll", "Eileen_Collins", COLLINS)
    assert (code, out) == (0, "enrolled Eileen_Collins: 0 new photo(s), 1 already enrolled, 1 in all\n")

    # a fresh process: the answer in a fraction of the model's load time, TensorFlow never imported
    script = ("import sys, time; t = time.perf_counter(); from fr_utils.door import main; "
              f"code = main(['--db', {str(db)!r}, 'verify', 'Barack_Obama', {str(OBAMA[1])!r}]); "
              "print(code, 'tensorflow' in sys.modules, round(time.perf_counter() - t, 2))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    code, tf_loaded, seconds = result.stdout.splitlines()[-1].split()
    assert result.stdout.startswith("OPEN: ") and (code, tf_loaded) == ("0", "False"), result.stdout + result.stderr
    assert float(seconds) < 10, seconds  # ~0.5 s idle; TensorFlow and the model alone take 15 s or more


def test_a_stale_or_foreign_address_is_noted_and_the_command_answers_in_process(facenet, tmp_path):
    db = tmp_path / "door.db"
    cli("--db", db, "--no-service", "enroll", "Barack_Obama", OBAMA[0])
    expected = cli("--db", db, "--no-service", "verify", "Barack_Obama", OBAMA[1])
    with socket.socket() as s:  # a port nobody listens on: the service that wrote it is dead
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    write_address(db, f"http://127.0.0.1:{dead}/", 1_000_000)
    started = time.perf_counter()
    code, out, err = cli_err("--db", db, "verify", "Barack_Obama", OBAMA[1])
    assert (code, out) == expected[:2] and time.perf_counter() - started < 60
    assert "does not answer" in err and "stale address: removed" in err and not address_file(db).exists()

    other = tmp_path / "other.db"
    shutil.copy(db, other)
    address_file(other).write_text(address_file_text(db, dead))  # a copy of the database, its address with it
    code, out, err = cli_err("--db", other, "verify", "Barack_Obama", OBAMA[1])
    assert (code, out) == expected[:2] and "a service for" in err and "another file" in err
    address_file(other).write_text("{not json")
    code, out, err = cli_err("--db", other, "verify", "Barack_Obama", OBAMA[1])
    assert (code, out) == expected[:2] and "not a service address" in err


def test_a_service_that_stops_answering_mid_way_leaves_the_command_to_answer_in_process(facenet, tmp_path):
    db = tmp_path / "door.db"
    cli("--db", db, "--no-service", "enroll", "Barack_Obama", OBAMA[0])
    expected = cli("--db", db, "--no-service", "identify", OBAMA[1], COLLINS)
    calls = []

    def hang_up(handler):  # reads the photo, then closes the connection without an answer
        calls.append(handler.path)
        handler.rfile.read(int(handler.headers["Content-Length"]))
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    server, _ = _fake_service(db, hang_up)
    try:
        code, out, err = cli_err("--db", db, "identify", OBAMA[1], COLLINS)
    finally:
        server.shutdown()
        server.server_close()
    assert (code, out) == expected[:2] and calls and calls[0].startswith("/identify?")
    assert "stopped answering" in err and "going on in this process" in err
    assert err.count("note:") == 1  # once: the other photo went straight to this process

    def refuse(handler):  # a 4xx answer is the command's answer: its message, its exit code
        handler.rfile.read(int(handler.headers["Content-Length"]))
        data = json.dumps({"error": "'Barack_Obama' is not enrolled in the door", "status": 404,
                           "exit_code": 2}).encode()
        handler.send_response(404)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    server, _ = _fake_service(db, refuse)
    try:
        code, out, err = cli_err("--db", db, "verify", "Barack_Obama", OBAMA[1])
    finally:
        server.shutdown()
        server.server_close()
    assert (code, out) == (2, "") and err.strip() == "facedoor: error: 'Barack_Obama' is not enrolled in the door"


def address_file_text(db: Path, port: int) -> str:
    return json.dumps({"url": f"http://127.0.0.1:{port}/", "pid": 1, "database": os.path.realpath(db),
                       "max_upload": 1_000_000})


def cli_err(*argv) -> tuple[int, str, str]:
    """``facedoor`` in-process: exit code, stdout and the whole of stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = facedoor([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_bad_service_options_fail_at_once_naming_the_option(tmp_path):
    """facedoor serve checks its options before loading anything: exit 2, the option and its range."""
    db = tmp_path / "door.db"
    for option, value, message in [("--batch-wait", "-1", "--batch-wait must be between 0 and 1000 (milliseconds), got -1"),
                                   ("--batch-wait", "5000", "--batch-wait must be between 0 and 1000"),
                                   ("--max-batch", "0", "--max-batch must be between 1 and 256, got 0"),
                                   ("--detect-side", "20", "--detect-side must be between 48 and 4096")]:
        code, _, error = cli("--db", db, "serve", option, value)
        assert code == 2 and message in error, (option, value, error)
    assert not db.exists()


def test_the_service_by_default_computes_as_the_cpu_does_best_and_answers_alike(tmp_path):
    """Without --precision (and $FR_ENCODER_PRECISION) the service picks bfloat16 on a CPU with
    AVX-512 BF16 or AMX, else float32, says which, and its answers are the in-process command's:
    the same decisions, distances within 1e-2 (bfloat16's rounding, measured on LFW in docs/door.md)."""
    from fr_utils.encoding import encoder_precision

    db = tmp_path / "door.db"
    env_before = os.environ.pop("FR_ENCODER_PRECISION", None)
    try:
        proc, host, port, line = start_service(db)
    finally:
        if env_before is not None:
            os.environ["FR_ENCODER_PRECISION"] = env_before
    expected = encoder_precision("auto")
    try:
        assert f"encoder {expected} (auto)" in line, line
        here = host, port, db
        assert request(here, "GET", "/health")[1]["precision"] == expected
        for name, photo in [("Barack_Obama", OBAMA[0]), ("Grace_Hopper", HOPPER)]:
            assert post(here, f"/enroll?name={name}", photo)[0] == 201
        for name, photo, decision in [("Barack_Obama", OBAMA[1], "OPEN"), ("Barack_Obama", OBAMA[2], "OPEN"),
                                      ("Grace_Hopper", COLLINS, "CLOSED"), ("Barack_Obama", HOPPER, "CLOSED")]:
            status, body = post(here, f"/verify?name={name}", photo)
            code, out, _ = cli("--db", db, "--json", "--no-service", "verify", name, photo)  # float32, in-process
            local = json.loads(out)
            assert (status, body["decision"]) == (200, decision) and local["decision"] == decision
            assert body["distance"] == pytest.approx(local["distance"], abs=1e-2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
