"""The door assignment without nbgrader: the source notebook's structure, and its
public checks and hidden tests run directly (in this process) on learner code,
right and wrong, from ``door_submissions.py``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest

import fr_utils
from fr_utils.checks import door as checks
from fr_utils.data import cast_dir
from door_submissions import (
    CORRECT_DATABASE,
    CORRECT_VERIFY,
    CORRECT_WHO,
    WRONG_DATABASE,
    WRONG_VERIFY,
    WRONG_WHO,
)
from nbgrader_helpers import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    REPO,
    cell_by_id,
    grade_cells,
    marked_lines,
    leaked_hidden_tests,
    metadata_problems,
    misplaced_test_cells,
    nbgrader_meta,
    read_notebook,
    run_cell_recording,
)

SOURCE = REPO / "notebooks" / "door" / "door.ipynb"
POINTS = {
    "database_public": 2, "database_hidden": 1,
    "verify_public": 2, "verify_details": 1, "verify_hidden": 2,
    "who_is_it_public": 2, "who_is_it_threshold": 1, "who_is_it_hidden": 2,
}
THRESHOLD = 1.139  # what the notebook reads from the manifest; the checks pass their own


@pytest.fixture(scope="module")
def source():
    return read_notebook(SOURCE)


# -- the notebook ---------------------------------------------------------------------


def test_source_notebook_is_valid_and_clean(source):
    nbformat.validate(source)
    assert source.metadata.kernelspec.name == "python3"
    for cell in source.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"


def test_nbgrader_metadata(source):
    assert metadata_problems(source) == []
    assert grade_cells(source) == POINTS
    assert sum(POINTS.values()) == 13
    solutions = [cell for cell in source.cells if nbgrader_meta(cell).get("solution")]
    assert [nbgrader_meta(cell)["grade_id"] for cell in solutions] == [
        "build_database_solution", "verify_solution", "who_is_it_solution"]


def test_every_test_cell_follows_a_solution_or_test_cell(source):
    assert misplaced_test_cells(source) == []


def test_hidden_tests_are_not_in_the_public_checks(source):
    hidden = marked_lines(source, HIDDEN_BEGIN, HIDDEN_END)
    assert len(hidden) > 20
    assert leaked_hidden_tests(source) == []


def test_threshold_comes_from_the_manifest_not_a_literal(source):
    text = "\n".join(cell.source for cell in source.cells)
    assert 'read_manifest().get("verification", {})' in text
    assert "THRESHOLD = 1.1" not in text and "threshold=1.1" not in text


def test_without_a_measured_threshold_the_notebook_takes_the_middle_of_the_cast_gap(source):
    cell = next(c for c in source.cells if 'THRESHOLD = verification.get("threshold")' in c.source)
    names = np.array(["a", "a", "b"])
    dist = np.array([[0.0, 0.7, 1.3], [0.7, 0.0, 1.5], [1.3, 1.5, 0.0]])
    namespace = {"np": np, "read_manifest": dict, "cast_names": names, "dist": dist}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(cell.source, namespace)
    assert namespace["THRESHOLD"] == pytest.approx(1.0)  # (0.7 + 1.3) / 2
    assert "make weights" in printed.getvalue()


def _run_cell(source: str, namespace: dict):
    """Run a cell's code in ``namespace``; return its last expression's value (what Jupyter shows)."""
    import ast

    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace) if last else None


@pytest.mark.slow
def test_faces_on_screen_the_staff_and_each_shot_with_the_doors_answer(source):
    """Issue #14 item 2, in non-graded cells: the enrolled staff as a gallery, and each camera shot
    with its face box and the answer of the learner's own verify / who_is_it (stand-ins here)."""
    from matplotlib.figure import Figure

    cells = [c for c in source.cells if "door_shots(" in c.source or "face_row(" in c.source]
    assert len(cells) == 3 and not any(nbgrader_meta(c) for c in cells)
    order = [c.source for c in source.cells]
    after = lambda text, cell: order.index(cell.source) > next(i for i, s in enumerate(order) if text in s)  # noqa: E731
    assert after("database = build_database(", cells[0]) and after("def verify(", cells[1])
    assert after("def who_is_it(", cells[2])

    cast = checks.sample_cast()
    assert checks.cast_name("twice") == "Barack_Obama"  # the shipped cast: the first with several photos
    answers = {"Barack_Obama_0002.jpg": (0.71, True), "Barack_Obama_0003.jpg": (0.66, True),
               "Eileen_Collins_0001.jpg": (1.38, False)}

    def verify(image_path, identity, database, model):
        return answers.get(Path(image_path).name, (np.inf, False)) if identity in database else (np.inf, False)

    def who_is_it(image_path, database, model):
        if "no_face" in image_path:
            raise fr_utils.NoFaceError(f"{image_path}: no face found")
        return (0.66, "Barack_Obama") if "Obama" in image_path else (1.3, None)

    namespace = {"CAST": cast, "TWICE": "Barack_Obama", "OTHER": cast_dir() / "other", "database": {n: None for n in cast}, "model": None,
                 "THRESHOLD": THRESHOLD, "verify": verify, "who_is_it": who_is_it, "fr_utils": fr_utils}
    with contextlib.redirect_stdout(io.StringIO()):
        shown = [_run_cell(cell.source, namespace) for cell in cells]
    assert all(isinstance(fig, Figure) for fig in shown)
    assert [ax.get_xlabel() for ax in shown[0].axes] == sorted(cast)
    assert [ax.get_title() for ax in shown[1].axes] == [
        "badge Barack_Obama\nBarack_Obama_0002.jpg: 0.71, OPEN", "badge Barack_Obama\nBarack_Obama_0003.jpg: 0.66, OPEN",
        "badge Barack_Obama\nEileen_Collins_0001.jpg: 1.38, CLOSED"]
    assert [ax.get_title() for ax in shown[2].axes] == [
        "Barack_Obama, 0.66: OPEN", "unknown, 1.30: CLOSED", "no face: CLOSED"]


