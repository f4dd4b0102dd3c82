"""The grading decisions made outside the kernel (grader/), without nbgrader: fast.

The graded cells of the instructor notebooks run here in-process on the
learners' functions of tests/*_submissions.py, their records are collected as
the kernel would write them, and grader.decide.judge_cell decides: correct
styles pass every cell, each usual mistake fails the cells that the real
nbgrader cycle (tests/test_autograde_*.py) says it fails.  Also: the public
checks' stored data equal the grader's references, the hidden cells' literals
equal grader.cases, and no reference is importable from fr_utils.
"""

from __future__ import annotations

import ast
import contextlib
import io

import numpy as np
import pytest
import tensorflow as tf

from fr_utils.checks import _record
from grader import cases as grader_cases
from grader import expected as grader_expected
from grader.decide import judge_cell
from grader.records import MIME, Malformed, decode
from nbgrader_helpers import HIDDEN_BEGIN, HIDDEN_END, REPO, cell_by_id, read_notebook, regions

TRIPLET = REPO / "notebooks" / "triplet_loss" / "triplet_loss.ipynb"
VERIFICATION = REPO / "notebooks" / "verification_recognition" / "verification_recognition.ipynb"


def compile_function(source: str, name: str, namespace: dict | None = None):
    namespace = {"tf": tf, "np": np, **(namespace or {})}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


@pytest.fixture
def recorded(monkeypatch):
    """Records written by the checks, as display_data outputs, in a list."""
    outputs: list[dict] = []
    monkeypatch.setenv(_record.ENV_FLAG, "1")
    monkeypatch.setattr(_record, "_display", lambda bundle: outputs.append(
        {"output_type": "display_data", "data": bundle, "metadata": {}}))
    return outputs


def run_graded_cell(source: str, namespace: dict, outputs: list) -> list[str]:
    """Run one graded cell's code (hidden tests included) as the kernel would, then judge it
    as DecideGrades does: an exception fails it, and so do wrong or missing records."""
    outputs.clear()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<cell>", "exec"), dict(namespace))
    except Exception as error:  # noqa: BLE001 - the kernel's error output
        return [f"kernel: {type(error).__name__}: {error}"]
    return []


def decide(notebook: str, grade_id: str, source: str, namespace: dict, outputs: list) -> list[str]:
    problems = run_graded_cell(source, namespace, outputs)
    if problems:
        return problems
    return judge_cell(grader_cases.graded_cells(notebook)[grade_id], list(outputs))


# -- data, literals, references ---------------------------------------------------------------


def test_stored_public_data_equal_the_grader_references():
    stored = grader_expected.TARGET.read_text(encoding="utf-8")
    assert stored == grader_expected.render(grader_expected.expected_data()), (
        "fr_utils/checks/expected.json is out of date: run python -m grader.expected")


def test_references_are_not_shipped_in_fr_utils():
    from fr_utils.checks import triplet_loss, verification

    for module, names in ((triplet_loss, ["_semi_hard_reference", "_reference", "_mistake_values"]),
                          (verification, ["far_1_to_k_reference", "max_enrolled_reference"])):
        for name in names:
            assert not hasattr(module, name), f"{module.__name__}.{name} still ships a reference"
    text = "\n".join(path.read_text() for path in (REPO / "fr_utils").rglob("*.py"))
    assert "import grader" not in text and "from grader" not in text


def _literal_argument(source: str, function: str, position: int = 1):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == function:
            return ast.literal_eval(node.args[position])
    raise AssertionError(f"no call of {function} in {source!r:.200}")


def _assigned(source: str, name: str):
    """The literal value assigned to ``name`` in ``source`` (exactly once)."""
    values = [ast.literal_eval(node.value) for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]]
    assert len(values) == 1, f"{name} is assigned {len(values)} times"
    return values[0]


