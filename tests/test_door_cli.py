"""The facedoor command line: in-process through door.main, and end to end through the installed script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fr_utils.data import cast_dir, other_photo
from fr_utils.door import EXIT_DATABASE, EXIT_INPUT, EXIT_NO, EXIT_OK, main

PEOPLE = cast_dir() / "people"
NO_FACE = other_photo("no_face_coffee.jpg")
TWO_FACES = other_photo("two_faces_hopper_collins.jpg")
OBAMA = [PEOPLE / "Barack_Obama" / f"Barack_Obama_000{i}.jpg" for i in (1, 2, 3)]
BIDEN = PEOPLE / "Joseph_Biden" / "Joseph_Biden_0001.jpg"
HOPPER = PEOPLE / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
COLLINS = PEOPLE / "Eileen_Collins" / "Eileen_Collins_0001.jpg"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path, facenet, capsys) -> Path:
    """A database file with Obama (photo 1), Biden and Hopper, enrolled through the command line."""
    path = tmp_path / "faces.db"
    for name, photo in [("Barack_Obama", OBAMA[0]), ("Joseph_Biden", BIDEN.parent), ("Grace_Hopper", HOPPER)]:
        code, out, err = run(capsys, "--db", path, "enroll", name, photo)
        assert code == EXIT_OK, err
        assert out.startswith(f"enrolled {name}: 1 new photo(s)")
    return path


def test_verify_open_and_closed(db, capsys):
    code, out, _ = run(capsys, "--db", db, "verify", "Barack_Obama", OBAMA[1])
    assert code == EXIT_OK and out.startswith("OPEN:")
    import re

    from fr_utils.matching import default_threshold

    found = re.search(r"distance (\d\.\d{3}) < threshold (\d\.\d{3}) \(euclidean\)", out)
    assert found and found[2] == f"{default_threshold():.3f}", out  # the default encoder's own threshold
    assert 0.5 < float(found[1]) < 0.7, out  # Obama's two photos: 0.583 apart with the 128-number encoder
    code, out, _ = run(capsys, "verify", "Grace_Hopper", COLLINS, "--db", db)  # options after the command
    assert code == EXIT_NO and out.startswith("CLOSED:")


def test_identify_each_photo_and_unknown(db, capsys):
    code, out, _ = run(capsys, "--db", db, "identify", *OBAMA[1:], BIDEN, HOPPER)
    assert code == EXIT_OK
    assert [line.split(": ")[1].split(" ")[0] for line in out.splitlines()] == [
        "Barack_Obama", "Barack_Obama", "Joseph_Biden", "Grace_Hopper"]
    code, out, _ = run(capsys, "--db", db, "identify", COLLINS)
    assert code == EXIT_NO and ": unknown (nearest: " in out
    code, out, _ = run(capsys, "--db", db, "identify", "--all", TWO_FACES)
    lines = out.splitlines()
    assert code == EXIT_OK and len(lines) == 2 and "Grace_Hopper" in lines[0] and "unknown" in lines[1]


def test_json_output(db, capsys):
    code, out, _ = run(capsys, "--db", db, "--json", "verify", "Barack_Obama", OBAMA[2])
    result = json.loads(out)
    assert code == EXIT_OK and result["decision"] == "OPEN" and result["match"] is True
    assert result["metric"] == "euclidean" and 0 < result["distance"] <= result["threshold"]
    code, out, _ = run(capsys, "--db", db, "--json", "--metric", "cosine", "identify", COLLINS, HOPPER)
    results = json.loads(out)["results"]
    assert code == EXIT_NO and [r["name"] for r in results] == [None, "Grace_Hopper"]
    assert json.loads(out)["threshold"] == pytest.approx(json.loads(run(capsys, "--db", db, "--json", "verify",
                                                                        "Barack_Obama", OBAMA[2])[1])["threshold"] ** 2 / 2)
    code, out, _ = run(capsys, "--db", db, "--json", "list")
    people = json.loads(out)["people"]
    assert [p["name"] for p in people] == ["Barack_Obama", "Grace_Hopper", "Joseph_Biden"]
    assert all(p["embeddings"] == 1 for p in people)


def test_threshold_option(db, capsys):
    assert run(capsys, "--db", db, "--threshold", "0.3", "verify", "Barack_Obama", OBAMA[1])[0] == EXIT_NO
    assert run(capsys, "--db", db, "--threshold", "1.5", "verify", "Grace_Hopper", COLLINS)[0] == EXIT_OK


def test_list_remove_rename(db, capsys):
    code, out, _ = run(capsys, "--db", db, "list")
    assert code == EXIT_OK and "3 people, 3 photos" in out
    assert run(capsys, "--db", db, "rename", "Joseph_Biden", "Joe")[0] == EXIT_OK
    code, out, _ = run(capsys, "--db", db, "remove", "Joe")
    assert code == EXIT_OK and out == "removed Joe (1 photo(s))\n"
    code, out, _ = run(capsys, "--db", db, "list")
    assert "2 people" in out and "Joe" not in out


def test_enroll_tree_and_skipped_photos(tmp_path, facenet, capsys):
    path = tmp_path / "tree.db"
    code, out, _ = run(capsys, "--db", path, "enroll-tree", PEOPLE)
    assert code == EXIT_OK and len(out.splitlines()) == 4 and "enrolled Barack_Obama: 3 new photo(s)" in out
    code, out, err = run(capsys, "--db", path, "enroll", "Grace_Hopper", HOPPER, NO_FACE, TWO_FACES)
    assert code == EXIT_OK
    assert f"facedoor: warning: skipped {NO_FACE}: no face found" in err
    assert out == "enrolled Grace_Hopper: 1 new photo(s), 1 already enrolled, 2 in all\n"


def test_database_from_the_environment(db, capsys, monkeypatch):
    monkeypatch.setenv("FACEDOOR_DB", str(db))
    assert run(capsys, "verify", "Barack_Obama", OBAMA[1])[0] == EXIT_OK


def test_help_documents_the_exit_codes(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for line in ["0  done; verify: OPEN", "1  verify: CLOSED", "2  usage or bad input", "3  the database or the model",
                 "FACEDOOR_DB"]:
        assert line in out


# --------------------------------------------------------------------------- bad input: message and exit code


def test_bad_input_exit_2(db, tmp_path, capsys):
    empty = tmp_path / "empty.db"
    assert run(capsys, "--db", empty, "enroll", "Coffee", NO_FACE)[0] == EXIT_INPUT  # creates an empty database
    cases = [
        (["--db", db, "verify", "Nobody", OBAMA[1]], "'Nobody' is not enrolled"),
        (["--db", db, "remove", "Nobody"], "'Nobody' is not enrolled"),
        (["--db", empty, "identify", OBAMA[1]], "no one is enrolled"),
        (["--db", empty, "verify", "Barack_Obama", OBAMA[1]], "empty"),
        (["--db", tmp_path / "absent.db", "list"], "no database at"),
        (["--db", db, "verify", "Barack_Obama", NO_FACE], "no_face_coffee.jpg: no face found"),
        (["--db", db, "identify", NO_FACE], "no_face_coffee.jpg: no face found"),
        (["--db", db, "enroll", "Coffee", NO_FACE], "no_face_coffee.jpg: no face found"),
        (["--db", db, "verify", "Barack_Obama", tmp_path / "missing.jpg"], "missing.jpg: no such file"),
        (["--db", db, "enroll", " Ann", OBAMA[0]], "must not start or end with spaces"),
        (["--db", db, "enroll", "Ann", tmp_path], "no image files"),
        (["--db", db, "--threshold", "2.5", "list"], "threshold must be between 0 and 2"),
        (["--db", db, "--metric", "manhattan", "list"], "invalid choice"),
        (["--db", db, "frobnicate"], "invalid choice"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == EXIT_INPUT, (argv, out, err)
        assert message in err, (argv, err)
        if "invalid choice" not in message and "threshold" not in message:
            assert err.startswith("facedoor: error: "), err
    assert not (tmp_path / "absent.db").exists()
    code, _, err = run(capsys, "--db", tmp_path / "new.db", "enroll", "Ann", tmp_path / "typo.jpg")
    assert code == EXIT_INPUT and "typo.jpg: no such file" in err
    assert not (tmp_path / "new.db").exists()  # a typo creates no database
    code, out, _ = run(capsys, "--db", db, "list")
    assert "3 people, 3 photos" in out  # nothing lost


def test_database_errors_exit_3_and_leave_the_file_alone(db, tmp_path, capsys):
    jpeg = tmp_path / "photo.db"
    shutil.copy(HOPPER, jpeg)
    other_app = tmp_path / "other.db"
    with sqlite3.connect(other_app) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    other_model = tmp_path / "other_model.db"
    shutil.copy(db, other_model)
    with sqlite3.connect(other_model) as conn:
        conn.execute("UPDATE meta SET value = 'f' || substr(value, 2) WHERE key = 'weights_sha256'")
    conn.close()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    cases = [
        (jpeg, ["verify", "Grace_Hopper", HOPPER], "not an SQLite file"),
        (jpeg, ["enroll", "Grace_Hopper", HOPPER], "not an SQLite file"),
        (other_app, ["list"], "another application"),
        (other_model, ["verify", "Barack_Obama", OBAMA[1]], "was built with the model"),
        (other_model, ["enroll", "Eileen_Collins", COLLINS], "was built with the model"),
        (tmp_path, ["enroll", "Grace_Hopper", HOPPER], "is a directory"),
        (a_file / "faces.db", ["enroll", "Grace_Hopper", HOPPER], "is a file, not a folder"),
    ]
    for path, argv, message in cases:
        before = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        code, _, err = run(capsys, "--db", path, *argv)
        assert code == EXIT_DATABASE and err.startswith("facedoor: error: ") and message in err, (argv, err)
        assert str(path) in err
        if before is not None:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_list_and_remove_do_not_load_tensorflow(db):
    script = ("import sys; from fr_utils.door import main; "
              f"codes = [main(['--db', {str(db)!r}, 'list']), main(['--db', {str(db)!r}, 'remove', 'Joseph_Biden'])]; "
              "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "[0, 0] False False", result.stdout + result.stderr


# --------------------------------------------------------------------------- the installed script, end to end


@pytest.mark.slow
def test_installed_facedoor_on_the_sample_cast(tmp_path):
    exe = shutil.which("facedoor", path=str(Path(sys.executable).parent)) or shutil.which("facedoor")
    assert exe, "the facedoor console script is not installed (pip install -e .)"
    env = dict(os.environ, FACEDOOR_DB=str(tmp_path / "door.db"))

    def facedoor(*args) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)

    r = facedoor("enroll", "Barack_Obama", OBAMA[0])
    assert r.returncode == 0 and r.stdout.startswith("enrolled Barack_Obama: 1 new photo(s)"), r.stderr
    tree = tmp_path / "staff"  # Biden and Hopper in one call (each process loads TensorFlow: seconds)
    for photo in (BIDEN, HOPPER):
        (tree / photo.parent.name).mkdir(parents=True)
        shutil.copy(photo, tree / photo.parent.name)
    r = facedoor("enroll-tree", tree)
    assert r.returncode == 0 and r.stdout.splitlines() == [
        "enrolled Grace_Hopper: 1 new photo(s), 1 in all", "enrolled Joseph_Biden: 1 new photo(s), 1 in all"], r.stderr
    r = facedoor("verify", "Barack_Obama", OBAMA[1])
    assert r.returncode == 0 and r.stdout.startswith("OPEN"), r.stdout + r.stderr
    r = facedoor("verify", "Grace_Hopper", COLLINS)
    assert r.returncode == 1 and r.stdout.startswith("CLOSED"), r.stdout + r.stderr
    r = facedoor("--json", "identify", *OBAMA, BIDEN, HOPPER, COLLINS)
    assert r.returncode == 1, r.stderr  # Collins is not enrolled
    names = [x["name"] for x in json.loads(r.stdout)["results"]]
    assert names == ["Barack_Obama"] * 3 + ["Joseph_Biden", "Grace_Hopper", None]


# --------------------------------------------------------------------------- issue #18: attacks and faults


def test_enrolling_a_face_that_matches_someone_else_warns_and_strict_refuses(db, tmp_path, capsys):
    """Grace Hopper's photo enrolled as Barack Obama would open the door to her as him."""
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    code, out, err = run(capsys, "--db", db, "enroll", "--strict", "Barack_Obama", HOPPER)
    assert code == EXIT_INPUT and "refused (strict)" in err and "matches 'Grace_Hopper'" in err, err
    assert out == "" and hashlib.sha256(db.read_bytes()).hexdigest() == before
    code, out, err = run(capsys, "--db", db, "--json", "enroll", "Barack_Obama", HOPPER)
    assert code == EXIT_OK and "facedoor: warning: enrolling 'Barack_Obama'" in err and "matches 'Grace_Hopper'" in err
    assert "matches 'Grace_Hopper'" in json.loads(out)["warnings"][0]
    code, _, err = run(capsys, "--db", db, "enroll", "--strict", "Eileen_Collins", COLLINS)
    assert code == EXIT_OK and "warning" not in err  # a new face: no warning


