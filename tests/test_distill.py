"""fr_utils.distill (issue #15 item 3): the identity-disjoint split, the training crops, a tiny
run on real LFW photos that checkpoints and resumes exactly, and the export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fr_utils import distill
from fr_utils.errors import DistillError


@pytest.fixture(scope="module")
def pairs_file(protocol_dir) -> Path:
    return protocol_dir / "pairs.txt"


def _people(paths) -> set[str]:
    return {p.split("/")[0] for p in paths}


def test_split_is_identity_disjoint(lfw_dir, pairs_file):
    from fr_utils.evaluate import read_pairs

    split = distill.make_split(lfw_dir, pairs_file, "3,5,8")
    pairs = read_pairs(pairs_file, lfw_dir)
    held = {q.parent.name for p in pairs if p.fold + 1 in (3, 5, 8) for q in (p.path_a, p.path_b)}
    kept = {q.parent.name for p in pairs if p.fold + 1 not in (3, 5, 8) for q in (p.path_a, p.path_b)}
    assert split.held_out_people == held
    assert not _people(split.train_files) & held
    assert kept <= _people(split.train_files)            # the other folds' people train
    everyone = {d.name for d in lfw_dir.iterdir() if d.is_dir()}
    assert _people(split.train_files) == everyone - held  # so do the people in no pair
    assert _people(split.eval_files) <= held
    assert len(split.same) == 3 * 600 and set(split.fold) == {3, 5, 8}
    assert split.same.sum() == 900
    images = sum(len(list((lfw_dir / name).glob("*.jpg"))) for name in held)
    assert len(split.train_files) + images == len(list(lfw_dir.glob("*/*.jpg")))
    summary = split.summary()
    assert summary["held_out_folds"] == [3, 5, 8] and summary["train_images"] == len(split.train_files)
    other = distill.make_split(lfw_dir, pairs_file, "1,2").summary()
    assert other["train_files_sha256"] != summary["train_files_sha256"]


@pytest.mark.parametrize("folds, message", [("0", "1..10"), ("3,11", "1..10"), ("", "at least one"),
                                            ("a,b", "'a,b'"), (",".join(map(str, range(1, 11))), "every fold")])
def test_bad_held_out_folds_are_named(lfw_dir, pairs_file, folds, message):
    with pytest.raises(DistillError, match=message):
        distill.make_split(lfw_dir, pairs_file, folds)


def test_window_of_scale_one_is_the_door_crop(lfw_dir):
    """The training path (context crop, then crop_and_resize of the unjittered window) shows
    the student what the door pipeline's crop at 96 x 96 shows it."""
    import tensorflow as tf

    from fr_utils.embedding_cache import choose_face, detect_files
    from fr_utils.images import load_image

    files = sorted(lfw_dir.glob("A*/*_0001.jpg"))[:4]
    for path, faces in zip(files, detect_files(files, min_confidence=distill.MIN_CONFIDENCE, progress=False)):
        img = load_image(path)
        face = choose_face(faces, img.shape, distill.FACE_RULE)
        ctx, inner = distill.context_crop(img, face)
        box = distill.window_boxes(inner[None], np.ones(1), np.zeros((1, 2)))
        seen = tf.image.crop_and_resize(ctx[None].astype(np.float32), box, [0], (96, 96)).numpy()[0]
        door = distill.door_crop(img, face).astype(np.float32)
        assert np.abs(seen - door).mean() < 0.5, path             # measured below 1e-4 grey levels
        assert np.abs(np.roll(door, 3, axis=1) - door).mean() > 4  # a 3-px shift is far larger
        shifted = distill.window_boxes(inner[None], np.ones(1), np.array([[0.0, 0.05]]))
        moved = tf.image.crop_and_resize(ctx[None].astype(np.float32), shifted, [0], (96, 96)).numpy()[0]
        assert np.abs(moved[:, :-5] - door[:, 5:]).mean() < 3.0   # 5 % of 96 px: ~5 px to the right


@pytest.fixture(scope="module")
def teacher():
    from fr_utils.weights import load_facenet

    return load_facenet(name=distill.TEACHER)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, lfw_dir, pairs_file, teacher) -> Path:
    work = tmp_path_factory.mktemp("distill") / "prepared-run"
    summary = distill.prepare(work, lfw_dir, pairs_file, "3,5,8", limit=6, teacher=teacher, progress=False)
    assert summary["train_images"] == 6 and summary["eval_pairs"] == 3 * 2 * 6  # 6 same, 6 different a fold
    return work