def test_hidden_cells_hold_the_graders_case_literals():
    source = read_notebook(TRIPLET)
    loss = "\n".join(regions(cell_by_id(source, "triplet_loss_hidden").source, HIDDEN_BEGIN, HIDDEN_END))
    semi = "\n".join(regions(cell_by_id(source, "semi_hard_hidden").source, HIDDEN_BEGIN, HIDDEN_END))
    assert _literal_argument(loss, "record_loss_cases") == grader_cases.TRIPLET_LOSS_HIDDEN
    assert _literal_argument(semi, "record_semi_hard_cases") == grader_cases.SEMI_HARD_HIDDEN
    assert _assigned(semi, "_edges") == grader_cases.SEMI_HARD_EDGES
    source = read_notebook(VERIFICATION)
    far = "\n".join(regions(cell_by_id(source, "far_hidden").source, HIDDEN_BEGIN, HIDDEN_END))
    enrolled = "\n".join(regions(cell_by_id(source, "max_enrolled_hidden").source, HIDDEN_BEGIN, HIDDEN_END))
    assert _literal_argument(far, "record_far_cases") == grader_cases.FAR_HIDDEN
    assert _literal_argument(enrolled, "record_max_enrolled_cases") == grader_cases.MAX_ENROLLED_HIDDEN
    source = read_notebook(REPO / "notebooks" / "door" / "door.ipynb")

    def hidden(cell_id):
        return "\n".join(regions(cell_by_id(source, cell_id).source, HIDDEN_BEGIN, HIDDEN_END))

    assert _literal_argument(hidden("database_hidden"), "record_database_cases", 2) == grader_cases.DOOR_DATABASE_HIDDEN
    assert _literal_argument(hidden("verify_hidden"), "record_verify_cases", 2) == grader_cases.DOOR_VERIFY_HIDDEN
    who = hidden("who_is_it_hidden")
    assert _literal_argument(who, "record_who_is_it_cases", 2) == grader_cases.DOOR_WHO_QUERY
    assert _literal_argument(who, "record_who_is_it_cases", 3) == grader_cases.DOOR_WHO_SEED
    assert _literal_argument(who, "record_who_is_it_cases", 4) == grader_cases.DOOR_WHO_HIDDEN
    database, verify, who = hidden("database_hidden"), hidden("verify_hidden"), hidden("who_is_it_hidden")
    assert _assigned(database, "_swaps") == grader_cases.DOOR_DATABASE_CAST_HIDDEN
    assert _assigned(database, "_tiny_seed") == grader_cases.DOOR_TINY_ENCODER_SEED
    assert _assigned(database, "_tiny_people") == grader_cases.DOOR_TINY_PEOPLE
    for cell in (verify, who):
        assert _assigned(cell, "_query") == grader_cases.DOOR_EDGE_QUERY
        assert _assigned(cell, "_people") == grader_cases.DOOR_EDGE_PEOPLE
    assert _assigned(verify, "_claims") == grader_cases.DOOR_VERIFY_EDGES
    assert _assigned(who, "_rooms") == grader_cases.DOOR_WHO_EDGES
    source = read_notebook(REPO / "notebooks" / "pretrained_encoder" / "pretrained_encoder.ipynb")
    assert _literal_argument(hidden("img_to_encoding_hidden"), "record_encoding_cases", 2) == grader_cases.ENCODER_HIDDEN
    assert _literal_argument(hidden("distance_hidden"), "record_distance_cases", 1) == grader_cases.DISTANCE_SEED
    assert _literal_argument(hidden("distance_hidden"), "record_distance_cases", 2) == grader_cases.DISTANCE_HIDDEN


def test_hidden_semi_hard_cases_are_unambiguous_and_varied():
    from fr_utils.checks.triplet_loss import random_semi_hard_inputs
    from grader import references as ref

    seen = set()
    for seed, m, k, d, alpha in grader_cases.SEMI_HARD_HIDDEN:
        inputs = random_semi_hard_inputs(seed, m, k, d)
        assert ref.semi_hard_margin(*inputs, alpha) > 1e-4, (seed, "a distance is too close to an edge")
        seen.update(ref.semi_hard_negatives(*inputs, alpha).tolist())
    assert -1 in seen and len(seen) > 5