def test_look_alike_and_invisible_names(db, capsys):
    code, _, err = run(capsys, "--db", db, "enroll", "Grace\u200bHopper", HOPPER)
    assert code == EXIT_INPUT and "ZERO WIDTH SPACE" in err
    code, _, err = run(capsys, "--db", db, "rename", "--strict", "Joseph_Biden", "Barack_0bama")
    assert code == EXIT_INPUT and "looks like 'Barack_Obama'" in err
    code, _, err = run(capsys, "--db", db, "rename", "Joseph_Biden", "Jos\u0065\u0301")  # NFD typed
    assert code == EXIT_OK
    code, out, _ = run(capsys, "--db", db, "--json", "list")
    assert "Jos\u00e9" in [p["name"] for p in json.loads(out)["people"]]  # stored as NFC
    assert run(capsys, "--db", db, "remove", "Jos\u00e9")[0] == EXIT_OK


def test_a_fifo_or_device_as_the_photo_fails_at_once(db, tmp_path, capsys):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    for argv in (["verify", "Barack_Obama", fifo], ["identify", fifo], ["enroll", "Ann", fifo],
                 ["verify", "Barack_Obama", "/dev/zero"]):
        code, _, err = run(capsys, "--db", db, *argv)
        assert code == EXIT_INPUT and ("is a FIFO" in err or "is a device" in err), (argv, err)


