"""``python -m fr_utils.cast check DIR`` (issue #14 item 1): the shipped cast passes; broken casts
built in temporary folders from the cast's photos (and LFW when FR_DATASETS is set) get each
problem named, photo by photo, and the documented exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert "threshold 1.139" in out


@pytest.mark.slow
def test_every_photo_problem_is_named(tmp_path, capsys):
    cast = sample_cast()
    root = tmp_path / "cast"
    _cast(root, {"Barack_Obama": cast["Barack_Obama"][:2], "Grace_Hopper": cast["Grace_Hopper"],
                 "Ada Lovelace": cast["Eileen_Collins"],  # not an identifier
                 "Joseph_Biden": [other_photo("two_faces_hopper_collins.jpg"), other_photo("no_face_coffee.jpg")],
                 "bob": cast["Barack_Obama"][2:], "Bob": []})
    (root / "Bob" / "broken.jpg").write_text("not a picture")
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
    ]
    for message in expected:
        assert sum(message in line for line in problems) == 1, (message, out)
    assert len(problems) == len(expected), out
    assert f"warning: {root / 'stray.jpg'}: a photo beside the person folders is ignored" in out
    assert "the cast cannot be used" in out and code == EXIT_PROBLEMS

    with pytest.raises(DatasetError) as err:
        castcheck.require_usable_cast(root, distances=False)
    assert f"{root} is not usable as the cast (6 problem(s))" in str(err.value)
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
    assert same.startswith(f"{a} and {b}: the same person 1.3") and "would not recognise Barack_Obama" in same
    (other,) = [w for w in report.warnings if "take one for the other" in w]
    assert f"{root / 'Barry' / obama[1].name}" in other and "Barack_Obama and Barry are 0.70" in other
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