def test_prepare_caches_unit_targets_of_crop_and_mirror(prepared, lfw_dir, pairs_file):
    data = distill.load_prepared(prepared)
    assert data.ctx.shape == (len(data.index), distill.CONTEXT_SIZE, distill.CONTEXT_SIZE, 3)
    assert len(data.index) >= 5
    assert np.allclose(np.linalg.norm(data.targets, axis=-1), 1, atol=1e-5)
    cos = (data.targets[:, 0] * data.targets[:, 1]).sum(-1)  # a face and its mirror: close, not equal
    assert (cos > 0.8).all() and (cos < 0.9999).all()
    with np.load(prepared / "prepared" / "eval.npz") as z:
        assert z["crops"].shape == (len(data.meta["eval_files"]), 96, 96, 3) and z["has_face"].all()
        assert (z["boxes"][:, 2:] > 40).all()  # every held-out photo's face box was kept
    # a second prepare of the same split finds it complete and computes nothing
    assert distill.prepare(prepared, lfw_dir, pairs_file, "3,5,8", limit=6, teacher=False)["train_images"] == 6


def test_targets_are_the_teachers_embeddings_of_the_door_crop(prepared, lfw_dir, teacher):
    """The cached targets equal what the LFW pipeline (embed_files: central face, confidence
    0.8, the door's box crop) gives for the same photos, normalised; the mirrored ones its flip half."""
    from fr_utils.embedding_cache import embed_files

    data = distill.load_prepared(prepared)
    files = [lfw_dir / data.meta["train_files"][i] for i in data.index]
    emb = embed_files(files, teacher, flip=True, face="central", min_confidence=0.8, progress=False)
    np.testing.assert_allclose(data.targets[:, 0], distill._unit(emb[:, :128]), atol=1e-4)
    np.testing.assert_allclose(data.targets[:, 1], distill._unit(emb[:, 128:]), atol=1e-4)


def test_status_and_command_line(prepared, capsys):
    res = distill.status(prepared)
    assert res["prepared_chunks"] == "1/1" and res["prepare_complete"] and res["eval_crops"]
    assert distill.main(["status", "--workdir", str(prepared)]) == 0
    assert json.loads(capsys.readouterr().out)["split"]["held_out_folds"] == [3, 5, 8]
    assert distill.main(["prepare", "--workdir", str(prepared), "--held-out", "0,4"]) == 2
    assert "held-out folds [0, 4]" in capsys.readouterr().err
    assert distill.main(["train", "--workdir", str(prepared / "missing"), "--epochs", "1"]) == 2
    assert "prepare" in capsys.readouterr().err


def test_prepare_wants_the_float32_teacher(tmp_path, lfw_dir, pairs_file, monkeypatch):
    monkeypatch.setenv("FR_ENCODER_PRECISION", "bfloat16")
    with pytest.raises(DistillError, match="FR_ENCODER_PRECISION"):
        distill.prepare(tmp_path, lfw_dir, pairs_file, limit=2, progress=False)
    assert not (tmp_path / "prepared").exists()


def test_prepare_refuses_another_split(prepared, lfw_dir, pairs_file):
    with pytest.raises(DistillError, match="another split"):
        distill.prepare(prepared, lfw_dir, pairs_file, "1,2", limit=6, progress=False)


