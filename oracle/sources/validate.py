"""Turning untrusted raw values into finite floats, or a rejection with a reason."""

from __future__ import annotations

import math
import re
from typing import Any

from oracle.errors import Rejected

# Beyond this magnitude a reading is treated as garbage, whatever the feed.
MAX_ABS = 1e30
_DECIMAL = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def to_number(value: Any, *, what: str = "value") -> float:
    """A finite float from an int, a float or a plain decimal string; else Rejected."""
    if isinstance(value, bool):
        raise Rejected("not_a_number", f"{what} is a boolean ({value!r})")
    if isinstance(value, int):
        if abs(value) > MAX_ABS:
            raise Rejected("out_of_range", f"{what} {value} exceeds ±{MAX_ABS:g}")
        return float(value)
    if isinstance(value, float):
        # a float subclass (numpy.float64, say) as the float it is: what the model learns
        # from and the stored record holds is a plain float (oracle.storage.records)
        number = value if type(value) is float else float(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64 or not _DECIMAL.match(text):
            raise Rejected("not_a_number", f"{what} is the non-numeric string {value[:64]!r}")
        number = float(text)
    elif value is None:
        raise Rejected("missing_field", f"{what} is null")
    else:
        raise Rejected("not_a_number", f"{what} is a {type(value).__name__}, not a number")
    if math.isnan(number):
        raise Rejected("nan", f"{what} is NaN")
    if math.isinf(number):
        raise Rejected("infinite", f"{what} is {number}")
    if abs(number) > MAX_ABS:
        raise Rejected("out_of_range", f"{what} {number!r} exceeds ±{MAX_ABS:g}")
    return number


def to_record(raw: dict[str, Any], names: list[str]) -> dict[str, float]:
    """Validate the named fields of ``raw``; every problem names its field."""
    record: dict[str, float] = {}
    for name in names:
        if name not in raw:
            raise Rejected("missing_field", f"field {name!r} is missing")
        record[name] = to_number(raw[name], what=f"field {name!r}")
    return record