@pytest.mark.slow
def test_the_first_cell_refuses_a_bad_cast_with_the_cast_checks_words(source, facenet, tmp_path, monkeypatch):
    """Issue #14, bad input: FR_CAST_DIR naming a cast with a photo of two people, one without a
    face, an unreadable file, a person without photos and names differing only in case: the
    notebook stops at its first cell with every message of ``python -m fr_utils.cast check``."""
    import shutil

    from fr_utils.castcheck import check_cast
    from fr_utils.data import other_photo
    from fr_utils.errors import DatasetError

    cast = checks.sample_cast()
    root = tmp_path / "cast"
    for name, photos in {"Ada": [other_photo("two_faces_hopper_collins.jpg")], "Bob": [other_photo("no_face_coffee.jpg")],
                         "Cy": [], "Dee": [], "dee": cast["Barack_Obama"][:2], "Eve": cast["Joseph_Biden"]}.items():
        (root / name).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, root / name / photo.name)
    (root / "Cy" / "scan.jpg").write_bytes(b"not a jpeg")
    monkeypatch.setenv("FR_CAST_DIR", str(root))
    monkeypatch.setattr(fr_utils, "load_facenet", lambda *args, **kwargs: facenet)
    first = next(c.source for c in source.cells if "require_usable_cast" in c.source)
    assert first is next(c.source for c in source.cells if c.cell_type == "code")
    code = "\n".join(line for line in first.splitlines() if not line.startswith("%"))
    with pytest.raises(DatasetError) as refused, contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(code, "<first cell>", "exec"), {})
    problems = check_cast(root, distances=False).problems
    assert len(problems) == 5 and printed.getvalue() == ""  # refused before anything is listed
    assert str(refused.value).startswith(f"{root} is not usable as the cast (5 problem(s))")
    for problem in problems:
        assert problem in str(refused.value)
    for words in ("2 faces found", "no face found", "not an image file", "no photos in this person's folder",
                  "differ only in case"):
        assert words in str(refused.value)


# -- the checks' own pieces -------------------------------------------------------------


def test_sample_cast_lists_every_person_and_names_a_missing_folder(tmp_path):
    cast = checks.sample_cast()
    assert {name: len(photos) for name, photos in cast.items()} == {
        "Barack_Obama": 3, "Eileen_Collins": 1, "Grace_Hopper": 1, "Joseph_Biden": 1}
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        checks.sample_cast(tmp_path / "nowhere")