def test_train_checkpoints_and_resumes_exactly(prepared, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for folder in (straight, resumed):
        shutil.copytree(prepared, folder)
    quiet = lambda s: None  # noqa: E731
    a = distill.train(straight, epochs=5, batch_size=4, max_steps=2, log=quiet)
    b = distill.train(resumed, epochs=5, batch_size=4, max_steps=1, log=quiet)
    assert b["global_step"] == 1 and (resumed / "checkpoints" / b["checkpoint"]["weights"]).is_file()
    assert distill.read_state(resumed)["global_step"] == 1
    b = distill.train(resumed, epochs=5, batch_size=4, max_steps=1, log=quiet)
    for key in ("epoch", "step", "global_step", "loss_sum", "loss_count", "seed", "lr"):
        assert a[key] == b[key], key
    assert a["epoch"] == 1 and len(a["history"]) == len(b["history"]) == 1  # one epoch of 1 step, evaluated
    assert a["history"][0]["held_out_accuracy"] == b["history"][0]["held_out_accuracy"]
    ma, _ = distill.student_from_checkpoint(straight)
    mb, _ = distill.student_from_checkpoint(resumed)
    assert distill.read_state(prepared) is None  # the copies trained, not the original
    for wa, wb in zip(ma.get_weights(), mb.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-5)
    # the old checkpoint is gone, the new one named in state.json
    assert len(list((resumed / "checkpoints").glob("*.weights.h5"))) == 1
    with pytest.raises(DistillError, match="batch_size 4"):
        distill.train(resumed, epochs=5, batch_size=8, max_steps=1, log=quiet)


def test_train_without_prepare_is_refused(tmp_path):
    with pytest.raises(DistillError, match="prepare"):
        distill.train(tmp_path / "nothing", epochs=1)


def test_export_loads_and_gives_unit_vectors(prepared, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(prepared, run)
    distill.train(run, epochs=1, batch_size=4, max_steps=1, log=lambda s: None)
    figures = distill.evaluate(run, speed=False, progress=False)
    assert figures["teacher"]["accuracy"] >= 0.9  # 36 held-out pairs: the teacher scores 0.99 on LFW
    assert 0 <= figures["student"]["accuracy"] <= 1 and figures["student"]["pairs"] == 36
    again = distill.evaluate(run, speed=False, teacher_accuracy=False)  # the teacher's figure is kept
    assert again["teacher"] == figures["teacher"] and again["global_step"] == 1
    manifest_path = distill.export(run, tmp_path / "weights", command="test")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["figures"]["teacher"] == figures["teacher"] and manifest["global_step"] == 1
    assert manifest["split"]["held_out_folds"] == [3, 5, 8] and manifest["seed"] == 0
    assert manifest["preprocessing"] == distill.PREPROCESSING and manifest["teacher"] == distill.TEACHER
    model, loaded = distill.load_student(tmp_path / "weights")
    assert loaded["weights_sha256"] == manifest["weights_sha256"]
    with np.load(run / "prepared" / "eval.npz") as z:
        crops = z["crops"][z["has_face"]]
    emb = np.asarray(model(distill.student_input(crops), training=False))
    assert emb.shape == (len(crops), 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.abs(emb[0] - emb[1]).max() > 1e-3  # two faces, two embeddings
    # the checkpoint's student gives the same embeddings
    ckpt, _ = distill.student_from_checkpoint(run)
    np.testing.assert_allclose(np.asarray(ckpt(distill.student_input(crops[:4]), training=False)), emb[:4],
                               atol=1e-5)
    weights = tmp_path / "weights" / f"{distill.EXPORT_NAME}.weights.h5"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DistillError, match="sha256"):
        distill.load_student(tmp_path / "weights")


# --------------------------------------------------------------------------- the shipped student

REPO = Path(__file__).resolve().parents[1]


def test_the_student_is_looked_for_where_weights_are_and_its_absence_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with pytest.raises(DistillError, match=r"openface_nn4_small2_distilled.*empty.*distill export"):
        distill.load_student()


def test_the_shipped_student_encodes_the_cast_like_its_teacher(monkeypatch):
    """weights/ holds the trained student (committed): found through the weights' search path,
    hash-checked, its manifest telling the split and its held-out figures; through the door's
    own pipeline (img_to_encoding: MTCNN, the crop at 96 x 96, RGB / 255) it orders the sample
    cast's pairs as the teacher does: every genuine pair nearer than every impostor pair."""
    import itertools

    from fr_utils.data import people_dir
    from fr_utils.encoding import img_to_encoding

    monkeypatch.setenv("FR_WEIGHTS_DIR", str(REPO / "weights"))
    model, manifest = distill.load_student()
    assert manifest["split"]["held_out_folds"] == list(distill.HELD_OUT)
    assert manifest["teacher"] == distill.TEACHER and manifest["preprocessing"] == "rgb/255"
    student = manifest["figures"]["student"]
    assert student["pairs"] == 1800 and 0.5 < student["accuracy"] <= 1
    assert model.trainable is False and model.input_shape[1:] == (96, 96, 3)

    photos = sorted(people_dir().glob("*/*.jpg"))
    assert len({p.parent.name for p in photos}) >= 3 and len(photos) > len({p.parent.name for p in photos})
    emb = np.concatenate([img_to_encoding(str(p), model) for p in photos])
    assert emb.shape == (len(photos), 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    genuine, impostor = [], []
    for i, j in itertools.combinations(range(len(photos)), 2):
        d = float(np.linalg.norm(emb[i] - emb[j]))
        (genuine if photos[i].parent == photos[j].parent else impostor).append(d)
    assert max(genuine) < min(impostor), (genuine, impostor)
