"""Grading records: what your function returned, sent to the grader.

When a notebook is autograded, the checks do not decide the grade inside the
notebook's kernel.  Each check calls your function and, besides its own
messages, *records* what the function returned: one ``display_data`` output
per case, with the MIME type :data:`MIME`.  The grader reads these records
after the notebook ran, in its own process, and compares them there with its
own answers; a missing, repeated or unreadable record fails the cell.

Records are only written while grading (``nbgrader autograde`` sets
``NBGRADER_EXECUTION=autograde`` in the environment of the kernels it starts;
:data:`ENV_FLAG` does the same for tests); in JupyterLab the checks print
nothing extra.  A record holds your function's output, never an expected value.
"""

from __future__ import annotations

import math
import os
from typing import Any

MIME = "application/vnd.fr-utils.grading-record+json"
"""The MIME type of a record (``+json``: nbformat keeps the data as JSON)."""

ENV_FLAG = "FR_UTILS_GRADING_RECORDS"
"""Records are also written when this environment variable is ``"1"``."""

MAX_ELEMENTS = 200_000
"""Arrays larger than this are recorded by shape and dtype only."""


def recording() -> bool:
    return os.environ.get("NBGRADER_EXECUTION") == "autograde" or os.environ.get(ENV_FLAG) == "1"


def _number(x: Any) -> Any:
    """A JSON-safe float: NaN and infinities as the strings "nan", "inf", "-inf"."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def encode(value: Any, depth: int = 0) -> dict:
    """``value`` as plain JSON data, tagged with its kind.

    Tensors and arrays keep their dtype, shape and whether they were a tensor;
    containers are followed a few levels deep; anything else is named by type.
    """
    import numpy as np

    if depth > 4:
        return {"t": "object", "type": type(value).__name__}
    if value is None:
        return {"t": "none"}
    if isinstance(value, (bool, np.bool_)):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"t": "int", "v": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"t": "float", "v": _number(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value[:500]}
    tensor = False
    if type(value).__module__.startswith(("tensorflow", "keras")) and hasattr(value, "numpy"):
        tensor = True
        try:
            value = value.numpy()
        except Exception:  # a symbolic tensor or a broken object  # noqa: BLE001
            return {"t": "object", "type": type(value).__name__, "tensor": True}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        record = {"t": "array", "tensor": tensor, "dtype": str(array.dtype),
                  "shape": list(array.shape)}
        if array.size <= MAX_ELEMENTS and array.dtype.kind in "biuf":
            flat = array.ravel()
            if array.dtype.kind == "b":
                record["v"] = [bool(x) for x in flat]
            elif array.dtype.kind in "iu":
                record["v"] = [int(x) for x in flat]
            else:
                record["v"] = [_number(x) for x in flat]
        return record
    if isinstance(value, (tuple, list)):
        return {"t": "tuple" if isinstance(value, tuple) else "list",
                "v": [encode(item, depth + 1) for item in list(value)[:1000]]}
    if isinstance(value, dict):
        return {"t": "dict",
                "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in list(value.items())[:1000]]}
    return {"t": "object", "type": type(value).__name__}


def _display(bundle: dict) -> None:
    from IPython.display import display

    display(bundle, raw=True)


def record(case: str, value: Any) -> None:
    """Send ``value`` (what the learner's function gave for ``case``) to the grader."""
    if not recording():
        return
    _display({MIME: {"case": case, "value": encode(value)}})
