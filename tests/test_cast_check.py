"""``python -m fr_utils.cast check DIR`` (issue #14 item 1): the shipped cast passes; broken casts
built in temporary folders from the cast's photos (and LFW when FR_DATASETS is set) get each
problem named, photo by photo, and the documented exit code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fr_utils import castcheck
from fr_utils.castcheck import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_WARNINGS, check_cast, identifier_problem
from fr_utils.data import cast_dir, other_photo, sample_cast
from fr_utils.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent


def _cast(root: Path, people: dict[str, list[Path]]) -> Path:
    """root/<name>/<photo name> copies of the photos given."""
    for name, photos in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy(photo, root / name / Path(photo).name)
    return root


# --------------------------------------------------------------------------- fast


@pytest.mark.parametrize("name, fine", [
    ("Barack_Obama", True), ("Ada", True), ("x1", True),
    ("Ada Lovelace", False), ("Jean-Luc", False), ("1st_person", False), ("class", False),
    ("José", False), ("_hidden", False),
])
def test_names_must_be_identifiers(name, fine):
    why = identifier_problem(name)
    assert (why is None) == fine, why
    if not fine:
        assert repr(name) in why and "rename the folder" in why


def test_identifier_messages_say_why_and_suggest_a_name():
    assert "it holds ' '" in identifier_problem("Ada Lovelace") and "e.g. 'Ada_Lovelace'" in identifier_problem("Ada Lovelace")
    assert "starts with a digit" in identifier_problem("2pac")
    assert "a Python keyword" in identifier_problem("class")


def test_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert castcheck.main(["check", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert f"{tmp_path / 'nowhere'}: not a folder" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="nowhere: not a folder"):
        check_cast(tmp_path / "nowhere")
    assert castcheck.main(["check", "--min-face", "big"]) == EXIT_USAGE


def test_too_few_people_and_nobody_twice_are_named_before_any_photo_is_read(tmp_path):
    cast = sample_cast()
    root = _cast(tmp_path, {name: photos[:1] for name, photos in list(cast.items())[:3]})
    (root / "Nobody").mkdir()
    (root / "Nobody" / "notes.txt").write_text("no photo here")
    report = check_cast(root, faces=False)
    assert any(f"{root}: 3 people with photos, at least 4 are needed" in p for p in report.problems)
    assert any(f"{root}: nobody has 2 or more photos" in p for p in report.problems)
    assert any(f"{root / 'Nobody'}: no photos in this person's folder" in p for p in report.problems)
    assert len(report.problems) == 3 and report.exit_code == EXIT_PROBLEMS


# --------------------------------------------------------------------------- with the detector and encoder


def test_python_m_fr_utils_cast_runs_the_command_from_the_data_folder(tmp_path):
    """fr_utils/cast/ is package data; its __main__.py makes ``python -m fr_utils.cast`` the command."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "fr_utils.cast", "check", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == EXIT_USAGE and f"{tmp_path / 'nowhere'}: not a folder" in out.stderr
    help_text = subprocess.run([sys.executable, "-m", "fr_utils.cast", "check", "--help"], capture_output=True,
                               text=True, cwd=tmp_path, env=env, timeout=120).stdout
    assert "exit codes:" in help_text and "usable, with warnings" in help_text