# -- exact edges (issue #19): the values on the edges are exact whatever the route ----------------


def test_door_edge_distances_are_exact_in_every_correct_route():
    query = grader_cases.edge_vector(grader_cases.DOOR_EDGE_QUERY)
    want = {"ada": 1.0, "bo": 0.5, "cy": 0.75, "di": 1.25}
    for name, numerators in grader_cases.DOOR_EDGE_PEOPLE.items():
        e = grader_cases.edge_vector(numerators)
        assert float(np.sum(e.astype(np.float64) ** 2)) == 1.0  # unit length: the cosine route holds
        for dtype in (np.float32, np.float64):
            u, v = query.astype(dtype), e.astype(dtype)
            routes = {
                "norm": np.linalg.norm(u - v),
                "sqrt_sum": np.sqrt(np.sum(np.square(u - v))),
                "dot": np.sqrt((u - v).ravel() @ (u - v).ravel()),
                "cosine": np.sqrt(2 - 2 * (u.ravel() @ v.ravel())),
                "cosine_matrix": np.sqrt(np.maximum(2 - 2 * (u @ v.T), 0))[0, 0],
                "axis_norm": np.linalg.norm(np.concatenate([v, v]) - u, axis=1)[1],
                "tf_norm": tf.norm(tf.constant(u - v)).numpy(),
            }
            assert {route: float(d) for route, d in routes.items()} == dict.fromkeys(routes, want[name]), (name, dtype)
    # the cases really sit on the threshold, and the answers follow the notebook's "<"
    thresholds = [t for _, t in grader_cases.DOOR_VERIFY_EDGES] + [t for _, t in grader_cases.DOOR_WHO_EDGES]
    assert {1.0, 0.75} <= set(thresholds)


def test_semi_hard_edges_are_exact_in_float32_float64_and_the_matmul_route():
    from grader import references as ref

    anchor, positive, negatives = (np.asarray(x) for x in grader_cases.SEMI_HARD_EDGES[:3])
    alpha = grader_cases.SEMI_HARD_EDGES[3]
    for dtype in (np.float32, np.float64):
        a, p, n = (x.astype(dtype) for x in (anchor, positive, negatives))
        d_ap = np.sum((a - p) ** 2, axis=1)
        direct = np.sum((a[:, None, :] - n[None, :, :]) ** 2, axis=2)
        expanded = np.sum(a * a, axis=1)[:, None] - 2 * a @ n.T + np.sum(n * n, axis=1)[None, :]
        assert np.array_equal(direct, expanded)
        assert d_ap.tolist() == [0.25, 0.25]
        assert direct[0, 0] == d_ap[0] and direct[0, 1] == d_ap[0] + dtype(alpha)  # both edges, row 0
        assert direct[1, 1] == d_ap[1] + dtype(alpha)  # the upper edge, row 1
        t = tf.constant(a), tf.constant(p), tf.constant(n)
        assert np.array_equal(tf.reduce_sum(tf.square(t[0][:, None] - t[2][None]), axis=2).numpy(), direct)
    assert ref.semi_hard_negatives(anchor, positive, negatives, alpha).tolist() == [2, -1]
    # the slips give other answers: 0 with ">=" at the lower edge, 1 with "<=" at the upper edge
    d_ap, d_an = ref.squared_distances(anchor, positive, negatives)
    lower = (d_an >= d_ap[:, None]) & (d_an < d_ap[:, None] + alpha)
    upper = (d_an > d_ap[:, None]) & (d_an <= d_ap[:, None] + alpha)
    assert np.where(lower, d_an, np.inf).argmin(axis=1)[0] == 0
    assert upper[1].tolist() == [False, True, False, False]


