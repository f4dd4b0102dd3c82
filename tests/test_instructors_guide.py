"""docs/instructors.md does what it says (issue #14 item 3): the notebook and grader file built from
the guide's own blocks go through ONE nbgrader cycle, where a correct submission gets full marks and
the usual mistake loses them with the guide's hint; and the two helpers it uses, unit by unit."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from fr_utils.checks._record import ENV_FLAG, MIME
from fr_utils.checks.exercise import case_key, check, same
from grader.decide import judge_cell
from grader.exercise import calls, exercise_cells
from nbgrader_helpers import REPO, Course, error_outputs, solution_code, with_sources

GUIDE = REPO / "docs" / "instructors.md"
ASSIGNMENT = "distance_exercise"
SQUARED_HINT = "that is the squared distance: take the square root"


def guide_blocks() -> tuple[list[tuple[str, str, float | None, str]], dict[str, str]]:
    """The guide's notebook cells ``(grade_id, role, points, source)`` and files ``{path: text}``:
    each fenced block right after a ``<!-- cell: id, role[, points] -->`` or ``<!-- file: path -->``."""
    text = GUIDE.read_text(encoding="utf-8")
    cells, files = [], {}
    for tag, body in re.findall(r"<!-- (.+?) -->\n```python\n(.*?)```", text, re.DOTALL):
        kind, _, spec = tag.partition(": ")
        if kind == "file":
            files[spec] = body
        else:
            grade_id, role, *points = [part.strip() for part in spec.split(",")]
            cells.append((grade_id, role, float(points[0]) if points else None, body.rstrip("\n")))
    return cells, files


def guide_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook the guide describes, with nbgrader's metadata as its toolbar sets it."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell("Write `l2_distance(a, b)`, the L2 distance of two vectors."))
    for grade_id, role, points, source in guide_blocks()[0]:
        cell = nbformat.v4.new_code_cell(source)
        meta = {"grade_id": grade_id, "schema_version": 3, "solution": role == "solution",
                "grade": role == "tests", "locked": role == "tests", "task": False}
        if role == "tests":
            meta["points"] = points
        cell.metadata["nbgrader"] = meta
        nb.cells.append(cell)
    return nb


# --------------------------------------------------------------------------- the helpers, fast


def test_the_guide_holds_a_solution_a_public_and_a_hidden_test_and_the_grader_file():
    cells, files = guide_blocks()
    assert [(g, r, p) for g, r, p, _ in cells] == [
        ("l2_distance", "solution", None), ("l2_distance_public", "tests", 1.0), ("l2_distance_hidden", "tests", 2.0)]
    assert "### BEGIN HIDDEN TESTS" in cells[2][3] and "expect=" not in cells[2][3]
    assert list(files) == [f"grader/exercises/{ASSIGNMENT}.py"]


def test_case_keys_and_same():
    assert case_key("l2_distance", ([0, 0], [3, 4])) == "l2_distance([0, 0], [3, 4])"
    assert case_key("f", (1,), {"alpha": 0.5}) == "f(1, alpha=0.5)"
    assert same(5.0 + 1e-9, 5) and same(np.float32(5.0), 5.0) and not same(5.1, 5.0)
    assert same(np.array([[1.0, 2.0]]), [[1, 2]]) and not same(np.array([1.0, 2.0]), [[1, 2]])
    assert not same(True, 1.0) and not same(1, True) and same(np.bool_(True), True)
    assert not same(float("nan"), 5.0) and not same(None, 0.0) and not same("5", 5.0)
    assert same(("Ada", 0.5), ["Ada", 0.5 + 1e-12]) and not same(("Ada", 0.5), ("Bob", 0.5))
    assert same({"a": np.ones(2)}, {"a": [1, 1]}) and not same({"a": 1.0}, {"b": 1.0})


def test_check_records_the_call_and_names_the_mistake(monkeypatch):
    shown = []
    monkeypatch.setenv(ENV_FLAG, "1")
    monkeypatch.setattr("fr_utils.checks._record._display", shown.append)

    def l2_distance(a, b):
        return float(np.sum(np.subtract(a, b) ** 2))

    with pytest.raises(AssertionError, match=re.escape(f"l2_distance([0, 0], [3, 4]) returned 25.0: {SQUARED_HINT}")):
        check(l2_distance, [0, 0], [3, 4], expect=5.0, mistakes={25.0: SQUARED_HINT})
    with pytest.raises(AssertionError, match=re.escape("l2_distance([1, 1], [2, 3]): expected 2.236, got 5.0")):
        check(l2_distance, [1, 1], [2, 3], expect=2.236, mistakes={25.0: SQUARED_HINT})
    assert check(l2_distance, [1, 1], [2, 3]) == 5.0  # a hidden test: records only
    assert [record[MIME]["case"] for record in shown] == [
        "l2_distance([0, 0], [3, 4])", "l2_distance([1, 1], [2, 3])", "l2_distance([1, 1], [2, 3])"]

    def unwritten(a, b):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="unwritten is not implemented yet"):
        check(unwritten, [0], [0], expect=0.0)


def _records(*results: tuple[str, object]) -> list[dict]:
    from fr_utils.checks._record import encode

    return [{"output_type": "display_data", "metadata": {},
             "data": {MIME: {"case": key, "value": encode(value)}}} for key, value in results]


def test_calls_judge_like_the_course_cells():
    squared = lambda a, b: float(np.sum(np.subtract(a, b) ** 2))  # noqa: E731
    right = lambda a, b: float(np.linalg.norm(np.subtract(a, b)))  # noqa: E731
    right.__name__ = squared.__name__ = "l2_distance"
    hidden = calls(right, [([1, 2, 3], [4, 6, 3]), ([0.5], [-0.5])], hidden=True, mistakes={SQUARED_HINT: squared})
    assert [c.key for c in hidden] == ["l2_distance([1, 2, 3], [4, 6, 3])", "l2_distance([0.5], [-0.5])"]
    assert judge_cell(hidden, _records(("l2_distance([1, 2, 3], [4, 6, 3])", np.float64(5.0)),
                                       ("l2_distance([0.5], [-0.5])", 1.0))) == []
    (problem,) = judge_cell(hidden, _records(("l2_distance([1, 2, 3], [4, 6, 3])", 25.0),
                                             ("l2_distance([0.5], [-0.5])", 1.0)))
    assert problem == f"Hidden test: l2_distance([1, 2, 3], [4, 6, 3]): your function returned 25: {SQUARED_HINT}."
    (problem,) = judge_cell(hidden, _records(("l2_distance([1, 2, 3], [4, 6, 3])", 7.0),
                                             ("l2_distance([0.5], [-0.5])", 1.0)))
    assert problem.endswith("): your function returned 7, which is not the right answer.")  # no answer shown
    (problem,) = judge_cell(calls(lambda x: 2 * x, [3.0], name="f"), _records(("f(3.0)", "three")))
    assert "f(3.0): expected" in problem and "'three'" in problem  # public: the expected value is shown
    assert exercise_cells("no_such_exercise") is None and exercise_cells("not-an-identifier") is None


# --------------------------------------------------------------------------- the nbgrader cycle


@pytest.mark.slow
def test_the_guides_exercise_through_the_nbgrader_cycle(tmp_path):
    """The guide's notebook and grader file, as an instructor would add them, in ONE autograde call:
    the solution gets 3 of 3; the squared distance gets 0, each cell saying why with the guide's hint."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__", "exercises"))
    (root / "grader" / "exercises").mkdir()
    shutil.copy(REPO / "grader" / "exercises" / "__init__.py", root / "grader" / "exercises" / "__init__.py")
    for path, text in guide_blocks()[1].items():
        (root / path).write_text(text, encoding="utf-8")
    source = root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    source.parent.mkdir(parents=True)
    nbformat.write(guide_notebook(), str(source))

    course = Course(root, ASSIGNMENT)
    course.generate_assignment()
    release = course.read_release(ASSIGNMENT)
    assert "BEGIN HIDDEN TESTS" not in nbformat.writes(release) and "[4, 6, 3]" not in nbformat.writes(release)
    solution = solution_code(guide_blocks()[0][0][3])
    squared = solution.replace("float(np.linalg.norm(np.subtract(a, b, dtype=float)))",
                               "float(np.sum(np.subtract(a, b, dtype=float) ** 2))")
    assert squared != solution
    course.submit("right", ASSIGNMENT, with_sources(release, {"l2_distance": solution}))
    course.submit("squared", ASSIGNMENT, with_sources(release, {"l2_distance": squared}))
    course.autograde()

    scores = course.scores(ASSIGNMENT)
    assert scores["right"] == {"l2_distance_public": 1.0, "l2_distance_hidden": 2.0}, scores
    assert scores["squared"] == {"l2_distance_public": 0.0, "l2_distance_hidden": 0.0}, scores
    graded = course.read_autograded("squared", ASSIGNMENT)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in graded.cells}
    public = "\n".join(e.evalue for e in error_outputs(cells["l2_distance_public"]))
    hidden = "\n".join(e.evalue for e in error_outputs(cells["l2_distance_hidden"]))
    assert f"l2_distance([0, 0], [3, 4]) returned 25.0: {SQUARED_HINT}" in public
    assert f"Hidden test: l2_distance([1, 2, 3], [4, 6, 3]): your function returned 25: {SQUARED_HINT}" in hidden
    assert "l2_distance([0.5], [-0.5])" not in hidden  # 1.0 either way: that case is right
