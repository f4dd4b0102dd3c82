"""fr_utils.train, fr_utils.triplet_mining and fr_utils.datasets: the batched semi-hard
triplet loss against hand-worked and NumPy references, real training runs on
scikit-learn's digits (and ORL when $FR_DATASETS is set), the files they write,
bad input, and the train_embedding notebook through nbgrader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils.datasets import DatasetError, load_digits, load_folder
from fr_utils.train import (
    TrainConfig,
    embedding_head,
    identity_batch,
    main,
    small_cnn,
    train,
    verification_accuracy,
    verification_pairs,
)
from fr_utils.triplet_mining import active_triplet_fraction, semi_hard_triplet_loss, semi_hard_triplets
from nbgrader_helpers import Course, nbgrader_meta


# -- the loss --------------------------------------------------------------------------

# Four 1-D points, two identities, margin 0.2.  Squared distances, worked by hand:
#   d(0,1)=0.09  d(0,2)=0.2025  d(0,3)=1.0  d(1,2)=0.0225  d(1,3)=0.49  d(2,3)=0.3025
# pair (0,1): band (0.09, 0.29) holds negative 2 (0.2025), not 3 (1.0)   -> (0,1,2)
# pair (1,0): negative 2 is hard (0.0225 < 0.09), 3 is easy (0.49)      -> none
# pair (2,3): band (0.3025, 0.5025): negatives 0 (0.2025), 1 (0.0225) hard -> none
# pair (3,2): negative 0 is easy (1.0), 1 is in the band (0.49)          -> (3,2,1)
HAND_POINTS = np.array([[0.0], [0.3], [0.45], [1.0]], dtype=np.float32)
HAND_LABELS = np.array([0, 0, 1, 1])


def test_semi_hard_mining_picks_the_hand_worked_triplets():
    mask = np.asarray(semi_hard_triplets(HAND_LABELS, HAND_POINTS, 0.2))
    assert mask.shape == (4, 4, 4)
    assert sorted(map(tuple, np.argwhere(mask).tolist())) == [(0, 1, 2), (3, 2, 1)]


def test_loss_and_active_fraction_on_the_hand_worked_batch():
    # pair (0,1): 0.09 - 0.2025 + 0.2 = 0.0875; pair (3,2): 0.3025 - 0.49 + 0.2 = 0.0125; mean 0.05
    assert float(semi_hard_triplet_loss(HAND_LABELS, HAND_POINTS, 0.2)) == pytest.approx(0.05, abs=1e-6)
    # of the 8 valid triplets, (0,1,2) (1,0,2) (2,3,0) (2,3,1) (3,2,1) have d_ap - d_an + 0.2 > 0
    assert float(active_triplet_fraction(HAND_LABELS, HAND_POINTS, 0.2)) == pytest.approx(5 / 8)


def test_a_pair_with_several_semi_hard_negatives_averages_them():
    # anchor 0 at 0, positive 1 at 0.3 (d_ap 0.09); negatives at 0.32, 0.4, 0.5 (d_an 0.1024, 0.16, 0.25)
    # are all in the band (0.09, 0.29); the other pairs of the batch have none (checked by the mask)
    points = np.array([[0.0], [0.3], [0.32], [0.4], [0.5]], dtype=np.float32)
    labels = np.array([0, 0, 1, 2, 3])
    mask = np.asarray(semi_hard_triplets(labels, points, 0.2))
    assert sorted(map(tuple, np.argwhere(mask).tolist())) == [(0, 1, 2), (0, 1, 3), (0, 1, 4)]
    expected = np.mean([0.09 - d + 0.2 for d in (0.1024, 0.16, 0.25)])
    assert float(semi_hard_triplet_loss(labels, points, 0.2)) == pytest.approx(expected, abs=1e-6)


def _reference_loss(labels: np.ndarray, x: np.ndarray, margin: float) -> float:
    """Straightforward loops: for each anchor-positive pair, the mean of
    d_ap - d_an + margin over its semi-hard negatives; the mean over pairs that have one."""
    x = x.astype(np.float64)
    per_pair = []
    for a in range(len(x)):
        for p in range(len(x)):
            if a == p or labels[a] != labels[p]:
                continue
            d_ap = np.sum((x[a] - x[p]) ** 2)
            losses = []
            for n in range(len(x)):
                d_an = np.sum((x[a] - x[n]) ** 2)
                if labels[n] != labels[a] and d_ap < d_an < d_ap + margin:
                    losses.append(d_ap - d_an + margin)
            if losses:
                per_pair.append(np.mean(losses))
    return float(np.mean(per_pair)) if per_pair else 0.0


@pytest.mark.parametrize("identities, per_identity, dim, margin, spread", [
    (4, 4, 8, 0.2, 1.0), (6, 3, 2, 0.5, 0.5), (3, 8, 32, 1.0, 1.0), (8, 2, 16, 0.1, 1.0),
])
def test_loss_matches_a_numpy_reference_on_random_data(identities, per_identity, dim, margin, spread):
    rng = np.random.default_rng(identities * 100 + dim)
    labels = np.repeat(rng.permutation(identities), per_identity)
    centres = rng.standard_normal((identities, dim))
    x = (centres[labels] + spread * rng.standard_normal((len(labels), dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    want = _reference_loss(labels, x, margin)
    assert want > 0  # the data have semi-hard triplets
    assert float(semi_hard_triplet_loss(labels, x, margin)) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_loss_is_zero_and_finite_without_semi_hard_triplets():
    points = np.array([[0.0, 0.0], [0.0, 0.01], [5.0, 5.0], [5.0, 5.01]], dtype=np.float32)
    assert float(semi_hard_triplet_loss(np.array([0, 0, 1, 1]), points, 0.2)) == 0.0
    assert float(active_triplet_fraction(np.array([0, 0, 1, 1]), points, 0.2)) == 0.0


def test_identity_batch_is_p_identities_by_k_images():
    labels = np.repeat(np.arange(10), [2, 9, 5, 5, 5, 5, 5, 5, 5, 5])
    rows = identity_batch(labels, 4, 3, np.random.default_rng(0))
    groups = labels[rows].reshape(4, 3)
    assert len(set(groups[:, 0])) == 4 and (groups == groups[:, :1]).all()


# -- verification accuracy -------------------------------------------------------------


def test_verification_pairs_are_balanced_and_correct():
    labels = np.repeat(np.arange(5), 4)
    pairs, same = verification_pairs(labels, seed=3)
    assert same.sum() == (~same).sum() == 5 * 6  # every same-identity pair, as many different ones
    assert np.array_equal(labels[pairs[:, 0]] == labels[pairs[:, 1]], same)
    separated = np.eye(5)[labels] + 0.01 * np.random.default_rng(0).standard_normal((20, 5))
    assert verification_accuracy(separated, pairs, same) == 1.0


# -- networks --------------------------------------------------------------------------


def test_networks_give_embeddings_of_length_scale():
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3)).astype("float32")
    out = small_cnn((64, 64, 3), 8, scale=2.5).predict(images, verbose=0)
    assert out.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 2.5, rtol=1e-5)
    head = embedding_head(4, scale=0.5)
    out = head.predict(np.random.default_rng(1).standard_normal((3, 128)).astype("float32"), verbose=0)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 0.5, rtol=1e-5)
    assert all(type(layer).__name__ != "Lambda" for layer in head.layers)


# -- a real training run on the digits -----------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    config = TrainConfig(output=str(out), dataset="digits", dim=16, scale=3.0, epochs=8, seed=0)
    return out, train(config, verbose=0)


def test_training_improves_heldout_accuracy_on_digits(digits_run):
    _, result = digits_run
    history = result.history
    assert history["heldout_accuracy_after"] > history["heldout_accuracy_before"] + 0.05, history["heldout_accuracy"]
    assert history["active_triplets"][-1] < history["active_triplets"][0]
    assert history["data"]["heldout_identities"] == ["7", "8", "9"]


def test_training_writes_model_history_plots_and_gif(digits_run):
    out, result = digits_run
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == list(range(1, 9))
    assert len(history["loss"]) == len(history["active_triplets"]) == 8
    assert len(history["heldout_accuracy"]) == 9  # before training, then after each epoch
    pngs = sorted((out / "clusters").glob("epoch_*.png"))
    assert [p.name for p in pngs] == [f"epoch_{e:03d}.png" for e in range(9)]
    with Image.open(out / "training.gif") as gif:
        assert gif.n_frames == 9


def test_saved_model_reloads_without_custom_objects_and_gives_the_same_embeddings(digits_run):
    import keras

    out, result = digits_run
    images = load_digits().heldout.images[:50].astype("float32")
    reloaded = keras.models.load_model(out / "model.keras")
    want = result.model.predict(images, verbose=0)
    got = reloaded.predict(images, verbose=0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.shape == (50, 16)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 3.0, rtol=1e-5)


# -- bad input ----------------------------------------------------------------------------


def _people(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'}: no such folder"):
        load_folder(tmp_path / "nowhere", 2, 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=f"{tmp_path / 'empty'}: no identity sub-folders"):
        load_folder(tmp_path / "empty", 2, 2)


def test_too_many_identities_asked_names_the_numbers(tmp_path):
    root = _people(tmp_path / "faces", {"a": 2, "b": 3, "c": 2, "d": 2, "solo": 1})
    with pytest.raises(DatasetError, match=r"--n-faces 3 plus --n-eval 2 needs 5 identities .* found 4") as error:
        load_folder(root, 3, 2)
    assert str(root) in str(error.value) and "solo" in str(error.value)


def test_single_image_identities_and_unreadable_images_are_skipped_with_a_count(tmp_path):
    root = _people(tmp_path / "faces", {"s1": 3, "s2": 1, "s3": 2, "s10": 2, "s11": 2})
    (root / "s1" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "s3" / "notes.txt").write_text("who is this")
    with pytest.warns(UserWarning) as caught:
        data = load_folder(root, 2, 2, image_size=12)
    message = str(caught[0].message)
    assert "skipped 1 unreadable image(s)" in message and "broken.jpg" in message
    assert "ignored 1 file(s) that are not images" in message and "notes.txt" in message
    assert "skipped 1 identity with fewer than 2 images, e.g. s2" in message
    assert data.train.names == ["s1", "s3"] and data.heldout.names == ["s10", "s11"]  # natural order
    assert data.train.images.shape == (5, 12, 12, 3) and data.train.labels.tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digits", "--batch-size", "30", "--per-identity", "4"], "--batch-size 30 must be a multiple of --per-identity 4"),
    (["--dataset", "digits", "--batch-size", "64", "--per-identity", "8"], "8 identities per batch, more than --n-faces 7"),
    (["--dataset", "digits", "--n-faces", "8"], "--n-faces 8 plus --n-eval 3 is more than the 10 digits"),
    (["--dataset", "digits", "--dim", "1"], "--dim must be at least 2, got 1"),
    (["--dataset", "digits", "--network", "head"], "needs a folder of faces"),
    (["--dataset", "digits", "--path", "x"], "--path is for folder data sets"),
    ([], "--path DIR is required"),
])
def test_command_line_bad_options_exit_2_with_a_message(tmp_path, capsys, args, message):
    assert main([*args, "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_line_empty_folder_exits_2_naming_it(tmp_path, capsys):
    assert main(["--path", str(tmp_path), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    assert f"error: {tmp_path}: no identity sub-folders" in capsys.readouterr().err


# -- ORL (real faces) --------------------------------------------------------------------------


@pytest.mark.slow
def test_orl_folder_trains_the_cnn_from_pgm_files(orl_dir, tmp_path, capsys):
    args = ["--path", str(orl_dir), "--n-faces", "8", "--n-eval", "4", "--image-size", "32", "--dim", "8",
            "--epochs", "2", "--batch-size", "32", "--output", str(tmp_path), "--quiet"]
    assert main(args) == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["data"]["train_identities"] == 8 and history["data"]["train_images"] == 80
    assert history["data"]["heldout_identities"] == ["s9", "s10", "s11", "s12"]
    assert len(history["heldout_accuracy"]) == 3 and all(0.4 < a <= 1 for a in history["heldout_accuracy"])


@pytest.mark.slow
def test_orl_head_on_the_frozen_encoder(orl_dir, tmp_path):
    import keras

    config = TrainConfig(output=str(tmp_path), path=str(orl_dir), network="head", n_faces=6, n_eval=4,
                         max_per_identity=5, dim=8, epochs=2, batch_size=12, per_identity=2, seed=1)
    history = train(config, verbose=0).history
    assert history["data"]["train_images"] == 30 and history["data"]["heldout_images"] == 20
    assert history["encoder_alone_accuracy"] > 0.9  # the pretrained encoder tells ORL's people apart
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.input_shape == (None, 128) and model.output_shape == (None, 8)  # the default encoder's size


# -- the notebook -----------------------------------------------------------------------------


@pytest.mark.slow
def test_nbgrader_generates_the_student_version_and_it_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    course = Course.create(tmp_path, "train_embedding")
    course.generate_assignment()
    source, release = course.read_source("train_embedding"), course.read_release("train_embedding")
    assert not any(nbgrader_meta(cell).get("grade") for cell in source.cells)  # nothing graded
    assert [cell.source for cell in release.cells] == [cell.source for cell in source.cells]
    assert all(cell.get("outputs", []) == [] for cell in source.cells if cell.cell_type == "code")

    monkeypatch.delenv("FR_DATASETS", raising=False)  # the digits part only: the ORL cell says how to get it
    NotebookClient(release, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(course.release_path("train_embedding").parent)}}).execute()
    printed = "\n".join(out.get("text", "") for cell in release.cells for out in cell.get("outputs", []))
    assert "held-out verification accuracy after 12 epochs" in printed
    assert "ORL not found: set FR_DATASETS" in printed
    gifs = [out for cell in release.cells for out in cell.get("outputs", []) if "image/gif" in out.get("data", {})]
    assert len(gifs) == 1
    nbformat.validate(release)
