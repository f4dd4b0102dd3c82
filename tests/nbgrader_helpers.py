"""The real nbgrader cycle on one assignment, in a throw-away course directory.

Reusable by every assignment's tests::

    course = Course.create(tmp_path, "triplet_loss")    # config + notebooks/triplet_loss
    course.generate_assignment()                          # release/triplet_loss/
    release = course.read_release("triplet_loss")
    course.submit("alice", "triplet_loss", with_sources(release, {"some_solution": code}))
    course.autograde()                                    # ONE call grades every student
    course.scores("triplet_loss")["alice"]                # {grade_id: points}

nbgrader runs as a subprocess of this interpreter (``python -m nbgrader``) with
its ``bin/`` first on PATH, exactly as an instructor runs it from the README.
"""

from __future__ import annotations

import copy
import csv
import html
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import nbformat
from nbformat.notebooknode import NotebookNode

REPO = Path(__file__).resolve().parents[1]
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"


def nbgrader_env() -> dict[str, str]:
    """The environment nbgrader needs: this interpreter's bin/ first on PATH
    (nbgrader shells out to ``alembic``), quiet TensorFlow."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("JUPYTER_CONFIG_DIR", None)
    return env


# -- notebooks -----------------------------------------------------------------


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def cell_by_id(nb: NotebookNode, cell_id: str) -> NotebookNode:
    for cell in nb.cells:
        if grade_id(cell) == cell_id:
            return cell
    raise KeyError(f"no cell with grade_id {cell_id!r}")


def grade_cells(nb: NotebookNode) -> dict[str, float]:
    """``{grade_id: points}`` of the notebook's autograded cells."""
    return {
        grade_id(cell): float(nbgrader_meta(cell)["points"])
        for cell in nb.cells
        if nbgrader_meta(cell).get("grade")
    }


def with_sources(nb: NotebookNode, sources: Mapping[str, str]) -> NotebookNode:
    """A copy of ``nb`` whose cells named in ``sources`` (by grade_id) hold new code."""
    nb = copy.deepcopy(nb)
    for cell_id, source in sources.items():
        cell_by_id(nb, cell_id).source = source
    return nb


def without_cells(nb: NotebookNode, cell_ids: Iterable[str]) -> NotebookNode:
    """A copy of ``nb`` with the cells of these grade_ids deleted."""
    doomed = set(cell_ids)
    nb = copy.deepcopy(nb)
    nb.cells = [cell for cell in nb.cells if grade_id(cell) not in doomed]
    return nb


def regions(source: str, begin: str, end: str) -> list[str]:
    """The lines strictly between ``begin`` and ``end`` marker lines."""
    lines, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def unmarked_text(nb: NotebookNode, begin: str, end: str) -> str:
    """All cell sources with the marked regions (and their marker lines) left out."""
    kept = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if begin in line:
                inside = True
            elif end in line:
                inside = False
            elif not inside:
                kept.append(line)
    return "\n".join(kept)


def all_sources(nb: NotebookNode) -> str:
    return "\n".join(cell.source for cell in nb.cells)


def marked_lines(nb: NotebookNode, begin: str, end: str, min_length: int = 12) -> list[str]:
    """Distinctive lines (stripped, at least ``min_length`` characters) inside marked regions."""
    found = []
    for cell in nb.cells:
        for line in regions(cell.source, begin, end):
            line = line.strip()
            if len(line) >= min_length and not line.startswith("#"):
                found.append(line)
    return found


def html_text(path: Path) -> str:
    """What a reader sees in an HTML file: tags (and styles/scripts) removed, entities decoded."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", raw)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", raw))


def secret_lines(nb: NotebookNode) -> list[str]:
    """Lines of the solutions and hidden tests, less those the notebook's own text gives away."""
    return [
        line
        for begin, end in ((SOLUTION_BEGIN, SOLUTION_END), (HIDDEN_BEGIN, HIDDEN_END))
        for line in marked_lines(nb, begin, end)
        if line not in unmarked_text(nb, begin, end)
    ]


def solution_code(source: str) -> str:
    """A solution cell's source without its BEGIN/END SOLUTION marker lines: what a learner would type."""
    return "\n".join(
        line for line in source.splitlines() if SOLUTION_BEGIN not in line and SOLUTION_END not in line
    )


def metadata_problems(nb: NotebookNode) -> list[str]:
    """What breaks the rules every assignment follows, one line each (empty: none).

    Grade ids are unique and cells use nbgrader's schema 3; a solution cell has
    its BEGIN/END SOLUTION markers and is not graded itself (the test cells after
    it are); a test cell is a locked code cell; hidden tests sit in test cells.
    """
    problems = []
    metas = [nbgrader_meta(cell) for cell in nb.cells if nbgrader_meta(cell)]
    ids = [meta["grade_id"] for meta in metas]
    problems += [f"grade id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    problems += [f"{m['grade_id']}: schema_version {m.get('schema_version')}, not 3"
                 for m in metas if m.get("schema_version") != 3]
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        where = meta.get("grade_id", "a cell without nbgrader metadata")
        if meta.get("solution"):
            if SOLUTION_BEGIN not in cell.source or SOLUTION_END not in cell.source:
                problems.append(f"{where}: solution cell without its SOLUTION markers")
            if meta.get("grade"):
                problems.append(f"{where}: a solution cell must not be graded itself")
        if meta.get("grade") and not (meta.get("locked") and cell.cell_type == "code"):
            problems.append(f"{where}: a test cell must be a locked code cell")
        if HIDDEN_BEGIN in cell.source and not meta.get("grade"):
            problems.append(f"{where}: hidden tests belong in test cells")
    return problems


