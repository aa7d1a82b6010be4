"""``[sources.transform]`` of a replay source: the dataset's columns as it holds them are
not what the feed publishes, and every member must derive the same values from them.

One transform today, ``returns_to_index``: the named columns hold per-row simple returns
in percent (river's SP500Stocks: each stock's daily return from split-adjusted closes) and
the feed publishes each as a price index, the close rebased to ``base`` on the day before
the first row::

    index_0 = base
    index_t = round(index_{t-1} × (1 + r_t / 100), decimals)    (ROUND_HALF_EVEN)

so with SP500Stocks and ``base = 100`` a value is "this stock's close, with 100 its close on
the first day", not its dollar price. The arithmetic is decimal (oracle.sources.rebase), so
it is the same on every CPU. Its parameters are checked here; what only the dataset can
tell (a column that is missing, a return of -100 % or less) is checked when the source is
loaded (oracle.sources.rebase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from oracle.config.reader import Table

TRANSFORMS = ("returns_to_index",)
MAX_BASE = 1e12  # the index starts at most here (and its rows' values stay within MAX_ABS)
MAX_DECIMALS = 18
MAX_FIELDS = 256


@dataclass(frozen=True)
class ReturnsToIndex:
    """``returns_to_index``: the columns ``fields`` (sorted) are returns in percent; each is
    replaced by its index, starting from ``base`` and rounded to ``decimals`` each row."""

    fields: tuple[str, ...]
    base: Decimal
    decimals: int


def read_transform(
    t: Table, *, passes: object, field_name: re.Pattern[str]
) -> ReturnsToIndex | None:
    """``[sources.transform]``; ``passes`` is the source's, ``field_name`` the pattern a
    record field name matches (``oracle.config.feeds.FIELD_NAME``)."""
    before = len(t.problems.items)
    t.string("kind", choices=TRANSFORMS)
    fields = t.strings("fields", max_items=MAX_FIELDS)
    if isinstance(fields, list):
        if not fields:
            t.fail("fields", fields, "expected the columns that hold returns (at least one)")
        for name in fields:
            if not field_name.match(name):
                t.fail("fields", name, "expected column names (identifiers)")
    base = t.number("base", 100.0, low=0.0, high=MAX_BASE, low_open=True)
    decimals = t.integer("decimals", 8, low=0, high=MAX_DECIMALS)
    t.finish()
    if isinstance(passes, int) and passes != 1:
        # a second pass would start the index at its base again: a jump no price made
        t.fail(
            "kind",
            "returns_to_index",
            f"expected passes = 1 with a returns_to_index transform (got {passes}): a second "
            "pass would restart the index at its base, a move the prices never made",
        )
    if len(t.problems.items) != before:
        return None
    return ReturnsToIndex(tuple(sorted(fields)), Decimal(repr(float(base))), decimals)


__all__ = ["TRANSFORMS", "ReturnsToIndex", "read_transform"]
