"""FaceDatabase: enrol, verify, identify on the sample cast; persistence, safety and bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils.database import (
    EmptyDatabaseError,
    FaceDatabase,
    FaceDatabaseError,
    ModelMismatchError,
    SkippedImagesWarning,
    UnknownPersonError,
    check_name,
    name_skeleton,
)
from fr_utils.errors import EnrolmentRefused, SimilarFaceWarning, SimilarNameWarning
from fr_utils.data import cast_dir, other_photo
from fr_utils.matching import default_threshold
from fr_utils.matching import distances_to as distances
from fr_utils.images import FaceImageError, NoFaceError
from fr_utils.weights import WeightsError, read_manifest

PEOPLE = cast_dir() / "people"
NO_FACE = other_photo("no_face_coffee.jpg")
TWO_FACES = other_photo("two_faces_hopper_collins.jpg")
OBAMA = [PEOPLE / "Barack_Obama" / f"Barack_Obama_000{i}.jpg" for i in (1, 2, 3)]
BIDEN = PEOPLE / "Joseph_Biden" / "Joseph_Biden_0001.jpg"
HOPPER = PEOPLE / "Grace_Hopper" / "Grace_Hopper_0001.jpg"
COLLINS = PEOPLE / "Eileen_Collins" / "Eileen_Collins_0001.jpg"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def cast(facenet) -> dict[str, np.ndarray]:
    """Each cast photo's embedding (128,), computed once: {file stem: embedding}."""
    from fr_utils.encoding import encode_images

    photos = [*OBAMA, BIDEN, HOPPER, COLLINS]
    return {p.stem: e for p, e in zip(photos, encode_images(photos, facenet))}


@pytest.fixture
def door(tmp_path, facenet) -> FaceDatabase:
    """A database file with Obama (photo 1), Biden and Hopper enrolled from their photos."""
    with FaceDatabase(tmp_path / "faces.db", facenet) as db:
        db.enroll("Barack_Obama", OBAMA[0])
        db.enroll("Joseph_Biden", BIDEN.parent)
        db.enroll("Grace_Hopper", [HOPPER])
        yield db


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 128))  # the default encoder's size
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- the door on the cast


def test_verify_and_identify_the_cast(door, cast):
    threshold = read_manifest()["verification"]["threshold"]
    assert door.threshold == threshold and door.metric == "euclidean"
    d, ok = door.verify(OBAMA[1], "Barack_Obama")
    assert ok and d == pytest.approx(np.linalg.norm(cast["Barack_Obama_0002"] - cast["Barack_Obama_0001"]), abs=1e-5)
    d, ok = door.verify(COLLINS, "Grace_Hopper")
    assert not ok and d == pytest.approx(np.linalg.norm(cast["Eileen_Collins_0001"] - cast["Grace_Hopper_0001"]), abs=1e-5)
    for photo, who in [(OBAMA[1], "Barack_Obama"), (OBAMA[2], "Barack_Obama"), (BIDEN, "Joseph_Biden"), (HOPPER, "Grace_Hopper")]:
        name, d = door.identify(photo)
        assert name == who and d <= threshold, photo
    name, d = door.identify(COLLINS)
    assert name is None and d > threshold


def test_distance_to_a_person_is_the_minimum_over_their_photos(door, cast):
    door.enroll("Barack_Obama", OBAMA[2])
    assert len(door.embeddings("Barack_Obama")) == 2
    d, _ = door.verify(OBAMA[1], "Barack_Obama")
    each = [np.linalg.norm(cast["Barack_Obama_0002"] - cast[f"Barack_Obama_000{i}"]) for i in (1, 3)]
    assert d == pytest.approx(min(each), abs=1e-5) and min(each) < max(each)


def test_cosine_is_half_the_squared_euclidean_with_the_matching_threshold(door):
    t = door.threshold
    l2 = {p: door.verify(p, "Grace_Hopper")[0] for p in (HOPPER, COLLINS, OBAMA[0])}
    door.metric = "cosine"
    assert door.threshold == pytest.approx(t * t / 2)
    for p, d in l2.items():
        d_cos, ok = door.verify(p, "Grace_Hopper")
        assert d_cos == pytest.approx(d * d / 2, abs=1e-5)
        assert ok == (d <= t)
    assert default_threshold("cosine") == pytest.approx(default_threshold("euclidean") ** 2 / 2)


