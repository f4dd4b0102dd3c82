"""fr_utils as a distribution (issue #12): the wheel alone, in a fresh environment far
from the repository, runs a released notebook to full marks; the weights are found
in one documented search path; TensorFlow's start-up log stays out of outputs;
a failing public check shows its message, not library source."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from nbgrader_helpers import REPO, Course, nbgrader_env, nbgrader_meta, solution_code, with_sources
from fr_utils import weights as W

TF_LOG_MARKERS = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "I0000 ")


def clean_env(**extra) -> dict[str, str]:
    """This machine's environment less what points into the repository or at its weights."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "FR_WEIGHTS_DIR", "VIRTUAL_ENV"}}
    env.update(extra)
    return env


# -- the weights' search path ------------------------------------------------------


def test_weights_are_searched_in_the_documented_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_WEIGHTS_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    path = W.weights_search_path()
    assert path[:2] == [tmp_path / "explicit", tmp_path / "xdg" / "fr_utils" / "weights"]
    assert path[2:] == list(W.SYSTEM_WEIGHTS_DIRS)
    assert W.SYSTEM_WEIGHTS_DIRS[0] == Path(sys.prefix) / "share" / "fr_utils" / "weights"
    assert W.build_dir() == tmp_path / "explicit"  # the first writable one, created on demand
    monkeypatch.delenv("FR_WEIGHTS_DIR")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.weights_search_path()[0] == tmp_path / "home" / ".local" / "share" / "fr_utils" / "weights"


def test_loading_takes_the_first_folder_that_holds_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "fr_utils" / "weights"
    user.mkdir(parents=True)
    monkeypatch.setattr(W, "SYSTEM_WEIGHTS_DIRS", (tmp_path / "system",))
    with pytest.raises(W.WeightsError) as err:
        W.find_weights_dir()
    message = str(err.value)
    for folder in (tmp_path / "empty", user, tmp_path / "system"):  # every folder searched is named
        assert str(folder) in message
    assert "python -m fr_utils.weights build" in message
    W.manifest_path(user).write_text("{}")
    assert W.find_weights_dir() == user and W.weights_dir() == user


def test_where_command_lists_the_search_path(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fr_utils.weights", "where"], capture_output=True, text=True,
                         cwd=tmp_path, env=clean_env(PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "x"),
                                                     FR_WEIGHTS_DIR=str(tmp_path / "w")), timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(tmp_path / "w")) and lines[1].startswith(str(tmp_path / "x" / "fr_utils"))
    assert out.returncode == (0 if "loading from" in out.stdout else 1)


# -- what people see -----------------------------------------------------------------


def test_importing_tensorflow_after_fr_utils_writes_nothing_to_stderr(tmp_path):
    code = "import fr_utils, keras, tensorflow as tf; print(float(tf.reduce_sum(tf.ones(3))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env=clean_env(PYTHONPATH=str(REPO)), timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "3.0", out.stderr
    assert not [m for m in TF_LOG_MARKERS if m in out.stderr], out.stderr


def test_a_failing_public_check_shows_its_message_first_in_a_notebook(tmp_path):
    """In a real kernel: the check's message is the first line of the error, no library
    source follows; a learner's own error keeps its full traceback, without the runner."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from fr_utils.checks import verification as checks\n"
                                  "def wrong(far, k):\n    return far * k\n"
                                  "def broken(far, k):\n    return far / 0"),
        nbformat.v4.new_code_cell("checks.check_far_two_people(wrong)"),
        nbformat.v4.new_code_cell("checks.check_far_two_people(broken)"),
    ]
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    (failed,) = nb.cells[1].outputs
    assert failed.output_type == "error" and failed.ename == "AssertionError"
    first = failed.traceback[0]
    assert "expected 0.19, got 0.2" in first and "Two people enrolled" in first, failed.traceback
    shown = "\n".join(failed.traceback)
    assert len(failed.traceback) <= 4 and "raise AssertionError" not in shown and "def _expect_far" not in shown
    assert "check_far_two_people(), called by line 1 of this cell" in shown
    (own,) = nb.cells[2].outputs
    own_text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(own.traceback))
    assert own.ename == "ZeroDivisionError" and "far / 0" in own_text  # the learner's line is shown
    assert "_runner.py" not in own_text  # the time-limit wrapper's frame is hidden


# -- the wheel in a fresh environment -------------------------------------------------


def build_wheel(tmp_path: Path) -> Path:
    """The fr_utils wheel, built from a copy of what it is made of (the repository stays untouched)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fr_utils", src / "fr_utils", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    args = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(src)]
    if importlib.util.find_spec("setuptools"):  # build with this environment's setuptools: no download
        args.insert(5, "--no-build-isolation")
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("fr_utils-*.whl")
    return wheel