def test_at_distance_builds_unit_vectors_at_the_asked_distances():
    e = np.random.default_rng(0).standard_normal(128)
    e /= np.linalg.norm(e)
    wanted = [0.0, 0.3, 1.0, 1.4142, 2.0]
    made = checks.at_distance(e[None, :], wanted, seed=5)
    assert all(v.shape == (1, 128) and v.dtype == np.float32 for v in made)
    assert np.allclose([np.linalg.norm(v) for v in made], 1.0, atol=1e-6)
    assert np.allclose([np.linalg.norm(v[0] - e) for v in made], wanted, atol=1e-5)
    with pytest.raises(ValueError, match="at most 2 apart"):
        checks.at_distance(e, [2.5])


# -- learner code against the checks and hidden tests ----------------------------------------


_ENCODED: dict[tuple[str, int], np.ndarray] = {}
_CROPS: dict[str, np.ndarray] = {}


def cached_img_to_encoding(image, model=None):
    """``fr_utils.img_to_encoding`` for photo paths, computed once per photo in this process:
    the same numbers, without detecting the same faces again in every test (the
    nbgrader cycle in test_autograde_door.py runs the real thing).  The hidden tests' other
    encoders (a stub that counts its calls, a small random network, made anew in each run)
    are called every time, on the face crop found once per photo."""
    from fr_utils.weights import loaded

    if model is not None and loaded(model) is None:
        path = str(Path(image).resolve())
        if path not in _CROPS:
            _CROPS[path] = fr_utils.face_crop(path)
        return fr_utils.img_to_encoding(_CROPS[path], model, detect=False)
    key = (str(Path(image).resolve()), id(model))
    if key not in _ENCODED:
        _ENCODED[key] = fr_utils.img_to_encoding(image, model)
    return _ENCODED[key].copy()


# What learner code and hidden tests see as `fr_utils`.
FR_UTILS = SimpleNamespace(img_to_encoding=cached_img_to_encoding, encode_images=fr_utils.encode_images)


def compile_function(source: str, name: str):
    """Define a learner's function as its notebook cell would."""
    namespace = {"np": np, "fr_utils": FR_UTILS, "img_to_encoding": cached_img_to_encoding,
                 "THRESHOLD": THRESHOLD}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def failure(check, function, model) -> str:
    with pytest.raises(AssertionError) as caught:
        check(function, model)
    return str(caught.value)


def run_hidden(source_nb, cell_id: str, function_name: str, function, model) -> None:
    """The hidden-test cell's code, run with the names the notebook defines before it; its
    records are judged by the grader as in autograding (grader/decide.py).  Raises
    AssertionError with the grader's message when a case is wrong."""
    from grader.cases import graded_cells
    from grader.decide import judge_cell

    namespace = {
        "np": np, "fr_utils": FR_UTILS, "Path": Path, "checks": checks, "model": model,
        "img_to_encoding": cached_img_to_encoding, "CAST": checks.sample_cast(),
        "OTHER": cast_dir() / "other", function_name: function,
    }
    outputs = run_cell_recording(cell_by_id(source_nb, cell_id).source, namespace, f"<{cell_id}>")
    problems = judge_cell(graded_cells("door")[cell_id], outputs)
    if problems:
        raise AssertionError("\n".join(problems))


DATABASE_CHECKS = [checks.check_database_cast, checks.check_database_names]
VERIFY_CHECKS = [checks.check_verify_cast, checks.check_verify_details]
WHO_CHECKS = [checks.check_who_is_it_cast, checks.check_who_is_it_closest, checks.check_who_is_it_threshold]
EXERCISES = {  # name: (correct, checks, hidden cell)
    "build_database": (CORRECT_DATABASE, DATABASE_CHECKS + [checks.check_database_runs], "database_hidden"),
    "verify": (CORRECT_VERIFY, VERIFY_CHECKS + [checks.check_verify_runs], "verify_hidden"),
    "who_is_it": (CORRECT_WHO, WHO_CHECKS + [checks.check_who_is_it_runs], "who_is_it_hidden"),
}


@pytest.mark.parametrize("name,style", [(n, s) for n, (subs, _, _) in EXERCISES.items() for s in subs])
def test_correct_styles_pass_every_check_and_hidden_test(facenet, source, name, style):
    correct, public, hidden_cell = EXERCISES[name]
    function = compile_function(correct[style], name)
    for check in public:
        check(function, facenet)
    run_hidden(source, hidden_cell, name, function, facenet)


