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
)
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
    """Each cast photo's embedding (512,), computed once: {file stem: embedding}."""
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
    v = np.random.default_rng(seed).normal(size=(n, 512))
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
        assert f["embedding"].shape == (512,) and len(f["box"]) == 4
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
        assert info["embedding_size"] == "512" and info["schema_version"] == "1"
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
        door.add_embeddings("x", np.ones((2, 128)))
    with pytest.raises(ValueError, match="finite"):
        door.add_embeddings("x", np.full(512, np.nan))
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
            assert db.enroll("Bulk", photos) == 48 - kept
        assert len(db.embeddings("Bulk")) == 48