def test_remove_leaves_no_trace_in_the_files(db, capsys):
    name = b"Joseph_Biden"
    assert name in db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists() else b"")
    assert run(capsys, "--db", db, "remove", "Joseph_Biden")[0] == EXIT_OK
    files = [db, Path(f"{db}-wal")]
    assert not any(name in f.read_bytes() for f in files if f.exists())


_RACE_SCRIPT = """
import hashlib, os, sys, time
import numpy as np
import fr_utils.encoding as E
import fr_utils.weights as W

class Encoder:  # stands for the bundled model: no TensorFlow, the same vector for the same photo
    name = W.MODEL_NAME

encoder = Encoder()
W._LOADED[encoder] = W.Loaded(W.read_manifest())
W.load_facenet = lambda *args, **kwargs: encoder

def encode_batch(images, model, **kwargs):
    time.sleep(0.5)  # the real encoder takes seconds: both processes are encoding at once
    rows = []
    for image in images:
        seed = int.from_bytes(hashlib.sha256(open(image, "rb").read()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=128)
        rows.append(v / np.linalg.norm(v))
    return E.Encoded(np.asarray(rows, np.float32), list(range(len(images))), [])

E.encode_batch = encode_batch
from fr_utils.door import main
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
sys.exit(main(["--db", sys.argv[1], "enroll-tree", sys.argv[3]]))
"""


