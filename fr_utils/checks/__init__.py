"""Public checks for the course's graded exercises.

Each assignment has a module here (``fr_utils.checks.triplet_loss``, ...) whose
``check_*`` functions are the *public* tests called from the notebook's test
cells.  You are welcome to read them: they hold no answers, only example inputs,
the expected values for those inputs (``expected.json``, data) and the messages
you get for the usual mistakes.  When your notebook is graded, the checks also
record what your functions returned (``_record.py``), and the grade is decided
from those records outside your notebook.

When your notebook is graded, the instructor's copy also runs *hidden* tests
(other inputs, the same ideas), so pass the public checks by writing a correct
function, not by special-casing their inputs.

Every check calls your function through :func:`call_with_time_limit`, so a loop
that never ends fails that check after a few seconds instead of freezing the
notebook.
"""

from fr_utils.checks._runner import (
    DEFAULT_TIME_LIMIT_S,
    FunctionTimedOut,
    call_with_time_limit,
)

__all__ = ["DEFAULT_TIME_LIMIT_S", "FunctionTimedOut", "call_with_time_limit"]

from fr_utils.checks import _display

_display.install()  # in a notebook, a failing check shows its message first (_display.py)
