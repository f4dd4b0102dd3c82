"""The course through nbgrader's exchange, from the command line, on one machine (issue #12).

The instructor works in the course folder (nbgrader_config.py: course ``facenet``,
exchange ``exchange/`` beside the config); each student in a folder of their own,
with their own nbgrader cache, naming the course and the exchange on the command
line and themselves with ``--student`` (nbgrader takes the OS user otherwise, and
$JUPYTERHUB_USER only for the OS user ``jovyan``: nbgrader.utils.get_username).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nbgrader_helpers import (
    REPO,
    Course,
    html_text,
    nbgrader_env,
    nbgrader_meta,
    read_notebook,
    secret_lines,
    solution_code,
    with_sources,
)

A = "triplet_loss"


def load_config(root: Path, **env):
    """nbgrader_config.py of ``root`` as nbgrader loads it."""
    code = (
        "import json, sys; from traitlets.config.loader import PyFileConfigLoader; "
        f"c = PyFileConfigLoader('nbgrader_config.py', path={str(root)!r}).load_config(); "
        "print(json.dumps({'course': c.CourseDirectory.course_id, 'root': c.Exchange.root}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**nbgrader_env(), **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_course_has_an_id_and_an_exchange_it_creates_itself(tmp_path):
    course = Course.create(tmp_path / "course", A)
    cfg = load_config(course.root)
    assert cfg == {"course": "facenet", "root": str(course.root / "exchange")}
    assert (course.root / "exchange").is_dir()  # nbgrader requires it to exist; no root needed
    shared = tmp_path / "shared-exchange"
    assert load_config(course.root, FR_EXCHANGE_ROOT=str(shared))["root"] == str(shared)  # a hub's shared folder
    assert shared.is_dir()
    assert "exchange/" in (REPO / ".gitignore").read_text().splitlines()


class Student:
    """A student on the same machine: own working folder, own nbgrader cache."""

    def __init__(self, name: str, home: Path, exchange: Path):
        self.name, self.home, self.exchange = name, home, exchange
        home.mkdir(parents=True)

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        env = {**nbgrader_env(), "JUPYTER_DATA_DIR": str(self.home / ".jupyter-data")}
        process = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args, "--course", "facenet", f"--Exchange.root={self.exchange}"],
            cwd=self.home, env=env, capture_output=True, text=True, timeout=600,
        )
        assert process.returncode == 0, f"{self.name}: nbgrader {args}\n{process.stdout}\n{process.stderr}"
        return process


def timed(times: dict, step: str, call):
    start = time.perf_counter()
    result = call()
    times[step] = times.get(step, 0.0) + time.perf_counter() - start
    return result


@pytest.mark.slow
def test_two_students_fetch_submit_and_get_their_own_feedback_through_the_exchange(tmp_path):
    course = Course.create(tmp_path / "course", A)
    exchange = course.root / "exchange"
    alice, bob = (Student(n, tmp_path / n, exchange) for n in ("alice", "bob"))
    times: dict[str, float] = {}

    timed(times, "generate_assignment", course.generate_assignment)
    timed(times, "release_assignment", lambda: course.nbgrader("release_assignment", A))
    released = exchange / "facenet" / "outbound" / A / f"{A}.ipynb"
    assert released.is_file()
    assert not [line for line in secret_lines(course.read_source(A)) if line in released.read_text()]

    for student in (alice, bob):
        timed(times, "fetch_assignment (both students)", lambda: student.nbgrader("fetch_assignment", A))
    fetched = alice.home / A / f"{A}.ipynb"
    assert read_notebook(fetched) == read_notebook(released)

    # alice solves it with the instructor's solution; bob submits it untouched
    source = course.read_source(A)
    solutions = {nbgrader_meta(c)["grade_id"]: solution_code(c.source)
                 for c in source.cells if nbgrader_meta(c).get("solution")}
    nbformat.write(with_sources(read_notebook(fetched), solutions), str(fetched))
    for student in (alice, bob):
        out = timed(times, "submit (both students)", lambda: student.nbgrader("submit", A, "--student", student.name))
        assert "Submitted as: facenet triplet_loss" in out.stdout + out.stderr
    inbound = sorted(p.name.split("+")[0] for p in (exchange / "facenet" / "inbound").iterdir())
    assert inbound == ["alice", "bob"]

    timed(times, "collect", lambda: course.nbgrader("collect", A))
    assert course.submitted_path("alice", A).is_file() and course.submitted_path("bob", A).is_file()
    graded = timed(times, "autograde (2 students)", course.autograde)
    log = graded.stdout + graded.stderr
    assert "has changed" not in log, log  # honest submissions: no "Attribute 'checksum' ... has changed!"
    scores = course.scores(A)
    assert sum(scores["alice"].values()) == 12 and sum(scores["bob"].values()) == 0
    executed = course.read_autograded("alice", A)  # no TensorFlow start-up log block in any output
    outputs = ["".join(o.get("text", "")) for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [t for t in outputs if "absl::InitializeLog" in t or "oneDNN custom operations" in t]
    timed(times, "generate_feedback", course.generate_feedback)
    timed(times, "release_feedback", lambda: course.nbgrader("release_feedback", A))

    for student, score in ((alice, "12.0 / 12.0"), (bob, "0.0 / 12.0")):
        timed(times, "fetch_feedback (both students)", lambda: student.nbgrader("fetch_feedback", A, "--student", student.name))
        (html,) = (student.home / A / "feedback").glob(f"*/{A}.html")
        text = " ".join(html_text(html).split())
        assert f"{A} (Score: {score})" in text, text[:300]
        raw = html.read_text(encoding="utf-8")
        assert not re.search(r"<script[^>]+src=\"https?:", raw)  # no CDN: MathJax is embedded
        assert '<script src="data:text/javascript;base64,' in raw
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:  # the maths is typeset with no network: MathJax's SVG containers in the DOM
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                              "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=180).stdout
        assert dom.count("<mjx-container") >= 10, dom[:500]
    print("\nclassroom cycle, 2 students, seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


@pytest.mark.slow
def test_files_that_are_not_the_notebook_get_a_clear_line_and_zero_and_the_class_is_graded(tmp_path):
    course = Course.create(tmp_path / "course", A)
    course.generate_assignment()
    release = course.read_release(A)
    source = course.read_source(A)
    solutions = {nbgrader_meta(c)["grade_id"]: solution_code(c.source)
                 for c in source.cells if nbgrader_meta(c).get("solution")}
    course.submit("alice", A, with_sources(release, solutions))
    other = course.root / "submitted" / "dave" / A / "door.ipynb"  # another assignment's notebook
    other.parent.mkdir(parents=True)
    nbformat.write(release, str(other))
    course.submit("erin", A, nbformat.v4.new_notebook())  # an empty notebook
    broken = course.submitted_path("frank", A)
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [')  # invalid JSON
    photo = course.submitted_path("gina", A)
    photo.parent.mkdir(parents=True)
    photo.write_bytes((REPO / "fr_utils" / "cast" / "other" / "no_face_coffee.jpg").read_bytes())  # not a notebook

    process = course.nbgrader("autograde", A, "--force", check=False)
    log = process.stdout + process.stderr
    expected = {
        "dave": "door.ipynb: not a notebook of this assignment (it expects triplet_loss.ipynb)",
        "erin": "triplet_loss.ipynb: an empty notebook (no cells)",
        "frank": "triplet_loss.ipynb: not a notebook: invalid JSON",
        "gina": "triplet_loss.ipynb: not a notebook: binary data",
    }
    for student, message in expected.items():
        line = next((ln for ln in log.splitlines() if f"student {student!r}" in ln), "")
        assert message in line and "gets 0" in line, f"{student}: no clear line in the log\n{log[-4000:]}"
    rows = {row["student_id"]: float(row["score"]) for row in course.export()}
    assert rows == {"alice": 12.0, "dave": 0.0, "erin": 0.0, "frank": 0.0, "gina": 0.0}
    assert "has changed" not in log


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_at_the_course_root_sees_the_course_and_fetches_through_the_exchange(tmp_path):
    """What `make course` starts, on a course folder: the Assignment List's server side names
    the course, lists the released assignment and fetches it; the Formgrader's API lists it."""
    import os
    import urllib.parse
    import urllib.request

    course = Course.create(tmp_path / "course", A)
    course.generate_assignment()
    course.nbgrader("release_assignment", A)
    port, token = _free_port(), "exchange-test-token"
    args = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={course.root}", f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    env = {**nbgrader_env(), "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data")}
    server = subprocess.Popen(args, cwd=course.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def call(path: str, data: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=120) as response:
            return json.loads(response.read() or b"null")

    try:
        deadline = time.time() + 180
        while True:
            try:
                call("/api/status")
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "JupyterLab did not come up"
                time.sleep(1)
        assert call("/courses") == {"success": True, "value": ["facenet"]}
        listed = call("/assignments?course_id=facenet")
        assert listed["success"], listed
        assert [(a["assignment_id"], a["status"]) for a in listed["value"]] == [(A, "released")]
        fetched = call("/assignments/fetch", {"assignment_id": A, "course_id": "facenet"})
        assert fetched["success"], fetched
        assert (course.root / A / f"{A}.ipynb").is_file()  # fetched into the server's root folder
        formgrader = call("/formgrader/api/assignments")
        assert [a["name"] for a in formgrader] == [A] and formgrader[0]["status"] == "released", formgrader
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

