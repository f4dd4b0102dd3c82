"""The classroom cycle on a local JupyterHub, driven in a real browser (Chromium).

One demo class (deploy/jupyterhub/classroom.py) with its own system users
``fr-e2e-instructor``, ``fr-e2e-student1`` and ``fr-e2e-student2``:

1. the instructor generates and releases ``triplet_loss`` in the Formgrader;
2. both students log in and fetch it from their Assignment List;
3. student 1 solves it (the instructor's solutions written into the fetched
   notebook through the contents API), student 2 leaves it untouched;
   both submit from the Assignment List;
4. the instructor collects, autogrades each submission, generates and releases
   feedback, all in the Formgrader;
5. each student fetches feedback from the Assignment List and reads their own
   score in the feedback page: full marks for student 1, 0 for student 2.

Each step's seconds are printed and written, with screenshots and the hub's
log, to ``test-artifacts/classroom-e2e/`` (git-ignored).  Needs root (system
users; JupyterHub starts each server as its user), Debian's chromium
(``system-packages.txt``) and configurable-http-proxy (``make hub-deps``).
The hub listens on 127.0.0.1 only; every process it started is stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nbgrader_helpers import REPO, cell_by_id, grade_cells, read_notebook, solution_code, with_sources

sys.path.insert(0, str(REPO / "deploy" / "jupyterhub"))
import classroom  # noqa: E402

pytestmark = pytest.mark.slow

ASSIGNMENT = NOTEBOOK = "triplet_loss"
SOLUTION_CELLS = ("triplet_loss_solution", "semi_hard_solution")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "classroom-e2e"
# Kept between runs (the Python copy and the servers' environment are made once);
# each run empties the homes, the exchange and the course copy (setup(reset=True)).
# Not under pytest's tmp folder: the class users must reach it, /tmp/pytest-of-root is 700.
STATE = Path(os.environ.get("FR_CLASSROOM_E2E_STATE", "/var/tmp/facenet-classroom-e2e"))
SPAWN_S = 240  # a user's server start on a busy machine
GRADE_S = 300  # autograding one submission (a kernel importing TensorFlow)

TIMES: dict[str, float] = {}


class timed:
    """``with timed("step"):`` records the step's wall-clock seconds in TIMES."""

    def __init__(self, step: str):
        self.step = step

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        TIMES[self.step] = round(time.perf_counter() - self.started, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_of(users) -> list[psutil.Process]:
    return [proc for proc in psutil.process_iter(["username"]) if proc.info["username"] in users]


@pytest.fixture(scope="module")
def room():
    if os.geteuid() != 0:
        pytest.skip("the classroom test needs root: it creates system users fr-e2e-* and "
                    "JupyterHub starts each user's server as that user")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (system-packages.txt; `make test` does)")
    if not classroom.PROXY.exists():
        pytest.fail(f"{classroom.PROXY} not found: run `make hub-deps`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():
        old.unlink()
    weights = os.environ.get("FR_WEIGHTS_DIR")
    room = classroom.Classroom(
        state=STATE, students=2, prefix="fr-e2e-", home_root=STATE / "home",
        port=free_port(), hub_port=free_port(), proxy_api_port=free_port(),
        weights_dir=Path(weights).resolve() if weights else None,
    )
    with timed("set-up: users, course copy, exchange, per-user extensions"):
        room.setup(reset=True)
    log = open(ARTIFACTS / "jupyterhub.log", "w")
    with timed("hub start"):
        hub = room.start(log_file=log)
    print(f"\nclassroom hub {room.url} (state {STATE}); artefacts in {ARTIFACTS}")
    try:
        yield room
    finally:
        classroom.stop(hub)
        log.close()
        left = processes_of(room.users)
        for proc in left:  # only the class users' processes: the hub started them all
            proc.kill()
        assert not left, f"processes of the class users left after the hub stopped: {left}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        # --no-sandbox: Chromium refuses to sandbox itself as root.
        chromium = play.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


# -- what a user does in the browser --------------------------------------------


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(browser, room, user: str):
    """A fresh browser profile for ``user``: log in, wait for JupyterLab."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(room.url + "hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", room.password())
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=SPAWN_S * 1000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=SPAWN_S * 1000)
    return page


def open_assignment_list(page):
    page.get_by_text("Nbgrader", exact=True).click()
    page.get_by_text("Assignment List", exact=True).click()
    page.wait_for_selector("#released_assignments_list")


def formgrader(page, room, user: str, path: str) -> None:
    page.goto(f"{room.url}user/{user}/formgrader/{path}")


def click_and_confirm(page, selector: str, success: str, timeout_s: float = 120) -> None:
    """Click a Formgrader action, wait for its result dialog, check it says ``success``, close it."""
    page.click(selector)
    page.wait_for_selector(".modal.in .modal-body", timeout=timeout_s * 1000)
    body = page.inner_text(".modal.in .modal-body")
    assert success in body, f"{selector}:\n{body}"
    page.click(".modal.in .modal-footer button")
    page.wait_for_selector(".modal.in", state="detached")


def assignment_row(name: str) -> str:
    return f"tr:has(td.name:has-text('{name}'))"


def put_notebook(page, room, user: str, path: str, nb) -> None:
    """Save a notebook through the server's contents API, as JupyterLab does."""
    status = page.evaluate(
        """async ([url, content]) => {
            const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
            const answer = await fetch(url, {
                method: "PUT",
                headers: {"Content-Type": "application/json", "X-XSRFToken": decodeURIComponent(xsrf)},
                body: JSON.stringify({type: "notebook", format: "json", content}),
            });
            return answer.status;
        }""",
        [f"{room.url}user/{user}/api/contents/{path}", json.loads(json.dumps(nb))],
    )
    assert status in (200, 201), f"saving {path} as {user}: HTTP {status}"


def feedback_score(page, room, user: str) -> tuple[float, float]:
    """Open the student's fetched feedback page and read ``(Score: got / max)``."""
    pages = sorted((room.home(user) / ASSIGNMENT / "feedback").glob(f"*/{NOTEBOOK}.html"))
    assert pages, f"no feedback fetched into {room.home(user) / ASSIGNMENT / 'feedback'}"
    relative = pages[-1].relative_to(room.home(user))
    page.goto(f"{room.url}user/{user}/files/{relative.as_posix()}")
    found = re.search(r"\(Score: ([\d.]+) / ([\d.]+)\)", page.inner_text("body"))
    assert found, f"no score in {relative}"
    return float(found.group(1)), float(found.group(2))


# -- the cycle ------------------------------------------------------------------


def test_classroom_cycle_in_the_browser(room, browser):
    instructor, (solver, idler) = room.instructor, room.student_names
    source = read_notebook(REPO / "notebooks" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    full_marks = sum(grade_cells(source).values())

    # The instructor's course folder (solutions, hidden tests, gradebook) and each
    # student's work are private to their owner.
    for who, folder in ((solver, room.course), (idler, room.home(solver))):
        peek = subprocess.run(["runuser", "-u", who, "--", "ls", str(folder)], capture_output=True)
        assert peek.returncode != 0, f"{who} can list {folder}"

    with timed("instructor: log in, server start"):
        teacher = log_in(browser, room, instructor)
    row = assignment_row(ASSIGNMENT)
    with timed("instructor: generate + release (Formgrader)"):
        formgrader(teacher, room, instructor, "manage_assignments")
        teacher.wait_for_selector(row)
        click_and_confirm(teacher, f"{row} td.assign a", "Successfully")
        click_and_confirm(teacher, f"{row} td.release a", "Successfully released")
        teacher.wait_for_selector(f"{row} td.status:has-text('released')")
    shot(teacher, "1-instructor-released")

    students = {}
    for student in (solver, idler):
        with timed(f"{student}: log in, server start"):
            students[student] = page = log_in(browser, room, student)
        # Students get the Assignment List, not the Formgrader; their notebooks
        # run in the student environment (the fr_utils wheel, no repository).
        answer = page.request.get(f"{room.url}user/{student}/formgrader/manage_assignments")
        assert answer.status == 404, f"{student} reaches the Formgrader: HTTP {answer.status}"
        specs = page.request.get(f"{room.url}user/{student}/api/kernelspecs").json()
        argv = specs["kernelspecs"]["python3"]["spec"]["argv"]
        assert argv[0] == str(room.state / "student-env" / "bin" / "python"), argv
        with timed(f"{student}: fetch (Assignment List)"):
            open_assignment_list(page)
            page.click("#released_assignments_list button:has-text('Fetch')")
            page.wait_for_selector("#fetched_assignments_list button:has-text('Submit')")
        shot(page, f"2-{student}-fetched")

    fetched = read_notebook(room.home(solver) / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    solved = with_sources(fetched, {
        cell: solution_code(cell_by_id(source, cell).source) for cell in SOLUTION_CELLS
    })
    with timed(f"{solver}: save the solutions (contents API)"):
        put_notebook(students[solver], room, solver, f"{ASSIGNMENT}/{NOTEBOOK}.ipynb", solved)

    for student, page in students.items():
        with timed(f"{student}: submit (Assignment List)"):
            page.click("#fetched_assignments_list button:has-text('Submit')")
            page.wait_for_selector("#submitted_assignments_list button:has-text('Fetch Feedback')")
        shot(page, f"3-{student}-submitted")

    with timed("instructor: collect (Formgrader)"):
        formgrader(teacher, room, instructor, "manage_assignments")
        teacher.wait_for_selector(row)
        click_and_confirm(teacher, f"{row} td.collect a", "Successfully collected")
    for student in students:
        with timed(f"instructor: autograde {student} (Formgrader)"):
            formgrader(teacher, room, instructor, f"manage_submissions/{ASSIGNMENT}")
            button = f"tr:has(td.student-id:has-text('{student}')) td.autograde a"
            teacher.wait_for_selector(button)
            click_and_confirm(teacher, button, "Successfully autograded", timeout_s=GRADE_S)
    formgrader(teacher, room, instructor, f"manage_submissions/{ASSIGNMENT}")
    teacher.wait_for_selector("td.score:has-text('/')")
    shot(teacher, "4-instructor-autograded")
    with timed("instructor: generate + release feedback (Formgrader)"):
        formgrader(teacher, room, instructor, "manage_assignments")
        teacher.wait_for_selector(row)
        click_and_confirm(teacher, f"{row} td.generate-feedback a", "Successfully generated feedback")
        click_and_confirm(teacher, f"{row} td.release-feedback a", "Successfully released feedback")
    shot(teacher, "5-instructor-feedback-released")

    scores = {}
    for student, page in students.items():
        with timed(f"{student}: fetch feedback (Assignment List)"):
            page.goto(f"{room.url}user/{student}/lab")
            page.wait_for_selector("#jp-main-dock-panel")
            open_assignment_list(page)
            page.click("#submitted_assignments_list button:has-text('Fetch Feedback')")
            page.wait_for_selector("#submitted_assignments_list :text('view feedback')")
        shot(page, f"6-{student}-feedback-fetched")
        scores[student] = feedback_score(page, room, student)
        shot(page, f"7-{student}-feedback")

    TIMES["whole cycle"] = round(sum(TIMES.values()), 1)
    (ARTIFACTS / "times.json").write_text(json.dumps(TIMES, indent=1) + "\n")
    print("\n".join(f"{seconds:7.1f} s  {step}" for step, seconds in TIMES.items()))
    print(f"screenshots, the hub's log and times.json: {ARTIFACTS}")

    assert scores[solver] == (full_marks, full_marks), scores
    assert scores[idler] == (0.0, full_marks), scores
