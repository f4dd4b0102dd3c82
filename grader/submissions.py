"""A clear line in the autograde log for a submission nbgrader cannot grade (issue #12).

nbgrader meets a submitted file that is not the assignment's notebook with a
traceback (invalid JSON, a photo renamed ``.ipynb``, an empty notebook) or with a
misleading "did you forget to run 'nbgrader generate_assignment'?" (another
assignment's notebook). The student gets no grade, i.e. 0 in ``nbgrader export``,
and the rest of the class is graded either way; :func:`check_submission`, run by
nbgrader before each student (``Autograde.pre_convert_hook``), says first, in one
line per problem, what is wrong and with which file, so an instructor can tell the
student.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

LOG = logging.getLogger("AutogradeApp")
HINT = "this student gets 0 for it (nbgrader's own error follows)"


def _grade_ids(nb: dict) -> set[str]:
    return {
        cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for cell in nb.get("cells", [])
        if isinstance(cell, dict) and cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    }


def problems(path: Path, expected: dict[str, set[str]]) -> list[str]:
    """What makes the submitted file ``path`` ungradeable, one sentence each (empty: nothing).

    ``expected`` maps each notebook name of the assignment (``triplet_loss.ipynb``) to
    the grade ids of its release.
    """
    if path.name not in expected:
        wanted = ", ".join(sorted(expected)) or "(none released)"
        return [f"{path}: not a notebook of this assignment (it expects {wanted}); "
                "another assignment's notebook or a renamed file?"]
    raw = path.read_bytes()
    if not raw.strip():
        return [f"{path}: the file is empty (0 bytes of JSON)"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{path}: not a notebook: binary data (starts with {raw[:8]!r}), not JSON text"]
    try:
        nb = json.loads(text)
    except ValueError as err:
        return [f"{path}: not a notebook: invalid JSON ({err})"]
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return [f"{path}: not a notebook: JSON without a list of cells"]
    if not nb["cells"]:
        return [f"{path}: an empty notebook (no cells)"]
    have, want = _grade_ids(nb), expected[path.name]
    if want and not have & want:
        other = f" (it holds {', '.join(sorted(have)[:3])}{', ...' if len(have) > 3 else ''}: another assignment's notebook?)" if have else ""
        return [f"{path}: none of the assignment's cells are in it{other}"]
    return []


def expected_notebooks(release_dir: Path) -> dict[str, set[str]]:
    """``{notebook file name: its grade ids}`` of one released assignment folder."""
    out = {}
    for nb_path in sorted(release_dir.glob("*.ipynb")):
        try:
            out[nb_path.name] = _grade_ids(json.loads(nb_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out[nb_path.name] = set()
    return out


def check_submission(assignment: str, student: str, notebooks: list[str], release_root: str = "release") -> list[str]:
    """nbgrader's pre-convert hook: log every problem of one student's submitted files.

    ``notebooks`` are the paths nbgrader is about to grade
    (``submitted/<student>/<assignment>/*.ipynb``); the student and assignment are
    read from them (nbgrader passes ``*`` when it grades the whole class).
    Returns the messages (also logged as errors).
    """
    messages = []
    for name in notebooks:
        path = Path(name)
        who, what = path.parent.parent.name, path.parent.name
        expected = expected_notebooks(Path(release_root) / what)
        for problem in problems(path, expected):
            messages.append(f"student {who!r}, assignment {what!r}: {problem}; {HINT}")
    for message in messages:
        LOG.error(message)
    return messages
