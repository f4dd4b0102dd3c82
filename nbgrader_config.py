"""nbgrader configuration for the FaceNet course.

Run every nbgrader command from the repository root (this file's folder), with
the project's virtual environment first on PATH (nbgrader shells out to
``alembic``)::

    export PATH="$PWD/.venv/bin:$PATH"

Layout (generated folders are git-ignored)::

    notebooks/<assignment>/*.ipynb        instructor versions: solutions + hidden tests
    release/<assignment>/                 student versions   (nbgrader generate_assignment)
    submitted/<student>/<assignment>/     collected work     (you put it there)
    autograded/<student>/<assignment>/    graded notebooks   (nbgrader autograde)
    feedback/<student>/<assignment>/      HTML for students  (nbgrader generate_feedback)
    gradebook.db                          scores             (nbgrader export -> grades.csv)
    exchange/facenet/{outbound,inbound,feedback}/  the exchange students fetch from and submit to
"""

import os
import sys

# The grading side (grader/) lives beside this file, outside the fr_utils wheel.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nbgrader
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde
from nbgrader.preprocessors import (
    CheckCellMetadata, ClearOutput, DeduplicateIds, GetGrades, OverwriteKernelspec, SaveAutoGrades,
)

from grader import feedback
from grader.cells import HonestOverwriteCells
from grader.submissions import check_submission
from grader.decide import DecideGrades
from grader.feedback import HideHiddenTests

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

# The instructor notebooks live in notebooks/, not nbgrader's default source/.
c.CourseDirectory.source_directory = "notebooks"

# The course and its exchange (release_assignment, fetch_assignment, submit, collect,
# release_feedback, fetch_feedback).  On one machine the exchange is exchange/ beside
# this file, created here (git-ignored, no root needed); on a hub every user must see
# one shared folder: set FR_EXCHANGE_ROOT to it (deploy/jupyterhub/ does).
c.CourseDirectory.course_id = "facenet"
c.Exchange.root = os.environ.get("FR_EXCHANGE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
os.makedirs(c.Exchange.root, exist_ok=True)

# Every notebook runs on the same kernel: the environment nbgrader runs in
# (jupyter_client starts "python3" with nbgrader's own interpreter).
c.Execute.kernel_name = "python3"

# Seconds one cell may run before the kernel is interrupted and the cell fails:
# enough for importing TensorFlow and running a model on a busy CPU, bounded so an
# endless loop in a submission cannot stall a whole class.  The notebooks' own
# checks stop a learner's function after fr_utils.checks.DEFAULT_TIME_LIMIT_S.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120

# A submission whose test cell was deleted gets it back (and is graded on it);
# edited test cells are always restored from the gradebook.
c.OverwriteCells.add_missing_cells = True
# nbgrader's default sanitize steps, with OverwriteCells replaced by one that puts the
# hidden tests back without warning "checksum has changed" on honest submissions.
c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, HonestOverwriteCells, CheckCellMetadata,
]
# A file that is not the assignment's notebook (invalid JSON, a photo, an empty notebook,
# another assignment's): one clear line in the log first; that student gets 0, the rest are graded.
c.Autograde.pre_convert_hook = check_submission

# What replaces a solution region in the student version.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}

# Autograding runs each submission's kernel in a bubblewrap sandbox, with time limits and an
# output bound enforced from outside the kernel (grader/execute.py, docs/grading.md).  nbgrader's
# own list, with SandboxedExecute in place of Execute.
from grader.execute import SandboxedExecute  # noqa: E402
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import AssignLatePenalties, IgnorePattern, LimitOutput, SaveAutoGrades  # noqa: E402

c.Autograde.autograde_preprocessors = [
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback shows the public tests and the messages of hidden ones, never their code.
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
# ... and renders its maths offline: MathJax embedded in each file (grader/feedback.py).
c.HTMLExporter.template_name = feedback.TEMPLATE_NAME
c.HTMLExporter.extra_template_basedirs = [
    str(feedback.TEMPLATES),
    os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates"),
]
c.HTMLExporter.filters = {"offline_mathjax_url": feedback.offline_mathjax_url}

# Grades are decided in nbgrader's process, not in the kernel: the checks record what
# the learner's functions returned, and DecideGrades judges those records with the
# grader's own inputs and references (grader/decide.py), after the notebook ran and
# right before SaveAutoGrades stores the scores.  (Kept last: it edits whatever list
# of autograde steps the lines above chose.)
_steps = [step for step in (c.Autograde.autograde_preprocessors if "autograde_preprocessors" in c.Autograde
                            else Autograde.autograde_preprocessors.default()) if step is not DecideGrades]
_steps.insert(_steps.index(SaveAutoGrades), DecideGrades)
c.Autograde.autograde_preprocessors = _steps