def test_max_enrolled_edges_are_exact_in_every_route():
    import math

    from grader import references as ref

    edges = grader_cases.MAX_ENROLLED_HIDDEN[-3:]
    for _, far, budget in edges:
        k = ref.max_enrolled(far, budget)
        assert 1 - (1 - far) ** k == budget and ref.far_1_to_k(far, k) == budget  # exactly on the edge
        for ratio in (math.log(1 - budget) / math.log(1 - far), math.log1p(-budget) / math.log1p(-far),
                      math.log2(1 - budget) / math.log2(1 - far), math.log10(1 - budget) / math.log10(1 - far),
                      float(np.log(np.float32(1 - budget)) / np.log(np.float32(1 - far)))):
            assert ratio == k, (far, budget, ratio)


def test_records_round_trip():
    values = [None, True, 3, 2.5, float("inf"), "text", (1, 2.0), [np.int64(4)],
              {"a": np.float32(1.5)}, np.arange(6, dtype=np.int32).reshape(2, 3),
              tf.constant([[1.0, float("nan")]]), object()]
    decoded = [decode(_record.encode(value)) for value in values]
    assert decoded[:6] == [None, True, 3, 2.5, float("inf"), "text"]
    assert decoded[6] == (1, 2.0) and decoded[7] == [4] and decoded[8] == {"a": 1.5}
    assert decoded[9].shape == (2, 3) and decoded[9].values.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert decoded[10].tensor and np.isnan(decoded[10].values[0, 1])
    assert decoded[11].type == "object"
    for bad in [{"t": "array", "shape": [3], "dtype": "float32", "v": [1.0]}, {"t": "float", "v": "1e9"},
                {"t": "int", "v": True}, {"t": "nope"}, [], {"t": "dict", "v": [[{"t": "list", "v": []}, {"t": "none"}]]}]:
        with pytest.raises(Malformed):
            decode(bad)


def _cell_outputs(records: list[tuple[str, object]]) -> list[dict]:
    return [{"output_type": "display_data", "data": {MIME: {"case": key, "value": _record.encode(value)}},
             "metadata": {}} for key, value in records]


def test_missing_duplicated_unknown_and_malformed_records_fail():
    cases = grader_cases.graded_cells("triplet_loss")["triplet_loss_single"]
    good = [(case.key, tf.constant(value)) for case, value in zip(cases, [0.0, 0.2, 0.5, 0.0])]
    assert judge_cell(cases, _cell_outputs(good)) == []
    assert "no result was recorded" in judge_cell(cases, _cell_outputs(good[1:]))[0]
    assert "recorded more than once" in judge_cell(cases, _cell_outputs(good + good[:1]))[0]
    assert "unknown case" in judge_cell(cases, _cell_outputs(good + [("triplet_loss/x", 1.0)]))[0]
    broken = _cell_outputs(good)
    broken[0]["data"][MIME]["value"] = {"t": "float", "v": "zero"}
    assert "malformed record" in judge_cell(cases, broken)[0]
    broken[0]["data"][MIME] = "not a record"
    assert "malformed" in " ".join(judge_cell(cases, broken))
    wrong = [(key, value * 2 + 1) for key, value in good]
    problems = judge_cell(cases, _cell_outputs(wrong))
    assert len(problems) == 4 and "expected 0, got 1" in problems[0]