def test_threshold_override_changes_the_decision(tmp_path, door):
    d, ok = door.verify(OBAMA[1], "Barack_Obama")
    assert ok
    door.threshold = d - 0.01
    assert door.verify(OBAMA[1], "Barack_Obama") == (pytest.approx(d), False)
    with FaceDatabase(door.path, door.model, threshold=d + 0.01) as same:
        assert same.verify(OBAMA[1], "Barack_Obama")[1]


def test_identify_all_names_every_face(door):
    faces = door.identify_all(TWO_FACES)
    assert len(faces) == 2
    assert [f["name"] for f in faces] == ["Grace_Hopper", None]  # largest first; Collins not enrolled
    for f in faces:
        assert {"box", "embedding", "name", "distance", "nearest", "confidence"} <= set(f)
        assert f["embedding"].shape == (128,) and len(f["box"]) == 4
    assert faces[1]["distance"] > door.threshold
    door.enroll("Eileen_Collins", COLLINS)
    assert [f["name"] for f in door.identify_all(TWO_FACES)] == ["Grace_Hopper", "Eileen_Collins"]
    assert door.identify_all(NO_FACE) == []


def test_persisted_and_reopened(door, cast, facenet):
    door.close()
    with FaceDatabase(door.path, facenet) as again:
        assert again.names() == ["Barack_Obama", "Grace_Hopper", "Joseph_Biden"] and len(again) == 3
        np.testing.assert_allclose(again.embeddings("Joseph_Biden")[0], cast["Joseph_Biden_0001"], atol=1e-5)
        info = again.info()
        manifest = read_manifest()
        assert info["model_name"] == manifest["name"] and info["weights_sha256"] == manifest["weights_sha256"]
        assert info["embedding_size"] == "128" and info["schema_version"] == "1"
        assert {p["name"]: p["embeddings"] for p in again.people()}["Barack_Obama"] == 1


def test_in_memory_database(facenet, cast):
    with FaceDatabase(None, facenet) as db:
        assert db.enroll("Barack_Obama", [OBAMA[0], OBAMA[2]]) == 2
        assert db.identify(OBAMA[1])[0] == "Barack_Obama"
        assert db.path is None and "Barack_Obama" in db


def test_names_remove_rename(door):
    assert "Joseph_Biden" in door and "Nobody" not in door and len(door) == 3
    door.rename("Joseph_Biden", "Joe Biden")
    assert door.names() == ["Barack_Obama", "Grace_Hopper", "Joe Biden"]
    with pytest.raises(ValueError, match="already enrolled"):
        door.rename("Joe Biden", "Grace_Hopper")
    assert door.remove("Joe Biden") == 1
    assert door.names() == ["Barack_Obama", "Grace_Hopper"]
    assert door.identify(BIDEN)[0] is None


def test_enrolling_the_same_photos_again_adds_nothing(door):
    assert door.enroll("Joseph_Biden", BIDEN) == 0
    assert len(door.embeddings("Joseph_Biden")) == 1
    added = door.enroll_tree(PEOPLE)
    assert added == {"Barack_Obama": 2, "Eileen_Collins": 1, "Grace_Hopper": 0, "Joseph_Biden": 0}
    assert {p["name"]: p["embeddings"] for p in door.people()} == {
        "Barack_Obama": 3, "Eileen_Collins": 1, "Grace_Hopper": 1, "Joseph_Biden": 1}


def test_enroll_from_arrays_and_bytes(facenet, cast):
    with FaceDatabase(None, facenet) as db:
        db.enroll("Grace_Hopper", np.asarray(Image.open(HOPPER).convert("RGB")))
        db.enroll("Joseph_Biden", BIDEN.read_bytes())
        np.testing.assert_allclose(db.embeddings("Grace_Hopper")[0], cast["Grace_Hopper_0001"], atol=1e-5)
        assert db.identify(BIDEN)[0] == "Joseph_Biden"


def test_several_readers_see_each_others_writes(tmp_path):
    path = tmp_path / "shared.db"
    with FaceDatabase(path) as writer, FaceDatabase(path, create=False) as reader:
        writer.add_embeddings("a", random_unit(2, 1))
        assert reader.nearest(random_unit(2, 1)[1]) == [("a", pytest.approx(0.0, abs=1e-6))]
        writer.add_embeddings("b", random_unit(1, 2))
        assert reader.names() == ["a", "b"]  # the reader's cache is refreshed
        assert reader.nearest(random_unit(1, 2)[0])[0][0] == "b"


# --------------------------------------------------------------------------- bad input