@pytest.mark.slow
def test_the_shipped_cast_passes(capsys):
    assert castcheck.main(["check"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "problem" not in out and "warning" not in out
    assert out.strip().endswith("the cast is usable")
    assert f"{cast_dir() / 'people'}: 4 people, 6 photos; same person" in out
    from fr_utils.matching import default_threshold

    assert f"threshold {default_threshold():.3f}" in out  # the default encoder's, from its manifest


@pytest.mark.slow
def test_every_photo_problem_is_named(tmp_path, capsys):
    cast = sample_cast()
    root = tmp_path / "cast"
    _cast(root, {"Barack_Obama": cast["Barack_Obama"][:2], "Grace_Hopper": cast["Grace_Hopper"],
                 "Ada Lovelace": cast["Eileen_Collins"],  # not an identifier
                 "Joseph_Biden": [other_photo("two_faces_hopper_collins.jpg"), other_photo("no_face_coffee.jpg")],
                 "bob": cast["Barack_Obama"][2:], "Bob": []})
    (root / "Bob" / "broken.jpg").write_text("not a picture")
    (root / "Eve").mkdir()  # a person without photos
    small = Image.open(cast["Joseph_Biden"][0])
    small.resize((small.width // 3, small.height // 3)).save(root / "bob" / "small_face.jpg")
    shutil.copy(cast["Grace_Hopper"][0], root / "stray.jpg")

    code = castcheck.main(["check", str(root)])
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    expected = [
        f"{root / 'Ada Lovelace'}: the name 'Ada Lovelace' is not usable as an identifier",
        f"{root}: the names 'Bob', 'bob' differ only in case",
        f"{root / 'Bob' / 'broken.jpg'}: not an image file",
        f"{root / 'Joseph_Biden' / 'two_faces_hopper_collins.jpg'}: 2 faces found",
        f"{root / 'Joseph_Biden' / 'no_face_coffee.jpg'}: no face found",
        f"{root / 'bob' / 'small_face.jpg'}: the face is",
        f"{root / 'Eve'}: no photos in this person's folder",
    ]
    for message in expected:
        assert sum(message in line for line in problems) == 1, (message, out)
    assert len(problems) == len(expected), out
    assert f"warning: {root / 'stray.jpg'}: a photo beside the person folders is ignored" in out
    assert "the cast cannot be used" in out and code == EXIT_PROBLEMS

    with pytest.raises(DatasetError) as err:
        castcheck.require_usable_cast(root, distances=False)
    assert f"{root} is not usable as the cast (7 problem(s))" in str(err.value)
    assert all(message in str(err.value) for message in expected)


@pytest.mark.slow
def test_mislabelled_photos_are_warned_about_naming_both(tmp_path, capsys):
    cast = sample_cast()
    obama, biden = cast["Barack_Obama"], cast["Joseph_Biden"][0]
    root = _cast(tmp_path, {"Barack_Obama": [obama[0]], "Barry": [obama[1]],  # one man under two names
                            "Grace_Hopper": cast["Grace_Hopper"], "Eileen_Collins": cast["Eileen_Collins"]})
    shutil.copy(biden, root / "Barack_Obama" / "Barack_Obama_0009.jpg")  # another man under his name

    report = check_cast(root)
    assert report.usable and report.exit_code == EXIT_WARNINGS
    a, b = root / "Barack_Obama" / obama[0].name, root / "Barack_Obama" / "Barack_Obama_0009.jpg"
    (same,) = [w for w in report.warnings if "the same person" in w]
    assert re.match(rf"{re.escape(f'{a} and {b}: the same person ')}[12]\.\d", same), same  # far: another man
    assert "would not recognise Barack_Obama" in same
    (other,) = [w for w in report.warnings if "take one for the other" in w]
    assert f"{root / 'Barry' / obama[1].name}" in other and re.search(r"Barack_Obama and Barry are 0\.\d+ apart", other)
    assert len(report.warnings) == 2
    assert len(report.same) == 1 and len(report.different) == 9

    assert castcheck.main(["check", str(root)]) == EXIT_WARNINGS
    out = capsys.readouterr().out
    assert out.count("warning: ") == 2 and "2 warning(s): the cast can be used" in out


@pytest.mark.slow
def test_a_cast_of_six_lfw_people_passes_and_a_mislabelled_one_does_not(lfw_dir, tmp_path):
    people = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]
    photos = {name: sorted((lfw_dir / name).glob("*.jpg"))[:2 if i < 2 else 1] for i, name in enumerate(people)}
    root = _cast(tmp_path / "lfw", photos)
    report = check_cast(root)
    assert report.problems == [], report.problems
    assert len(report.same) == 2 and len(report.different) == 26  # 8 photos: 28 pairs
    # a warning for each pair on the wrong side of the threshold, and only for those
    wrong = [(a, b) for a, b, d in report.same if d >= report.threshold]
    wrong += [(a, b) for a, b, d in report.different if d < report.threshold]
    assert sorted(w.split(": ")[0] for w in report.warnings) == sorted(f"{a} and {b}" for a, b in wrong)

    shutil.copy(photos["Hugo_Chavez"][0], root / "Colin_Powell" / "Colin_Powell_9999.jpg")
    report = check_cast(root)
    assert report.usable
    assert any(str(root / "Colin_Powell" / "Colin_Powell_9999.jpg") in w and "the same person" in w
               for w in report.warnings), report.warnings


# --------------------------------------------------------------------------- the configured cast (FR_CAST_DIR)


def _four_people(root: Path) -> Path:
    """A usable-looking cast under other names, sorted in another order than the shipped one."""
    cast = sample_cast()
    return _cast(root, {"Zoe": cast["Barack_Obama"][:2], "Yann": cast["Joseph_Biden"], "Xena": cast["Grace_Hopper"],
                        "Walt": cast["Eileen_Collins"], "Vera": cast["Barack_Obama"][2:]})


def test_fr_cast_dir_is_the_one_setting_of_the_cast(tmp_path, monkeypatch):
    from fr_utils.data import CAST_ENV, people_dir

    assert CAST_ENV == "FR_CAST_DIR"
    monkeypatch.delenv(CAST_ENV, raising=False)
    assert people_dir() == cast_dir() / "people" and "Barack_Obama" in sample_cast()
    root = _four_people(tmp_path / "staff")
    monkeypatch.setenv(CAST_ENV, str(root))
    assert people_dir() == root
    assert sorted(sample_cast()) == ["Vera", "Walt", "Xena", "Yann", "Zoe"]
    assert check_cast(faces=False).folder == root  # `python -m fr_utils.cast check` without DIR
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CAST_ENV, "staff")  # relative: from the current folder, made absolute
    assert people_dir() == root
    monkeypatch.setenv(CAST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere: not a folder \(FR_CAST_DIR="):
        sample_cast()
    assert castcheck.main(["check"]) == EXIT_USAGE
    monkeypatch.setenv(CAST_ENV, "")
    assert people_dir() == cast_dir() / "people"


def test_the_door_checks_and_hidden_cases_take_roles_from_the_configured_cast(tmp_path, monkeypatch):
    from fr_utils.checks import door

    root = _four_people(tmp_path / "staff")
    monkeypatch.setenv("FR_CAST_DIR", str(root))
    assert door.cast_name("twice") == "Zoe"  # the first, by name, with several photos
    assert [door.cast_name(f"other:{j}") for j in range(5)] == ["Vera", "Walt", "Xena", "Yann", "Vera"]
    assert door.cast_photo("twice:-1") == root / "Zoe" / "Barack_Obama_0002.jpg"
    assert door.cast_photo("other:3:0") == root / "Yann" / "Joseph_Biden_0001.jpg"
    assert door.cast_photo("cast:0:0") == root / "Vera" / "Barack_Obama_0003.jpg"
    assert door.cast_photo("other/no_face_coffee.jpg") == other_photo("no_face_coffee.jpg")
    assert door.cast_threshold("+0.04", 0.7) == pytest.approx(0.74) and door.cast_threshold(1.25, 0.7) == 1.25
    assert door.cast_threshold("-0.9", 0.7) == 0.01
    with pytest.raises(ValueError, match="not a cast role"):
        door.cast_name("Barack_Obama")
    photos = [*sorted(root.rglob("*.jpg")), other_photo("two_faces_hopper_collins.jpg")]
    fake = {str(p): np.eye(1, 8, i, dtype=np.float32) for i, p in enumerate(photos)}  # orthogonal: sqrt(2) apart
    cases = door.verify_cases(lambda path: fake[str(path)])
    assert cases["verify/cast/same"][:2] == (str(root / "Zoe" / "Barack_Obama_0002.jpg"), "Zoe")
    assert cases["verify/cast/other"][1] == "Zoe" and "Vera" in cases["verify/cast/other"][0]
    assert set(door.database_cases()["database/cast"][0]) == {"Vera", "Walt", "Xena", "Yann", "Zoe"}
    # the grader's hidden verify cases: the claimed person's reference distance +/- the margin
    from grader.cases import DOOR_VERIFY_HIDDEN

    inputs = door.verify_hidden_inputs(DOOR_VERIFY_HIDDEN, lambda path: fake[str(path)])
    assert [claim for _, claim, _, _ in inputs] == ["Zoe", "Zoe", "Vera", "Vera", "Xena", "Vera"]
    assert inputs[0][3] == pytest.approx(2 ** 0.5 + 0.04) and inputs[1][3] == pytest.approx(2 ** 0.5 - 0.16)
    assert inputs[-1][2] == {}


def test_the_sandbox_mounts_the_configured_cast_and_passes_it_on(tmp_path, monkeypatch):
    from grader import sandbox

    monkeypatch.delenv("FR_CAST_DIR", raising=False)
    assert sandbox.cast_folder() is None
    root = _four_people(tmp_path / "staff")
    (tmp_path / "link").symlink_to(root)
    monkeypatch.setenv("FR_CAST_DIR", str(tmp_path / "link"))
    assert sandbox.cast_folder() == str(root)  # the real folder: bwrap mounts it at that path
    assert str(root) in sandbox.resource_dirs()
    assert sandbox.sandbox_env({"FR_CAST_DIR": str(root), "SECRET": "x"}).get("FR_CAST_DIR") == str(root)
    monkeypatch.setenv("FR_CAST_DIR", str(tmp_path / "nowhere"))
    assert sandbox.cast_folder() is None  # nothing to mount: the kernel refuses the setting itself


# -- the encoder assignment and the two introductory notebooks follow the configured cast -----------


def test_the_encoder_checks_and_hidden_cases_follow_the_configured_cast(tmp_path, monkeypatch, facenet):
    """A renamed cast: the public checks pass on the reference solution, name its photos, and the
    grader computes the expected answers of every graded cell from it (its judge run directly)."""
    import fr_utils
    from fr_utils.checks import encoder
    from grader.cases import ENCODER_HIDDEN, encoder_cells
    from grader.decide import judge_cell
    from nbgrader_helpers import cell_by_id, read_notebook, run_cell_recording, solution_code

    root = _four_people(tmp_path / "staff")
    monkeypatch.setenv("FR_CAST_DIR", str(root))
    assert encoder.reference_photos() == (root / "Zoe" / "Barack_Obama_0002.jpg", root / "Walt" / "Eileen_Collins_0001.jpg")
    assert encoder.distance_cast_photos() == (root / "Zoe" / "Barack_Obama_0001.jpg", root / "Zoe" / "Barack_Obama_0002.jpg",
                                              root / "Xena" / "Grace_Hopper_0001.jpg")
    source = read_notebook(REPO / "notebooks" / "pretrained_encoder" / "pretrained_encoder.ipynb")
    namespace = {"np": np, "math": __import__("math"), "fr_utils": fr_utils, "face_crop": fr_utils.face_crop,
                 "checks": encoder, "model": facenet}
    for cell in ("img_to_encoding_solution", "distance_solution"):
        exec(solution_code(cell_by_id(source, cell).source), namespace)  # noqa: S102
    img_to_encoding, distance = namespace["img_to_encoding"], namespace["distance"]

    cells = encoder_cells()  # not graded_cells(): that one is cached per process, for the shipped cast
    for cell_id in ("img_to_encoding_shape", "img_to_encoding_reference", "img_to_encoding_hidden",
                    "distance_public", "distance_hidden"):
        outputs = run_cell_recording(cell_by_id(source, cell_id).source, namespace)
        assert judge_cell(cells[cell_id], outputs) == [], cell_id
    assert [case.key for case in cells["img_to_encoding_reference"]] == [
        "encoder/reference/Zoe/Barack_Obama_0002.jpg", "encoder/reference/Walt/Eileen_Collins_0001.jpg"]
    assert "'Zoe/Barack_Obama_0001.jpg'" in cells["img_to_encoding_shape"][0].what
    hidden = [case.what for case in cells["img_to_encoding_hidden"]]
    assert "Vera/Barack_Obama_0003.jpg" in hidden[1] and "Walt/Eileen_Collins_0001.jpg" in hidden[2]
    assert [fr_utils.data.cast_photo(spec) for spec, _, _ in ENCODER_HIDDEN[1:]] == [
        root / "Vera" / "Barack_Obama_0003.jpg", root / "Walt" / "Eileen_Collins_0001.jpg",
        root / "Zoe" / "Barack_Obama_0001.jpg"]  # "twice:2" wraps round Zoe's two photos

    pairs = encoder.check_distance_on_cast(distance, facenet)
    assert list(pairs) == ["Zoe/Barack_Obama_0001.jpg - Zoe/Barack_Obama_0002.jpg",
                           "Zoe/Barack_Obama_0001.jpg - Xena/Grace_Hopper_0001.jpg"]
    same, other = pairs.values()
    assert same < other  # the same person nearer than two people, whatever the names
    # a mistake is judged against the renamed cast's encodings, and its message names the photo
    wrong = {**namespace, "img_to_encoding": lambda path, model: model.predict_on_batch(
        fr_utils.face_crop(path).astype(np.float32)[None])}
    with pytest.raises(AssertionError, match=r"(?s)img_to_encoding\('Zoe/Barack_Obama_0002.jpg', model\).*raw pixel"):
        encoder.check_encoding_matches_reference(wrong["img_to_encoding"], facenet)
    hidden_outputs = run_cell_recording(cell_by_id(source, "img_to_encoding_hidden").source, wrong)
    assert judge_cell(cells["img_to_encoding_hidden"], hidden_outputs)  # the renamed cast's answers refuse it


@pytest.mark.parametrize("name", ["verification_recognition", "pretrained_encoder"])
def test_the_introductory_notebooks_run_top_to_bottom_on_a_renamed_cast(tmp_path, monkeypatch, name):
    """The source notebook (solutions in), executed in a kernel whose FR_CAST_DIR is a renamed
    cast: every cell runs, and the cast's people (not the shipped names) are on screen."""
    import nbformat
    from nbclient import NotebookClient

    root = _four_people(tmp_path / "staff")
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    monkeypatch.setenv("FR_CAST_DIR", str(root))  # the kernel inherits this process's environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = "".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                    for output in cell.outputs)
    assert "Zoe/Barack_Obama_0001.jpg" in shown, shown[-2000:]


@pytest.mark.parametrize("name", ["verification_recognition", "pretrained_encoder"])
def test_the_introductory_notebooks_refuse_a_bad_cast_at_their_first_cell(tmp_path, monkeypatch, name):
    """A cast with an unreadable photo and a person without photos: the first code cell stops
    with the words of ``python -m fr_utils.cast check``, before any figure."""
    import contextlib
    import io

    import nbformat

    root = _four_people(tmp_path / "staff")
    (root / "Walt" / "badge.jpg").write_bytes(b"not a jpeg")
    (root / "Uma").mkdir()
    monkeypatch.setenv("FR_CAST_DIR", str(root))
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    first = next(cell.source for cell in nb.cells if cell.cell_type == "code")
    code = "\n".join(line for line in first.splitlines() if not line.startswith("%"))
    with pytest.raises(DatasetError) as refused, contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<first cell>", "exec"), {})  # noqa: S102 - this repository's notebook
    message = str(refused.value)
    assert message.startswith(f"{root} is not usable as the cast (2 problem(s))"), message
    assert "badge.jpg" in message and "not an image file" in message
    assert "Uma" in message and "no photos in this person's folder" in message