def test_decide_grades_marks_cells_in_the_notebook():
    import nbformat

    from grader.decide import DecideGrades

    cases = grader_cases.graded_cells("triplet_loss")["triplet_loss_single"]
    good = [(case.key, tf.constant(value)) for case, value in zip(cases, [0.0, 0.2, 0.5, 0.0])]

    def cell(outputs):
        new = nbformat.v4.new_code_cell("checks.check_perfect_triplet(triplet_loss)")
        new.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 2,
                                    "grade_id": "triplet_loss_single", "schema_version": 3}
        new.outputs = [nbformat.from_dict(output) for output in outputs]
        return new

    score = {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": "2"}}
    kernel_error = {"output_type": "error", "ename": "AssertionError", "evalue": "expected 0.2", "traceback": []}
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell(_cell_outputs(good) + [score]), cell(_cell_outputs(good[:2]) + [score]),
                cell([kernel_error])]
    nb, _ = DecideGrades().preprocess(nb, {"nbgrader": {"notebook": "triplet_loss"}})
    right, blanked, failed = nb.cells
    assert [o.output_type for o in right.outputs][-1] == "display_data"  # no partial credit by a printed number
    assert not [o for o in right.outputs if o.output_type == "error"]
    assert blanked.outputs[-1].ename == "GradingError" and "no result was recorded" in blanked.outputs[-1].evalue
    assert [o.ename for o in failed.outputs] == ["AssertionError"]  # the kernel's own failure, unchanged
    other, _ = DecideGrades().preprocess(nbformat.v4.new_notebook(cells=[cell([])]), {"nbgrader": {"notebook": "beyond"}})
    assert other.cells[0].outputs == []  # notebooks the grader does not know are left alone


# -- the triplet-loss notebook, cell by cell ------------------------------------------------------


@pytest.fixture(scope="module")
def triplet_cells():
    source = read_notebook(TRIPLET)
    return {grade_id: cell_by_id(source, grade_id).source
            for grade_id in grader_cases.graded_cells("triplet_loss")}


def _failing(notebook: str, cells: dict, namespace: dict, outputs) -> dict[str, list[str]]:
    """``{grade_id: problems}`` of the cells the grader fails, run in ``namespace``."""
    failing = {}
    for grade_id, source in cells.items():
        problems = decide(notebook, grade_id, source, namespace, outputs)
        if problems:
            failing[grade_id] = problems
    return failing


def _failing_cells(cells: dict, loss, semi, outputs) -> dict[str, list[str]]:
    from fr_utils.checks import triplet_loss as checks

    namespace = {"checks": checks, "triplet_loss": loss, "semi_hard_negatives": semi, "tf": tf, "np": np}
    return _failing("triplet_loss", cells, namespace, outputs)


@pytest.mark.slow
def test_triplet_correct_styles_pass_every_cell_and_mistakes_fail_theirs(triplet_cells, recorded):
    from test_autograde_triplet import SEMI_MISTAKE_FAILS, SEMI_MISTAKE_PARTNER, WRONG_LOSS_FAILS
    from triplet_submissions import CORRECT_LOSS, CORRECT_SEMI_HARD, EDGE_SEMI_HARD, WRONG_LOSS, WRONG_SEMI_HARD

    semi_styles = [compile_function(code, "semi_hard_negatives") for code in CORRECT_SEMI_HARD.values()]
    for index, (style, code) in enumerate(CORRECT_LOSS.items()):
        loss = compile_function(code, "triplet_loss")
        failing = _failing_cells(triplet_cells, loss, semi_styles[index % len(semi_styles)], recorded)
        assert failing == {}, f"correct style {style} lost {failing}"
    right_loss = compile_function(CORRECT_LOSS["reduce_sum"], "triplet_loss")
    for name, code in WRONG_LOSS.items():
        failing = _failing_cells(triplet_cells, compile_function(code, "triplet_loss"), semi_styles[0], recorded)
        assert set(failing) == WRONG_LOSS_FAILS[name], f"{name}: {failing}"
    for name, code in {**WRONG_SEMI_HARD, **EDGE_SEMI_HARD}.items():
        failing = _failing_cells(triplet_cells, right_loss, compile_function(code, "semi_hard_negatives"), recorded)
        assert set(failing) == SEMI_MISTAKE_FAILS[name], f"{name} ({SEMI_MISTAKE_PARTNER[name]}): {failing}"
    for style in CORRECT_SEMI_HARD.values():
        assert _failing_cells(triplet_cells, right_loss, compile_function(style, "semi_hard_negatives"), recorded) == {}
    edge = _failing_cells(triplet_cells, right_loss, compile_function(EDGE_SEMI_HARD["lower_edge_inclusive"],
                                                                      "semi_hard_negatives"), recorded)
    assert "negatives exactly on the edges of the band" in " ".join(edge["semi_hard_hidden"])