def test_two_enroll_trees_at_once_store_each_photo_once(tmp_path):
    """The issue's race, through the command line: two enroll-tree processes left 12 embeddings instead of 6."""
    db, go = tmp_path / "race.db", tmp_path / "go"
    photos = sorted(PEOPLE.glob("*/*.jpg"))
    procs = [subprocess.Popen([sys.executable, "-c", _RACE_SCRIPT, str(db), str(go), str(PEOPLE)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.0)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [EXIT_OK, EXIT_OK], results
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == len(photos) == 6
        assert conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 4
    conn.close()
    added = [int(line.split(": ")[1].split(" ")[0]) for out, _ in results for line in out.splitlines()]
    assert sum(added) == 6, results  # each photo reported as new by exactly one of them


def test_a_distance_equal_to_the_threshold_keeps_the_door_closed(tmp_path, capsys, monkeypatch):
    """facedoor follows fr_utils.matching.is_match: OPEN only when distance < threshold."""
    import numpy as np

    from fr_utils.database import FaceDatabase

    alice, probe = np.zeros(128), np.zeros(128)
    alice[:2], probe[:2] = (0.6, 0.8), (0.8, 0.6)  # exactly representable unit vectors, 0.283 apart
    path = tmp_path / "edge.db"
    with FaceDatabase(path) as db:  # the bundled model's identity from its manifest: no TensorFlow
        db.add_embeddings("Alice", alice)
        edge = db.distance(probe, "Alice")
    monkeypatch.setattr(FaceDatabase, "encode", lambda self, image: probe)  # any photo "is" the probe
    photo = OBAMA[0]
    code, out, _ = run(capsys, "--db", path, "--threshold", repr(edge), "verify", "Alice", photo)
    assert code == EXIT_NO and out.startswith("CLOSED:") and "distance 0.283 >= threshold 0.283" in out
    code, out, _ = run(capsys, "--db", path, "--threshold", repr(edge), "identify", photo)
    assert code == EXIT_NO and "unknown (nearest: Alice, distance 0.283 >= threshold 0.283)" in out
    above = repr(float(np.nextafter(edge, 2.0)))
    code, out, _ = run(capsys, "--db", path, "--threshold", above, "--json", "verify", "Alice", photo)
    assert code == EXIT_OK and json.loads(out)["decision"] == "OPEN" and json.loads(out)["distance"] == edge
    code, out, _ = run(capsys, "--db", path, "--threshold", above, "identify", photo)
    assert code == EXIT_OK and out == f"{photo}: Alice (distance 0.283)\n"


_FAST_SCRIPT = """
import contextlib, io, json, sys, time
from fr_utils.door import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, err.getvalue().strip().splitlines()[-1], time.perf_counter() - start])
print(json.dumps({"results": results, "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
"""


def test_bad_arguments_and_files_fail_before_tensorflow_loads(tmp_path):
    """Every encoding command checks its photos, names and database first: a clear message, exit 2 or 3,
    in milliseconds, and TensorFlow never imported (it costs ~13 s)."""
    import numpy as np

    from fr_utils.database import FaceDatabase

    db = tmp_path / "faces.db"
    alice = np.zeros(128)
    alice[0] = 1.0
    with FaceDatabase(db) as door:  # the bundled model's identity from its manifest: no TensorFlow
        door.add_embeddings("Alice", alice)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(OBAMA[0].read_bytes()[:400])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    new = tmp_path / "new.db"
    cases = [  # (argv, exit code, message at the end of stderr)
        (["verify", "Alice", tmp_path / "missing.jpg"], EXIT_INPUT, "missing.jpg: no such file"),
        (["verify", "Alice", text], EXIT_INPUT, "notes.jpg: not an image file (no known image format)"),
        (["verify", "Alice", truncated], EXIT_INPUT, "half.jpg: truncated or corrupt image"),
        (["verify", "Alice", tmp_path], EXIT_INPUT, f"{tmp_path}: is a directory, not an image file"),
        (["verify", "Bob", OBAMA[0]], EXIT_INPUT, "'Bob' is not enrolled in"),
        (["identify", text], EXIT_INPUT, "notes.jpg: not an image file"),
        (["identify", "--all", tmp_path / "missing.jpg"], EXIT_INPUT, "missing.jpg: no such file"),
        (["enroll", "Bob", text], EXIT_INPUT, "notes.jpg: not an image file"),
        (["enroll", "Bob", text, truncated], EXIT_INPUT, "nothing enrolled for 'Bob': no usable image"),
        (["enroll", "Bob\u200b", OBAMA[0]], EXIT_INPUT, "invisible"),
        (["--db", new, "enroll", "Bob", text], EXIT_INPUT, "notes.jpg: not an image file"),
        (["--db", new, "enroll-tree", text], EXIT_INPUT, "notes.jpg: not a folder"),
        (["--db", junk, "verify", "Alice", OBAMA[0]], EXIT_DATABASE, "junk.db: not a face database"),
        (["--db", tmp_path / "absent.db", "identify", OBAMA[0]], EXIT_INPUT, "no database at"),
    ]
    argv = [["--db", str(db)] + [str(a) for a in case] for case, _, _ in cases]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _FAST_SCRIPT, json.dumps(argv)], capture_output=True, text=True,
                            timeout=120)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    for (case, code, message), (got, last, seconds) in zip(cases, report["results"]):
        assert got == code and last.startswith("facedoor: error: ") and message in last, (case, got, last)
        assert seconds < 1.0, (case, seconds)  # milliseconds when idle; TensorFlow alone takes seconds
    assert (report["tensorflow"], report["keras"]) == (False, False)
    assert elapsed < 20, elapsed  # the interpreter and fr_utils' imports, on a loaded machine
    assert not new.exists()  # a refused enrolment creates no database file


