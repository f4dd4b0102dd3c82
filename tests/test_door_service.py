"""facedoor serve: the real HTTP service in a subprocess, on a free port, with the sample cast's photos."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fr_utils.data import cast_dir, other_photo
from fr_utils.door import main as facedoor

PEOPLE = cast_dir() / "people"
OBAMA = [PEOPLE / "Barack_Obama" / f"Barack_Obama_000{i}.jpg" for i in (1, 2, 3)]
HOPPER = PEOPLE / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
COLLINS = PEOPLE / "Eileen_Collins" / "Eileen_Collins_0001.jpg"
NO_FACE = other_photo("no_face_coffee.jpg")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(host, port, database path) of a running ``facedoor serve`` (1 MB uploads at most)."""
    db = tmp_path_factory.mktemp("service") / "door.db"
    proc = subprocess.Popen([sys.executable, "-m", "fr_utils.door", "serve", "--db", str(db), "--port", "0",
                             "--max-upload", "1"], stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    address = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"serving http://([\d.]+):(\d+)/", line)
        if match:
            address = match.group(1), int(match.group(2))
            break
    if address is None:
        proc.kill()
        pytest.fail("facedoor serve did not start:\n" + "".join(lines) + proc.stderr.read())
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
    yield address[0], address[1], db
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
    assert request(service, "GET", "/health") == (200, {"status": "ok", "database": str(db), "people": 0})
    status, body = post(service, "/identify", OBAMA[1])
    assert status == 404 and "no one is enrolled" in body["error"]
    for name, photo in [("Barack_Obama", OBAMA[0]), ("Grace_Hopper", HOPPER)]:
        status, body = post(service, f"/enroll?name={name}", photo)
        assert (status, body["name"], body["added"], body["embeddings"]) == (201, name, 1, 1)

    def good():  # the door still works
        status, body = post(service, "/verify?name=Barack_Obama", OBAMA[1])
        assert (status, body["decision"], body["match"]) == (200, "OPEN", True)
        assert body["distance"] < body["threshold"] == pytest.approx(1.139)
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

    status, body = request(service, "GET", "/people")
    assert status == 200 and [(p["name"], p["embeddings"]) for p in body["people"]] == [
        ("Barack_Obama", 1), ("Grace_Hopper", 1)]  # the refused photos stored nothing