# -- the verification notebook ------------------------------------------------------------------


def test_verification_correct_styles_pass_and_mistakes_fail(recorded):
    import math

    from fr_utils.checks import verification as checks
    from intro_submissions import CORRECT_FAR, CORRECT_MAX, EDGE_MAX, WRONG_FAR, WRONG_MAX

    source = read_notebook(VERIFICATION)
    cells = {grade_id: cell_by_id(source, grade_id).source
             for grade_id in grader_cases.graded_cells("verification_recognition")}
    base = {"checks": checks, "math": math, "np": np}

    def failing(far_code, max_code):
        namespace = {**base,
                     "false_accept_rate_1_to_k": compile_function(far_code, "false_accept_rate_1_to_k", base),
                     "max_enrolled": compile_function(max_code, "max_enrolled", base)}
        return {grade_id for grade_id, cell in cells.items()
                if decide("verification_recognition", grade_id, cell, namespace, recorded)}

    right_far, right_max = CORRECT_FAR["power"], CORRECT_MAX["log_floor"]
    for style in CORRECT_FAR.values():
        assert failing(style, right_max) == set()
    for style in CORRECT_MAX.values():
        assert failing(right_far, style) == set()
    for name, code in WRONG_FAR.items():
        assert failing(code, right_max) == {"far_public", "far_hidden"}, name
    for name, code in WRONG_MAX.items():
        assert failing(right_far, code) == {"max_enrolled_public", "max_enrolled_hidden"}, name
    for name, code in EDGE_MAX.items():  # only the hidden edge cases see these
        assert failing(right_far, code) == {"max_enrolled_hidden"}, name


# -- the encoder notebook ---------------------------------------------------------------------------


ENCODER = REPO / "notebooks" / "pretrained_encoder" / "pretrained_encoder.ipynb"


@pytest.mark.slow
def test_encoder_decisions_and_the_refused_reference(facenet, recorded):
    import math

    import fr_utils
    from fr_utils.checks import encoder as checks
    from fr_utils.encoding import face_crop
    from intro_submissions import CORRECT_DISTANCE, CORRECT_ENCODING, WRONG_DISTANCE, WRONG_ENCODING

    source = read_notebook(ENCODER)
    cells = {grade_id: cell_by_id(source, grade_id).source
             for grade_id in grader_cases.graded_cells("pretrained_encoder")}
    base = {"checks": checks, "math": math, "np": np, "fr_utils": fr_utils, "face_crop": face_crop,
            "model": facenet}

    def failing(enc_code, dist_code):
        namespace = {**base, "img_to_encoding": compile_function(enc_code, "img_to_encoding", base),
                     "distance": compile_function(dist_code, "distance", base)}
        return _failing("pretrained_encoder", cells, namespace, recorded)

    assert grader_cases.DEFAULT_ENCODING_SHAPE == (1, facenet.output_shape[-1])  # the course's encoder
    right_enc, right_dist = CORRECT_ENCODING["predict_on_batch"], CORRECT_DISTANCE["linalg_norm"]
    for code in CORRECT_ENCODING.values():
        assert failing(code, right_dist) == {}
    enc_cells = {"img_to_encoding_shape", "img_to_encoding_reference", "img_to_encoding_hidden"}
    # the mistakes of tests/test_autograde_intro.py lose the same cells here
    assert set(failing(WRONG_ENCODING["no_standardisation"], WRONG_DISTANCE["squared"])) == (
        {"img_to_encoding_reference", "img_to_encoding_hidden", "distance_public", "distance_hidden"})
    assert set(failing(WRONG_ENCODING["no_batch_axis"], right_dist)) == enc_cells
    global_model = failing(WRONG_ENCODING["global_model"], right_dist)
    assert set(global_model) == {"img_to_encoding_hidden"}
    assert "Use the model argument" in " ".join(global_model["img_to_encoding_hidden"])
    for code in list(CORRECT_DISTANCE.values())[1:]:
        assert failing(right_enc, code) == {}
    for name, code in WRONG_DISTANCE.items():
        assert {"distance_public", "distance_hidden"} & set(failing(right_enc, code)), name
    # fr_utils' own encoder, under any name, loses the exercise, saying why
    calls_reference = ("from fr_utils import img_to_encoding as _theirs\n\n"
                       "def img_to_encoding(image_path, model):\n    return _theirs(image_path, model)\n")
    lost = failing(calls_reference, right_dist)
    assert set(lost) == enc_cells
    assert all("called fr_utils.img_to_encoding" in problems[0] for problems in lost.values())
    assert fr_utils.img_to_encoding.__code__.co_name == "img_to_encoding"  # restored afterwards