def test_unknown_name(door):
    with pytest.raises(UnknownPersonError, match="'Nobody' is not enrolled") as err:
        door.verify(OBAMA[1], "Nobody")
    assert isinstance(err.value, KeyError) and str(door.path) in str(err.value)
    with pytest.raises(UnknownPersonError, match="did you mean 'Barack_Obama'"):
        door.remove("barack_obama")
    assert len(door) == 3


def test_empty_database(tmp_path, facenet):
    with FaceDatabase(tmp_path / "empty.db", facenet) as db:
        with pytest.raises(EmptyDatabaseError, match="no one is enrolled"):
            db.identify(OBAMA[0])
        with pytest.raises(UnknownPersonError, match="empty"):
            db.verify(OBAMA[0], "Barack_Obama")
        with pytest.raises(EmptyDatabaseError):
            db.identify_all(TWO_FACES)


def test_no_face(door):
    before = door.people()
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg"):
        door.enroll("Coffee", NO_FACE)
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg"):
        door.verify(NO_FACE, "Barack_Obama")
    with pytest.raises(NoFaceError, match="no_face_coffee.jpg"):
        door.identify(NO_FACE)
    assert door.people() == before


def test_bulk_enrol_skips_bad_photos_with_a_warning(door, tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    with pytest.warns(SkippedImagesWarning, match="no_face_coffee.jpg") as record:
        assert door.enroll("Barack_Obama", [NO_FACE, OBAMA[2], bad]) == 1
    skipped = [f for w in record if isinstance(w.message, SkippedImagesWarning) for f, _ in w.message.skipped]
    assert skipped == [str(NO_FACE), str(bad)]
    assert len(door.embeddings("Barack_Obama")) == 2
    with pytest.raises(FaceImageError, match="nothing enrolled.*no_face_coffee.jpg.*not_an_image.jpg"):
        door.enroll("Coffee", [NO_FACE, bad])
    assert "Coffee" not in door and len(door) == 3


def test_bad_names_metrics_thresholds_and_embeddings(tmp_path, door):
    for name in ["", "  ", " Ann", "a\nb", 42, "x" * 201]:
        with pytest.raises(ValueError):
            check_name(name)
    for threshold in [0, -1, 2, 2.5, float("nan"), float("inf"), "1", True]:
        with pytest.raises(ValueError, match="threshold"):
            FaceDatabase(None, threshold=threshold)
    with pytest.raises(ValueError, match="metric must be one of 'euclidean', 'cosine'"):
        FaceDatabase(None, metric="manhattan")
    with pytest.raises(ValueError, match="shape"):
        door.add_embeddings("x", np.ones((2, 512)))  # the 512-number encoder's size
    with pytest.raises(ValueError, match="finite"):
        door.add_embeddings("x", np.full(128, np.nan))
    with pytest.raises(ValueError, match="no image files"):
        door.enroll("x", tmp_path)  # a folder without photos
    assert "x" not in door


def test_manifest_without_a_threshold_says_to_rebuild(tmp_path, monkeypatch):
    manifest = {k: v for k, v in read_manifest().items() if k != "verification"}
    with pytest.raises(WeightsError, match="make weights"):
        default_threshold("euclidean", manifest)
    import json
    from fr_utils.weights import manifest_path

    manifest_path(tmp_path).write_text(json.dumps(manifest))
    monkeypatch.setenv("FR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="verification"):
        FaceDatabase(None).threshold
    assert FaceDatabase(None, threshold=0.9).threshold == 0.9  # an explicit threshold needs no manifest


def test_database_of_another_model_is_refused(door):
    door.close()
    with sqlite3.connect(door.path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'weights_sha256'", ("0" * 64,))
    conn.close()
    before = sha(door.path)
    with FaceDatabase(door.path) as other:
        assert other.names() == ["Barack_Obama", "Grace_Hopper", "Joseph_Biden"]  # listing is fine
        for call in (lambda: other.identify(OBAMA[1]), lambda: other.verify(OBAMA[1], "Barack_Obama"),
                     lambda: other.enroll("Eileen_Collins", COLLINS)):
            with pytest.raises(ModelMismatchError, match="0{64}.*" + read_manifest()["weights_sha256"]):
                call()
    assert sha(door.path) == before


def test_a_database_enrolled_with_the_512_number_encoder_is_refused_by_the_default(tmp_path, facenet512):
    """The default switched from the 512-number encoder to the 128-number one (issue #15): a faces.db
    enrolled before gives a clear error naming both encoders, never distances between the two."""
    from fr_utils.weights import MODEL_NAME

    path = tmp_path / "old.db"
    v = np.random.default_rng(0).normal(size=512)
    with FaceDatabase(path, facenet512) as old:
        old.add_embeddings("Alice", v / np.linalg.norm(v))
        assert old.info()["embedding_size"] == "512"
    before = sha(path)
    with FaceDatabase(path) as db:  # the default encoder's identity from its manifest
        assert db.names() == ["Alice"]  # listing is fine
        for call in (lambda: db.identify(OBAMA[1]), lambda: db.verify(OBAMA[1], "Alice"),
                     lambda: db.nearest(random_unit(1)[0]), lambda: db.enroll("Bob", BIDEN)):
            with pytest.raises(ModelMismatchError) as err:
                call()
            message = str(err.value)
            assert "'facenet_20180408-102900'" in message and f"{MODEL_NAME!r}" in message
            assert "embeddings of 512" in message and "embeddings of 128" in message and str(path) in message
    assert sha(path) == before


def test_foreign_and_corrupt_files_are_refused_and_left_untouched(tmp_path):
    jpeg = tmp_path / "photo.db"
    jpeg.write_bytes(HOPPER.read_bytes())
    other_app = tmp_path / "notes.db"
    with sqlite3.connect(other_app) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    good = tmp_path / "good.db"
    with FaceDatabase(good) as db:
        for i in range(20):
            db.add_embeddings(f"person {i}", random_unit(10, i))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(data[: len(data) // 2])
    scrambled = tmp_path / "scrambled.db"
    noise = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    scrambled.write_bytes(data[:4096] + noise[4096 : len(data) // 2] + data[len(data) // 2 :])
    cases = {jpeg: "not an SQLite file", other_app: "another application", truncated: "damaged",
             scrambled: "damaged"}
    for path, why in cases.items():
        before = sha(path)
        with pytest.raises(FaceDatabaseError, match=why) as err:
            with FaceDatabase(path) as db:
                db.add_embeddings("intruder", random_unit(1))
        assert str(path) in str(err.value)
        assert sha(path) == before, f"{path} was modified"


def test_unwritable_locations(tmp_path):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    cases = {tmp_path: "is a directory", a_file / "faces.db": "is a file, not a folder",
             tmp_path / "missing" / "faces.db": "does not exist"}
    for path, why in cases.items():
        with pytest.raises(FaceDatabaseError, match=why):
            FaceDatabase(path)
    with pytest.raises(FaceDatabaseError, match="no such database file"):
        FaceDatabase(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.skipif(ROOT_USER, reason="running as root: file permissions do not block writes")
def test_read_only_folder_and_file(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(FaceDatabaseError, match="no permission"):
            FaceDatabase(locked / "faces.db")
    finally:
        locked.chmod(0o700)
    path = tmp_path / "ro.db"
    with FaceDatabase(path) as db:
        db.add_embeddings("a", random_unit(1))
    path.chmod(0o400)
    try:
        with FaceDatabase(path) as db:
            with pytest.raises(FaceDatabaseError, match="read-only|readonly|cannot"):
                db.add_embeddings("b", random_unit(1, 1))
            assert db.names() == ["a"]
    finally:
        path.chmod(0o600)


def test_distances_helper():
    m = random_unit(5)
    e = random_unit(1, 9)[0]
    np.testing.assert_allclose(distances(m, e), np.linalg.norm(m - e, axis=1), atol=1e-6)
    np.testing.assert_allclose(distances(m, e, "cosine"), 1 - m @ e, atol=1e-6)
    np.testing.assert_allclose(distances(m, e, "cosine"), distances(m, e) ** 2 / 2, atol=1e-6)


# --------------------------------------------------------------------------- killed during an enrol

_ENROL_SCRIPT = """
import sys
from fr_utils.database import FaceDatabase
with FaceDatabase(sys.argv[1]) as db:
    db.enroll("Bulk", sys.argv[2], batch_size=int(sys.argv[3]))
print("finished", flush=True)
"""


@pytest.mark.slow
def test_killed_during_a_bulk_enrol_keeps_every_committed_batch(tmp_path, facenet, cast):
    """SIGKILL a real process in the middle of enrolling 48 photos, reading the file meanwhile."""
    photos = tmp_path / "bulk"
    photos.mkdir()
    cast_photos = [*OBAMA, BIDEN, HOPPER, COLLINS]
    for i in range(48):  # 48 distinct files: each cast photo with one pixel changed
        img = np.asarray(Image.open(cast_photos[i % len(cast_photos)]).convert("RGB")).copy()
        img[0, 0] = (i * 5) % 256
        Image.fromarray(img).save(photos / f"photo_{i:02d}.png")
    path = tmp_path / "door.db"
    with FaceDatabase(path, facenet) as db:
        db.add_embeddings("Grace_Hopper", cast["Grace_Hopper_0001"])
    batch = 8
    proc = subprocess.Popen([sys.executable, "-c", _ENROL_SCRIPT, str(path), str(photos), str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        counts = []
        with FaceDatabase(path, create=False) as reader:  # another process reads while it writes
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and proc.poll() is None:
                people = {p["name"]: p["embeddings"] for p in reader.people()}
                counts.append(people.get("Bulk", 0))
                if counts[-1] >= batch:
                    break
                time.sleep(0.05)
        assert proc.poll() is None, f"the enrol ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with FaceDatabase(path, facenet) as db:
        kept = len(db.embeddings("Bulk"))
        assert kept % batch == 0 and batch <= kept < 48, kept
        np.testing.assert_array_equal(db.embeddings("Grace_Hopper")[0], cast["Grace_Hopper_0001"])
        assert db.verify(HOPPER, "Grace_Hopper")[1]
        # Enrolling the folder again finishes the job: the photos already stored are skipped.
        with warnings.catch_warnings():
            warnings.simplefilter("error", SkippedImagesWarning)
            warnings.simplefilter("ignore", SimilarFaceWarning)  # "Bulk" holds Grace Hopper's photo, rightly warned
            assert db.enroll("Bulk", photos) == 48 - kept
        assert len(db.embeddings("Bulk")) == 48


# --------------------------------------------------------------------------- issue #18: attacks and faults


def test_zero_non_unit_and_non_finite_embeddings_are_refused(tmp_path):
    """A zero vector is at distance 1 from every face: it would open the door to anyone as 'Mallory'."""
    path = tmp_path / "f.db"
    with FaceDatabase(path) as db:  # the bundled model's identity comes from its manifest: no TensorFlow
        db.add_embeddings("Alice", random_unit(1, 3))
        bad = {"norm 0": np.zeros(128), "norm 0.5": random_unit(1, 4)[0] * 0.5, "norm 3": random_unit(1, 5)[0] * 3,
               "NaN": np.full(128, np.nan), "infinity": np.r_[np.inf, np.zeros(127)]}
        for why, vector in bad.items():
            with pytest.raises(ValueError, match=why if why in ("NaN", "infinity") else f"unit vectors.*{why}"):
                db.add_embeddings("Mallory", vector)
            with pytest.raises(ValueError, match="unit|finite"):
                db.nearest(vector)
        with pytest.raises(ValueError, match=r"shape \(k, 128\)"):
            db.add_embeddings("Mallory", random_unit(1)[:, :64])
        with pytest.raises(ValueError, match="row 1 has norm 0"):  # one bad row refuses the whole call
            db.add_embeddings("Mallory", np.vstack([random_unit(1, 6), np.zeros((1, 128))]))
        assert db.names() == ["Alice"]
        stranger = random_unit(1, 7)[0]
        assert db.nearest(stranger)[0][1] > db.threshold  # a stranger stays a stranger
    # a zero vector written behind the library's back is refused at search time, naming the person
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO people (name, enrolled) VALUES ('Mallory', 'now')")
        conn.execute("INSERT INTO embeddings (person_id, vector, added) SELECT id, ?, 'now' FROM people "
                     "WHERE name = 'Mallory'", (np.zeros(128, "<f4").tobytes(),))
    conn.close()
    with FaceDatabase(path) as db:
        with pytest.raises(FaceDatabaseError, match="'Mallory' is not a unit vector.*altered"):
            db.nearest(random_unit(1, 7)[0])
        with pytest.raises(FaceDatabaseError, match="'Mallory' is not a unit vector"):
            db.distance(random_unit(1, 7)[0], "Mallory")


def test_a_photo_matching_another_person_warns_and_strict_refuses(door, cast):
    """Enrolling Grace Hopper's photo as Barack Obama: her face would open the door as both."""
    with pytest.warns(SimilarFaceWarning, match=r"'Barack_Obama'.*Grace_Hopper_0001.jpg matches 'Grace_Hopper' "
                                                r"\(distance 0\.\d+ < threshold") as record:
        assert door.enroll("Barack_Obama", HOPPER) == 1
    matches = [m for w in record if isinstance(w.message, SimilarFaceWarning) for m in w.message.matches]
    assert [(src, other) for src, other, _ in matches] == [(str(HOPPER), "Grace_Hopper")]
    before = len(door.embeddings("Joseph_Biden"))
    with pytest.raises(EnrolmentRefused, match="refused \\(strict\\).*Grace_Hopper_0001.jpg matches '(Barack_Obama|Grace_Hopper)'"):
        door.enroll("Joseph_Biden", HOPPER, strict=True)
    assert len(door.embeddings("Joseph_Biden")) == before  # nothing stored
    with warnings.catch_warnings():  # another photo of the same person: no warning
        warnings.simplefilter("error")
        assert door.enroll("Barack_Obama", OBAMA[1]) == 1
        assert door.enroll("Eileen_Collins", COLLINS, strict=True) == 1


_CONCURRENT_SCRIPT = """
import os, sys, time
import numpy as np
from fr_utils.database import FaceDatabase
path, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.001)
added = 0
with FaceDatabase(path) as db:
    for round_ in range(3):  # the same 6 people, 3 photos each, again and again
        for i in range(6):
            v = np.random.default_rng(i).normal(size=(3, 128))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            added += db.add_embeddings(f"person_{i}", v, digests=[f"photo-{i}-{j}" for j in range(3)])
print(added)
"""


def test_concurrent_enrolments_store_each_photo_once(tmp_path):
    """Four processes enrol the same photos into a file none has created yet, started at once."""
    path, go = tmp_path / "race.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_SCRIPT, str(path), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(1.0)  # let them import
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert sum(int(out.split()[-1]) for out, _ in results) == 18  # each photo added by exactly one process
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 18
        assert conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 6
        assert conn.execute("SELECT COUNT(DISTINCT person_id || image_sha256) FROM embeddings").fetchone()[0] == 18
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # the constraint, not only the check
            conn.execute("INSERT INTO embeddings (person_id, vector, image_sha256, added) "
                         "SELECT person_id, vector, image_sha256, added FROM embeddings LIMIT 1")
    conn.close()


def _as_another_user(tmp_path, action) -> tuple[object, str]:
    """Run ``action()`` in a forked child as the user nobody (when we are root; else as ourselves,
    the permissions already apply). Returns (its result, its stdout and stderr)."""
    import json
    import locale  # noqa: F401  (imported now: nobody cannot read the interpreter's files under /root)
    import traceback  # noqa: F401
    from fr_utils.door import build_parser

    build_parser()  # argparse's lazy imports (gettext, locale) happen here, as root
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.dup2(write, 1)
            os.dup2(write, 2)
            sys.stdout = sys.stderr = open(write, "w", buffering=1, closefd=False)  # pytest captures sys.stdout
            if ROOT_USER:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = action()
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(1, ("\nRESULT " + json.dumps(result) + "\n").encode())
            code = 0
        except BaseException as err:  # report anything to the parent
            os.write(2, f"\nCHILD FAILED: {type(err).__name__}: {err}\n".encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        output = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return json.loads(output.rsplit("RESULT ", 1)[1]), output


@pytest.fixture
def shared_tmp():
    """A folder under /tmp that another user can reach (pytest's tmp_path is under a 0700 folder)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="facedoor-ro-"))
    folder.chmod(0o755)
    yield folder
    for sub in folder.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(folder)


def test_read_only_file_or_folder_still_lists_and_verifies(shared_tmp):
    """As a user who may not write the file or its folder: list, verify and identify work; remove says why not."""
    from fr_utils.door import main

    tmp_path = shared_tmp
    probe = random_unit(1, 11)[0]
    for case in ("file", "folder"):
        folder = tmp_path / case
        folder.mkdir()
        path = folder / "faces.db"
        with FaceDatabase(path) as db:
            db.add_embeddings("Alice", random_unit(1, 11))
            db.add_embeddings("Bob", random_unit(1, 12))
        if case == "file":
            folder.chmod(0o777)  # the folder is writable (SQLite may make its -shm file), the file is not
            path.chmod(0o444)
        else:
            path.chmod(0o644)
            folder.chmod(0o555)  # the file may be writable by its owner, but nobody can write in the folder
        before = sha(path)

        def action():
            with FaceDatabase(path, create=False) as db:
                out = {"read_only": db.read_only, "names": db.names(), "nearest": db.nearest(probe)[0][0],
                       "distance": db.distance(probe, "Alice")}
            out["list"] = main(["--db", str(path), "list"])
            out["remove"] = main(["--db", str(path), "remove", "Bob"])
            return out

        try:
            result, output = _as_another_user(tmp_path, action)
        finally:
            folder.chmod(0o755)
            path.chmod(0o644)
        assert result["read_only"] and result["names"] == ["Alice", "Bob"], output
        assert result["nearest"] == "Alice" and result["distance"] == pytest.approx(0.0, abs=1e-5)
        assert result["list"] == 0 and "2 people, 2 photos" in output, output
        assert result["remove"] == 3 and "opened read-only" in output and str(path) in output, output
        assert sha(path) == before
        with FaceDatabase(path, read_only=True) as db:  # asked for explicitly, as the owner
            with pytest.raises(FaceDatabaseError, match="read-only"):
                db.remove("Bob")
            assert db.names() == ["Alice", "Bob"]


def test_damaged_file_is_never_written(tmp_path):
    """One 4 KiB page overwritten with noise: reads may fail, and every write is refused, untouched."""
    from fr_utils.door import main

    path = tmp_path / "damaged.db"
    with FaceDatabase(path) as db:
        for i in range(60):
            db.add_embeddings(f"person {i:02d}", random_unit(4, i))
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    page = pages // 2
    data[page * 4096 : (page + 1) * 4096] = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    before = sha(path)
    for name in ("person 00", "person 30", "person 59"):
        with pytest.raises(FaceDatabaseError, match="damaged") as err:
            with FaceDatabase(path) as db:
                db.remove(name)
        assert str(path) in str(err.value)
        assert main(["--db", str(path), "remove", name]) == 3
    with pytest.raises(FaceDatabaseError, match="damaged"):
        with FaceDatabase(path) as db:
            db.add_embeddings("intruder", random_unit(1))
    assert sha(path) == before


def test_only_enrol_initialises_and_only_a_new_empty_file(tmp_path, capsys):
    from fr_utils.door import main

    foreign = tmp_path / "other_program.db"  # an SQLite file of another program, without tables yet
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    conn.close()
    before = sha(foreign)
    assert main(["--db", str(foreign), "list"]) == 3
    assert "another application" in capsys.readouterr().err
    with pytest.raises(FaceDatabaseError, match="another application"):
        FaceDatabase(foreign).add_embeddings("a", random_unit(1))
    assert sha(foreign) == before and not Path(f"{foreign}-wal").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["--db", str(empty), "list"]) == 3
    assert "empty (0 bytes)" in capsys.readouterr().err
    assert empty.stat().st_size == 0
    with FaceDatabase(empty) as db:  # what enrol does: a new, empty file is initialised
        db.add_embeddings("a", random_unit(1))
    assert main(["--db", str(empty), "list"]) == 0


def test_names_are_normalised_and_invisible_characters_refused(tmp_path):
    nfc, nfd = "Jos\u00e9", "Jose\u0301"
    assert nfc != nfd and check_name(nfd) == nfc
    for name, what in [("Ann\u200bLee", "ZERO WIDTH SPACE"), ("Ann\u202eeeL", "RIGHT-TO-LEFT OVERRIDE"),
                       ("Ann\u2066Lee", "LEFT-TO-RIGHT ISOLATE"), ("Ann\u00a0Lee", "NO-BREAK SPACE"),
                       ("Ann\u00adLee", "SOFT HYPHEN"), ("Ann\ue000", "private-use"), ("Ann\u2028Lee", "LINE SEPARATOR")]:
        with pytest.raises(ValueError, match=f"must not contain .*{what}|{what}.*at position"):
            check_name(name)
    assert name_skeleton("Barack_Obama") == name_skeleton("B\u0430rack Obama") == name_skeleton("barack_0bama")
    with FaceDatabase(tmp_path / "names.db") as db:
        db.add_embeddings(nfd, random_unit(1, 1))
        assert db.names() == [nfc]
        assert nfd in db and nfc in db
        assert db.add_embeddings(nfc, random_unit(1, 2)) == 1 and len(db) == 1  # the same person
        db.add_embeddings("Barack_Obama", random_unit(1, 3))
        cyrillic = "B\u0430rack_Obama"  # a Cyrillic "а"
        with pytest.warns(SimilarNameWarning, match="looks like 'Barack_Obama'"):
            db.add_embeddings(cyrillic, random_unit(1, 4))
        with pytest.raises(EnrolmentRefused, match="looks like 'Barack_Obama'"):
            db.add_embeddings("barack_obama", random_unit(1, 5), strict=True)
        assert "barack_obama" not in db
        with pytest.warns(SimilarNameWarning, match="looks like 'Barack_Obama'"):
            db.rename(cyrillic, "Barack Obama")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            db.add_embeddings("Barack_Obama", random_unit(1, 6))  # an existing person: no warning
        db.remove(nfd)
        assert nfc not in db


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_a_removed_person_leaves_no_bytes_behind(tmp_path):
    path = tmp_path / "private.db"
    secret_name = "Zebulon_Quartermaine"
    secret = random_unit(2, 99)
    with FaceDatabase(path) as db, FaceDatabase(path, create=False) as reader:
        assert db._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1  # asked for, not the platform's default
        for i in range(5):
            db.add_embeddings(f"person {i}", random_unit(3, i))
        db.add_embeddings(secret_name, secret, sources=["/photos/zebulon.jpg"] * 2)
        assert secret_name in reader.names()  # another connection has read the file meanwhile
        traces = [secret_name.encode(), b"zebulon.jpg", secret[0].astype("<f4").tobytes()[:32],
                  secret[1].astype("<f4").tobytes()[:32]]
        assert all(t in _file_bytes(path) for t in traces)  # the test can see them before
        assert db.remove(secret_name) == 2
        left = _file_bytes(path)
        assert [t for t in traces if t in left] == []
        assert reader.names() == [f"person {i}" for i in range(5)]
    assert [t for t in traces if t in _file_bytes(path)] == []


def test_the_gallery_kept_after_own_writes_equals_the_file(tmp_path):
    """A bulk enrol checks each batch against everyone: the in-memory gallery is extended after
    this connection's own writes (not read again), and must be what the file holds."""
    path = tmp_path / "gallery.db"
    with FaceDatabase(path) as db, FaceDatabase(path) as other:
        db._check_model()  # the first write records the model (and drops the gallery)
        for step, (name, n) in enumerate([("m", 2), ("c", 1), ("x", 3), ("c", 2), ("a", 1), ("m", 1), ("é", 2)]):
            db._gallery()  # read (and cached), as a search or a bulk enrol's check does
            assert db.add_embeddings(name, random_unit(n, step), digests=[f"{name}{step}-{i}" for i in range(n)]) == n
            assert db._cache is not None  # extended, not dropped
            kept = db._gallery()
            with FaceDatabase(path) as fresh:
                read = fresh._gallery()
            assert kept[0] == read[0] and np.array_equal(kept[1], read[1])
            np.testing.assert_array_equal(kept[2], read[2])
            np.testing.assert_allclose(kept[3], read[3])
        assert db.add_embeddings("a", random_unit(1, 1), digests=["a4-0"]) == 0  # already there: nothing added
        other.add_embeddings("z", random_unit(1, 50))  # another connection writes: the gallery is read again
        assert db.nearest(random_unit(1, 50)[0])[0][0] == "z"


def _unit(*head: float) -> np.ndarray:
    """A (128,) vector starting with ``head`` and zeros after: exactly representable when head is."""
    return np.r_[np.asarray(head, dtype=np.float64), np.zeros(128 - len(head))]


def test_a_distance_equal_to_the_threshold_is_not_a_match(tmp_path, monkeypatch):
    """One rule everywhere (fr_utils.matching.is_match): a match is distance < threshold, strictly."""
    path = tmp_path / "edge.db"
    alice, probe = _unit(0.6, 0.8), _unit(0.8, 0.6)  # distance sqrt(0.08) = 0.283 (as floats compute it)
    with FaceDatabase(path) as db:
        db.add_embeddings("Alice", alice)
        edge = db.distance(probe, "Alice")
    assert edge == pytest.approx(np.sqrt(0.08), abs=1e-6)
    monkeypatch.setattr(FaceDatabase, "encode", lambda self, image: probe)  # the photo "is" the probe
    for threshold, expected in [(edge, False), (float(np.nextafter(edge, 2.0)), True)]:
        with FaceDatabase(path, threshold=threshold) as db:
            assert db.verify("photo.jpg", "Alice") == (edge, expected)
            assert db.identify("photo.jpg") == (("Alice" if expected else None), edge)
            # enrolling the probe's face as Bob is a similar face (the check enroll runs) only when it matches Alice
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                db._check_similar_faces("Bob", probe[None], ["probe.jpg"], strict=False)
            assert [str(w.message) for w in caught if isinstance(w.message, SimilarFaceWarning)] == (
                [f"enrolling 'Bob': 1 photo(s) already match another enrolled person, so that face would open "
                 f"the door as both: probe.jpg matches 'Alice' (distance 0.283 < threshold 0.283). Check the "
                 f"photo and the name"] if expected else [])
