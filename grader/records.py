"""Reading the grading records that the checks write into a graded notebook.

The kernel side (fr_utils/checks/_record.py) writes one ``display_data``
output per case, MIME type :data:`MIME`, holding ``{"case": key, "value":
encoded}``.  Here they are read back, in the grader's process, as plain Python
values; whatever is not exactly in that format is :class:`Malformed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fr_utils.checks._record import ENV_FLAG, MIME

__all__ = ["ENV_FLAG", "MIME", "Array", "Opaque", "Malformed", "decode", "records_in", "is_record"]


class Malformed(ValueError):
    """A record that is not in the format the checks write."""


@dataclass(frozen=True)
class Array:
    """A recorded NumPy array or TensorFlow tensor (``values`` is None when it was too large)."""

    values: np.ndarray | None
    shape: tuple
    dtype: str
    tensor: bool


@dataclass(frozen=True)
class Opaque:
    """Something the kernel could only name by its type."""

    type: str
    tensor: bool = False


def _float(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise Malformed(f"not a number: {x!r:.60}")
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise Malformed(f"not a number: {x!r:.60}")
        return float(x)
    return float(x)


def decode(data: Any) -> Any:
    """The Python value of one encoded record value."""
    if not isinstance(data, dict) or "t" not in data:
        raise Malformed("a value without its kind")
    kind = data["t"]
    if kind == "none":
        return None
    if kind == "bool":
        if not isinstance(data.get("v"), bool):
            raise Malformed("bad bool")
        return data["v"]
    if kind == "int":
        if isinstance(data.get("v"), bool) or not isinstance(data.get("v"), int):
            raise Malformed("bad int")
        return data["v"]
    if kind == "float":
        return _float(data.get("v"))
    if kind == "str":
        if not isinstance(data.get("v"), str):
            raise Malformed("bad str")
        return data["v"]
    if kind == "array":
        shape, dtype = data.get("shape"), data.get("dtype")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Malformed("bad array shape")
        if not isinstance(dtype, str):
            raise Malformed("bad array dtype")
        values = None
        if "v" in data:
            flat = data["v"]
            if not isinstance(flat, list) or len(flat) != math.prod(shape):
                raise Malformed("array data do not match its shape")
            try:
                np_dtype = np.dtype(dtype)
            except TypeError as error:
                raise Malformed(f"bad array dtype {dtype!r:.40}") from error
            if np_dtype.kind == "b":
                values = np.array([bool(x) for x in flat], dtype=bool)
            elif np_dtype.kind in "iu":
                if not all(isinstance(x, int) and not isinstance(x, bool) for x in flat):
                    raise Malformed("integer array with non-integers")
                values = np.array(flat, dtype=np.int64)
            else:
                values = np.array([_float(x) for x in flat], dtype=np.float64)
            values = values.reshape(shape)
        return Array(values, tuple(shape), dtype, bool(data.get("tensor", False)))
    if kind in ("tuple", "list"):
        items = data.get("v")
        if not isinstance(items, list):
            raise Malformed("bad sequence")
        decoded = [decode(item) for item in items]
        return tuple(decoded) if kind == "tuple" else decoded
    if kind == "dict":
        items = data.get("v")
        if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
            raise Malformed("bad dict")
        result = {}
        for key, value in items:
            key = decode(key)
            if isinstance(key, (list, dict, Array)):
                raise Malformed("unhashable dict key")
            result[key] = decode(value)
        return result
    if kind == "object":
        return Opaque(str(data.get("type", "?")), bool(data.get("tensor", False)))
    raise Malformed(f"unknown kind {kind!r:.40}")


def is_record(output: dict) -> bool:
    return output.get("output_type") in ("display_data", "execute_result", "update_display_data") and \
        MIME in output.get("data", {})


def records_in(outputs: list) -> list[tuple[str | None, Any]]:
    """``[(case key or None, payload)]`` for every record among a cell's outputs, in order.

    The payload is the raw ``value`` data (decode it), or a :class:`Malformed` when the
    record itself is not a ``{"case": str, "value": ...}`` object."""
    found = []
    for output in outputs:
        if not is_record(output):
            continue
        data = output["data"][MIME]
        if not isinstance(data, dict) or not isinstance(data.get("case"), str) or "value" not in data:
            found.append((None, Malformed("a record without a case name or value")))
            continue
        found.append((data["case"], data["value"]))
    return found