# -- the door notebook ------------------------------------------------------------------------------


@pytest.mark.slow
def test_door_decisions_match_the_public_checks_and_hidden_tests(facenet, recorded):
    from pathlib import Path

    import test_door_notebook as door
    from fr_utils.checks import door as checks
    from fr_utils.data import cast_dir

    source = read_notebook(REPO / "notebooks" / "door" / "door.ipynb")
    cells = {grade_id: cell_by_id(source, grade_id).source for grade_id in grader_cases.graded_cells("door")}
    cell_of = {
        checks.check_database_cast: "database_public", checks.check_database_names: "database_public",
        checks.check_verify_cast: "verify_public", checks.check_verify_details: "verify_details",
        checks.check_who_is_it_cast: "who_is_it_public", checks.check_who_is_it_closest: "who_is_it_public",
        checks.check_who_is_it_threshold: "who_is_it_threshold",
    }
    right = {name: door.compile_function(next(iter(styles.values())), name)
             for name, (styles, _, _) in door.EXERCISES.items()}
    base = {"np": np, "fr_utils": door.FR_UTILS, "Path": Path, "checks": checks, "model": facenet,
            "img_to_encoding": door.cached_img_to_encoding, "CAST": checks.sample_cast(),
            "OTHER": cast_dir() / "other"}

    def failing(**functions) -> set[str]:
        namespace = {**base, **right, **functions}
        return {grade_id for grade_id, cell in cells.items() if decide("door", grade_id, cell, namespace, recorded)}

    for name, (styles, _, _) in door.EXERCISES.items():
        for style, code in styles.items():
            assert failing(**{name: door.compile_function(code, name)}) == set(), (name, style)
    for (name, mistake), expected in door.WRONG.items():
        hidden_cell = door.EXERCISES[name][2]
        want = {cell_of[check] for check, _ in expected} | {hidden_cell}
        got = failing(**{name: door.compile_function(door.SUBMITTED[name][mistake], name)})
        assert got == want, (name, mistake)

    # the mistakes only the hidden tests see lose the hidden cell alone, saying why
    from door_submissions import HIDDEN_ONLY_DATABASE, HIDDEN_ONLY_VERIFY, HIDDEN_ONLY_WHO

    why = {"cast_shortcut": "the cast's names, each with another photo than its own: database[",
           "model_ignored": "the model argument was ignored", "less_equal": "exactly at the threshold"}
    for name, mistakes in (("build_database", HIDDEN_ONLY_DATABASE), ("verify", HIDDEN_ONLY_VERIFY),
                           ("who_is_it", HIDDEN_ONLY_WHO)):
        hidden_cell = door.EXERCISES[name][2]
        for mistake, code in mistakes.items():
            problems = {grade_id: decide("door", grade_id, cell, {**base, **right, name: door.compile_function(
                code, name)}, recorded) for grade_id, cell in cells.items()}
            lost = {grade_id: found for grade_id, found in problems.items() if found}
            assert set(lost) == {hidden_cell}, (name, mistake, lost)
            assert why[mistake] in " ".join(lost[hidden_cell]), (name, mistake, lost)