def test_verify_with_the_photo_first_says_the_order_or_reads_it_when_unambiguous(db, tmp_path, capsys):
    """Issue #14 item 5: ``verify IMAGE NAME`` with an enrolled NAME is read as ``verify NAME IMAGE``
    (a note says so); with a name nobody enrolled, the error says the order."""
    code, out, err = run(capsys, "--db", db, "verify", OBAMA[1], "Barack_Obama")
    assert code == EXIT_OK and out.startswith(f"OPEN: {OBAMA[1]} vs Barack_Obama"), (out, err)
    assert f"read as 'verify Barack_Obama {OBAMA[1]}' (the order is NAME IMAGE)" in err
    code, out, err = run(capsys, "--db", db, "verify", BIDEN, "Barack_Obama")
    assert code == EXIT_NO and out.startswith(f"CLOSED: {BIDEN} vs Barack_Obama")
    code, _, err = run(capsys, "--db", db, "verify", OBAMA[1], "Nobody")
    assert code == EXIT_INPUT
    assert f"{str(OBAMA[1])!r} is a file, not an enrolled name: the order is 'facedoor verify NAME IMAGE'" in err


def test_through_a_running_service_the_command_prints_its_answers_without_tensorflow(tmp_path):
    """With a service recorded beside the database (here a stand-in answering as facedoor serve
    does), verify and identify send the photo and print its answers, exit codes and error messages
    as in-process, in a process that never imports TensorFlow."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import numpy as np

    from fr_utils.database import FaceDatabase
    from fr_utils.serve import address_file, write_address

    db = tmp_path / "faces.db"
    with FaceDatabase(db) as door:
        alice = np.zeros(int(door.model_identity()["embedding_size"]))
        alice[0] = 1.0
        door.add_embeddings("Alice", alice)
    seen = []

    class Service(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self.answer(200, {"status": "ok", "database_path": os.path.realpath(db), "max_upload": 10**7})

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["X-Photo-Name"], len(body)))
            if self.path.startswith("/verify"):
                self.answer(200, {"distance": 0.5, "match": True})
            elif "no_face" in self.headers["X-Photo-Name"]:
                self.answer(422, {"error": f"{self.headers['X-Photo-Name']}: no face found", "exit_code": 2})
            else:
                self.answer(200, {"name": None, "nearest": "Alice", "distance": 1.5})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    write_address(db, f"http://127.0.0.1:{server.server_address[1]}/", 10**7)
    cases = [  # argv, exit code, stdout, end of stderr
        (["verify", "Alice", OBAMA[0]], EXIT_OK,
         f"OPEN: {OBAMA[0]} vs Alice: distance 0.500 < threshold", ""),
        (["--threshold", "0.4", "verify", "Alice", OBAMA[0]], EXIT_OK, "threshold 0.400", ""),
        (["identify", BIDEN, NO_FACE], EXIT_INPUT,
         f"{BIDEN}: unknown (nearest: Alice, distance 1.500 >= threshold", f"facedoor: error: {NO_FACE}: no face found"),
        (["verify", "Bob", OBAMA[0]], EXIT_INPUT, "", "'Bob' is not enrolled in"),  # checked here, never sent
    ]
    script = ("import contextlib, io, json, sys; from fr_utils.door import main\n"
              "out = []\n"
              "for argv in json.loads(sys.argv[1]):\n"
              "    o, e = io.StringIO(), io.StringIO()\n"
              "    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):\n"
              "        code = main(argv)\n"
              "    out.append([code, o.getvalue(), e.getvalue()])\n"
              "print(json.dumps([out, 'tensorflow' in sys.modules]))")
    argv = [["--db", str(db)] + [str(a) for a in case] for case, _, _, _ in cases]
    try:
        result = subprocess.run([sys.executable, "-c", script, json.dumps(argv)], capture_output=True, text=True,
                                timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    answers, tensorflow = json.loads(result.stdout.splitlines()[-1])
    assert tensorflow is False
    for (case, code, out, err), (got, stdout, stderr) in zip(cases, answers):
        assert got == code and out in stdout and (err in stderr if err else stderr == ""), (case, got, stdout, stderr)
    assert [path.split("?")[0] for path, _, _ in seen] == ["/verify", "/verify", "/identify", "/identify"]
    assert "threshold=0.4" in seen[1][0] and "metric=euclidean" in seen[0][0]
    assert seen[0][1:] == (str(OBAMA[0]), OBAMA[0].stat().st_size)  # the photo's bytes, named by its path
    assert address_file(db).exists()  # a live service's address stays