def test_the_wheel_ships_every_file_of_the_package(tmp_path):
    """Every file of fr_utils/ (code, the cast, its credits) is in the wheel, and nothing of the
    course: no notebooks, no grader/, no tests; the cast-building tool stays in the repository."""
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")}
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "fr_utils").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.name != "build_cast.py"}
    assert sorted(expected - shipped) == []
    assert {n.split("/")[0] for n in shipped} == {"fr_utils"}
    assert "fr_utils/cast/people/Grace_Hopper/Grace_Hopper_0001.jpg" in shipped




def solved(course: Course, notebook: str):
    source = course.read_source(notebook)
    solutions = {nbgrader_meta(c)["grade_id"]: solution_code(c.source)
                 for c in source.cells if nbgrader_meta(c).get("solution")}
    return with_sources(course.read_release(notebook), solutions)


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_far_from_the_repo_grades_a_released_notebook_to_full_marks(tmp_path):
    """deploy/make_student_env.sh builds the wheel and a venv in a temporary folder;
    nbgrader (the instructor's environment) grades a solved student version of
    pretrained_encoder (the cast and the weights) in that venv's kernel, as on a hub."""
    venv, kernels = tmp_path / "student-venv", tmp_path / "kernels"
    start = time.perf_counter()
    made = subprocess.run(["bash", str(REPO / "deploy" / "make_student_env.sh"), str(venv),
                           "--kernel", "fr-student", "--kernel-prefix", str(kernels)],
                          capture_output=True, text=True, env=clean_env(FR_WEIGHTS_DIR=os.environ.get(
                              "FR_WEIGHTS_DIR", str(REPO / "weights"))), timeout=1800)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    print(f"\nmake_student_env.sh: {time.perf_counter() - start:.0f} s")

    # The student environment alone: fr_utils from its site-packages, the cast and the
    # weights inside the venv, found with no setting, from a folder with no repository.
    probe = ("import json, fr_utils, fr_utils.data as d, fr_utils.weights as w; "
             "print(json.dumps([fr_utils.__file__, str(d.cast_dir()), str(w.find_weights_dir()), "
             "sorted(d.sample_cast())]))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env=clean_env(XDG_DATA_HOME=str(tmp_path / "no-user-data")), timeout=300)
    assert out.returncode == 0, out.stderr
    module, cast, weights, people = json.loads(out.stdout.strip().splitlines()[-1])
    site = str(venv / "lib")
    assert module.startswith(site) and cast.startswith(site) and weights == str(venv / "share" / "fr_utils" / "weights")
    assert people == ["Barack_Obama", "Eileen_Collins", "Grace_Hopper", "Joseph_Biden"]
    shipped = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "show", "-f", "fr_utils"],
                             capture_output=True, text=True, env=clean_env(), timeout=120).stdout
    assert "fr_utils/cast/CREDITS.md" in shipped and ".ipynb" not in shipped and "grader/" not in shipped

    notebook = "pretrained_encoder"
    course = Course.create(tmp_path / "course", notebook)
    course.generate_assignment()
    course.submit("alice", notebook, solved(course, notebook))
    # The grader (nbgrader's process) keeps the instructor's settings: it computes reference
    # encodings itself. The kernel gets none of them (an empty value counts as unset), so it
    # must find fr_utils, the cast and the weights in its own venv; the instructor's Python
    # would find no weights there and fail.
    spec_file = kernels / "share" / "jupyter" / "kernels" / "fr-student" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][0].startswith(str(venv)), spec["argv"]  # the student venv's Python
    spec["env"] = {"PYTHONPATH": "", "FR_WEIGHTS_DIR": "", "XDG_DATA_HOME": str(tmp_path / "no-user-data")}
    spec_file.write_text(json.dumps(spec))
    env = {**nbgrader_env(), "JUPYTER_PATH": str(kernels / "share" / "jupyter")}
    start = time.perf_counter()
    # The sandboxed autograder (grader/sandbox.py) lets the kernel read the student venv too.
    graded = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", notebook, "--force",
                             "--Execute.kernel_name=fr-student", f"--SandboxKernelManager.read_only_paths={venv}"],
                            cwd=course.root, env=env, capture_output=True, text=True, timeout=1800)
    assert graded.returncode == 0, graded.stdout[-4000:] + graded.stderr[-4000:]
    print(f"autograde in the student kernel: {time.perf_counter() - start:.0f} s")
    scores = course.scores(notebook)["alice"]
    assert scores == course.max_scores(notebook), scores

    # No TensorFlow log block in any output of the executed notebook.
    executed = course.read_autograded("alice", notebook)
    texts = ["".join(o.get("text", "")) for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [t for t in texts if any(m in t for m in TF_LOG_MARKERS)], [t for t in texts if "absl" in t][:1]