def leaked_hidden_tests(nb: NotebookNode) -> list[str]:
    """Lines of the notebook's hidden tests that also appear in fr_utils/checks/ (students read those)."""
    public = "\n".join(path.read_text() for path in (REPO / "fr_utils" / "checks").glob("*.py"))
    return [line for line in marked_lines(nb, HIDDEN_BEGIN, HIDDEN_END) if line in public]


def misplaced_test_cells(nb: NotebookNode) -> list[str]:
    """Grade ids of test cells that do not directly follow a solution or test cell.

    nbgrader 0.9.6 re-inserts a deleted test cell after the nbgrader cell that
    preceded it, and fails (KeyError) if that one is neither a solution nor a grade
    cell, so no other kind of nbgrader cell (a locked read-only cell) may come first.
    """
    misplaced, previous = [], None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta:
            continue
        if meta.get("grade") and not (previous and (previous.get("grade") or previous.get("solution"))):
            misplaced.append(meta["grade_id"])
        previous = meta
    return misplaced


def error_outputs(cell: NotebookNode) -> list[NotebookNode]:
    return [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]


# -- the course ----------------------------------------------------------------


@dataclass
class Course:
    root: Path
    assignment: str

    @classmethod
    def create(cls, root: Path, assignment: str, repo: Path = REPO) -> "Course":
        """Copy ``nbgrader_config.py``, ``grader/`` and ``notebooks/<assignment>`` into ``root``."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo / "nbgrader_config.py", root / "nbgrader_config.py")
        # nbgrader_config.py imports the grading side from its own folder
        shutil.copytree(repo / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(
            repo / "notebooks" / assignment,
            root / "notebooks" / assignment,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
        return cls(root, assignment)

    # paths
    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def source_path(self, notebook: str) -> Path:
        return self.root / "notebooks" / self.assignment / f"{notebook}.ipynb"

    def release_path(self, notebook: str) -> Path:
        return self.root / "release" / self.assignment / f"{notebook}.ipynb"

    def submitted_path(self, student: str, notebook: str) -> Path:
        return self.root / "submitted" / student / self.assignment / f"{notebook}.ipynb"

    def autograded_path(self, student: str, notebook: str) -> Path:
        return self.root / "autograded" / student / self.assignment / f"{notebook}.ipynb"

    def feedback_path(self, student: str, notebook: str) -> Path:
        return self.root / "feedback" / student / self.assignment / f"{notebook}.html"

    # nbgrader commands
    def nbgrader(self, *args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
        """``python -m nbgrader ARGS`` in the course root; fail loudly with its log."""
        process = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.root,
            env=nbgrader_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and process.returncode != 0:
            raise AssertionError(
                f"nbgrader {' '.join(args)} exited with {process.returncode}\n"
                f"--- stdout ---\n{process.stdout[-6000:]}\n--- stderr ---\n{process.stderr[-6000:]}"
            )
        return process

    def generate_assignment(self) -> None:
        self.nbgrader("generate_assignment", self.assignment, "--force")

    def validate(self, path: Path, invert: bool = False) -> str:
        """Run ``nbgrader validate`` and return what it prints (it always exits 0)."""
        args = ["validate", *(["--invert"] if invert else []), str(path)]
        process = self.nbgrader(*args)
        return process.stdout + process.stderr

    def read_source(self, notebook: str) -> NotebookNode:
        return read_notebook(self.source_path(notebook))

    def read_release(self, notebook: str) -> NotebookNode:
        return read_notebook(self.release_path(notebook))

    def read_autograded(self, student: str, notebook: str) -> NotebookNode:
        return read_notebook(self.autograded_path(student, notebook))

    def submit(self, student: str, notebook: str, nb: NotebookNode) -> Path:
        path = self.submitted_path(student, notebook)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    def autograde(self, *extra: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        """Autograde every submitted student in one nbgrader process."""
        return self.nbgrader("autograde", self.assignment, "--force", *extra, timeout=timeout)

    def generate_feedback(self) -> subprocess.CompletedProcess:
        return self.nbgrader("generate_feedback", self.assignment, "--force")

    def export(self, filename: str = "grades.csv") -> list[dict[str, str]]:
        """``nbgrader export`` and the rows of the CSV it writes."""
        self.nbgrader("export", "--to", filename)
        with open(self.root / filename, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    # the gradebook
    def scores(self, notebook: str) -> dict[str, dict[str, float]]:
        """``{student: {grade_id: score}}`` for every graded submission of ``notebook``."""
        from nbgrader.api import Gradebook, MissingEntry

        result: dict[str, dict[str, float]] = {}
        with Gradebook(self.db_url) as gradebook:
            for student in gradebook.students:
                try:
                    submitted = gradebook.find_submission_notebook(notebook, self.assignment, student.id)
                except MissingEntry:
                    continue
                result[student.id] = {grade.name: float(grade.score) for grade in submitted.grades}
        return result

    def max_scores(self, notebook: str) -> dict[str, float]:
        """``{grade_id: max_score}`` as recorded in the gradebook by generate_assignment."""
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url) as gradebook:
            found = gradebook.find_notebook(notebook, self.assignment)
            return {cell.name: float(cell.max_score) for cell in found.grade_cells}


def run_cell_recording(code: str, namespace: dict, name: str = "<test cell>") -> list[dict]:
    """Run a test cell's code as the graded notebook would, with fr_utils.checks' records on
    (what the grader judges); returns the display outputs it recorded."""
    import contextlib
    import io

    import pytest

    from fr_utils.checks import _record

    outputs: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_record.ENV_FLAG, "1")
        patch.setattr(_record, "_display", lambda bundle: outputs.append(
            {"output_type": "display_data", "data": bundle, "metadata": {}}))
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, name, "exec"), namespace)  # noqa: S102 - this repository's notebook
    return outputs