# (check, the words its message must hold) for each mistake; the other checks pass.
WRONG = {
    ("build_database", "last_photo_for_all"): [
        (checks.check_database_cast, "it is the encoding of 'Joseph_Biden''s photo"),
        (checks.check_database_names, "Encode each person's own path")],
    ("build_database", "flattened"): [
        (checks.check_database_cast, "has shape (128,); expected (1, 128)"),
        (checks.check_database_names, "has shape (128,)")],
    ("build_database", "names_from_files"): [
        (checks.check_database_names, "Use the dict's keys as the names")],
    ("verify", "greater_than"): [
        (checks.check_verify_cast, "wrong way round"), (checks.check_verify_details, "wrong way round")],
    ("verify", "squared"): [
        (checks.check_verify_cast, "SQUARED distance"), (checks.check_verify_details, "SQUARED distance")],
    ("verify", "closest_person"): [
        (checks.check_verify_cast, "not to the claimed identity 'Barack_Obama'"),
        (checks.check_verify_details, "that is the distance to 'ada'")],
    ("verify", "threshold_hard_coded"): [  # 0.7 decides the sample cast as its threshold 1.0 does
        (checks.check_verify_details, "does not use the `threshold` argument")],
    ("verify", "unknown_identity_crashes"): [
        (checks.check_verify_details, "raised KeyError('nobody')")],
    ("verify", "door_open_as_string"): [
        (checks.check_verify_cast, "returned 'open' (str) as door_open"),
        (checks.check_verify_details, "as door_open; expected True or False")],
    ("who_is_it", "last_person"): [
        (checks.check_who_is_it_cast, "you kept the LAST person"),
        (checks.check_who_is_it_closest, "you kept the LAST person"),
        (checks.check_who_is_it_threshold, "expected (0.5000, 'joe')")],
    ("who_is_it", "largest"): [
        (checks.check_who_is_it_cast, "LARGEST distance"), (checks.check_who_is_it_closest, "LARGEST distance"),
        (checks.check_who_is_it_threshold, "LARGEST distance")],
    ("who_is_it", "identity_always_returned"): [
        (checks.check_who_is_it_cast, "the identity should be None"),
        (checks.check_who_is_it_threshold, "does not depend on the `threshold` argument")],
    ("who_is_it", "threshold_hard_coded"): [  # 0.7 decides the sample cast as its threshold 1.0 does
        (checks.check_who_is_it_threshold, "does not depend on the `threshold` argument")],
    ("who_is_it", "squared"): [
        (checks.check_who_is_it_cast, "SQUARED distance"), (checks.check_who_is_it_closest, "SQUARED distance"),
        (checks.check_who_is_it_threshold, "SQUARED distance")],
}
SUBMITTED = {"build_database": WRONG_DATABASE, "verify": WRONG_VERIFY, "who_is_it": WRONG_WHO}
assert set(WRONG) == {(name, mistake) for name, subs in SUBMITTED.items() for mistake in subs}


@pytest.mark.parametrize("name,mistake", sorted(WRONG))
def test_each_mistake_fails_its_checks_with_a_hint_and_the_hidden_tests(facenet, source, name, mistake):
    function = compile_function(SUBMITTED[name][mistake], name)
    _, public, hidden_cell = EXERCISES[name]
    expected = dict(WRONG[(name, mistake)])
    for check in public:
        if check in expected:
            assert expected[check] in failure(check, function, facenet), check.__name__
        else:
            check(function, facenet)
    with pytest.raises(AssertionError, match="Hidden test"):
        run_hidden(source, hidden_cell, name, function, facenet)


def test_checks_return_the_database_and_print_nothing_of_the_learners(facenet, capsys):
    function = compile_function(CORRECT_VERIFY["norm"], "verify")
    checks.check_verify_cast(function, facenet)
    assert "welcome in" not in capsys.readouterr().out  # verify's prints are captured by the check
    database = checks.check_database_cast(compile_function(CORRECT_DATABASE["loop"], "build_database"), facenet)
    assert sorted(database) == sorted(checks.sample_cast())
