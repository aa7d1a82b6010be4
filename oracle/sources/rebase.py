"""A replay's ``returns_to_index`` transform (oracle.config.transform): columns of
per-row returns in percent become price indexes, computed once when the dataset loads.

The rule, per column, row by row::

    index_0 = base
    index_t = round_half_even(index_{t-1} × (1 + r_t / 100), decimals)

``r_t`` is the row's value as the pipeline would read it (a finite binary64, see
oracle.sources.validate), taken in its shortest decimal form (``repr``: for a CSV, the
text as written when it has at most 17 significant digits). ``1 + r / 100`` and the product
are computed in decimal arithmetic with ``PRECISION`` (60) significant digits, rounding half
to even, then the product is rounded once to ``decimals``. For SP500Stocks (returns with a
few decimals, indexes below 10^4 with 8 decimals) nothing is rounded but that last step;
in general the 60-digit steps round too, but decimal arithmetic is specified digit for
digit (the General Decimal Arithmetic spec, which Python's decimal implements), so every
member computes the same index on any CPU.

The record then carries the index as a float (the nearest binary64 of the rounded decimal);
a feed with at least ``decimals`` decimals quantizes it back to exactly the rounded index
while it has at most 15 significant digits (below 10^7 with 8 decimals) and to the same
integer at every member beyond that.

A return of -100 % or less would take the price to zero or below, and an index that rounds
to zero could never move again: both stop the load with :class:`TransformError` naming the row
and column, as does a missing or non-numeric value (a replay cannot skip a day of a price).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from oracle.config.transform import ReturnsToIndex
from oracle.errors import MiraError, Rejected
from oracle.sources.validate import MAX_ABS, to_number

PRECISION = 60
_CONTEXT = Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)
_HUNDRED = Decimal(100)
_ONE = Decimal(1)
_MAX = Decimal(repr(MAX_ABS))


class TransformError(MiraError):
    """A dataset cannot be transformed as its spec says (the row and column named)."""


def returns_to_index(rows: list[dict[str, Any]], transform: ReturnsToIndex, what: str) -> None:
    """Replace ``transform.fields`` of ``rows`` (in place, in order) by their indexes."""
    quantum = Decimal(1).scaleb(-transform.decimals)
    if rows:
        missing = [f for f in transform.fields if f not in rows[0]]
        if missing:
            have = ", ".join(sorted(rows[0]))
            raise TransformError(
                f"{what}: returns_to_index names columns {', '.join(missing)} that the "
                f"dataset does not have (it has {have})"
            )
    levels = dict.fromkeys(transform.fields, transform.base)
    for i, row in enumerate(rows):
        for name in transform.fields:
            try:
                r = Decimal(repr(to_number(row.get(name), what=f"row {i} {name}")))
            except Rejected as exc:
                raise TransformError(f"{what}: {exc.detail}: not a return") from exc
            if r <= -_HUNDRED:
                raise TransformError(
                    f"{what}: row {i} {name} is a return of {r} %: at -100 % or below the "
                    "price would reach zero or less (expected returns above -100 %)"
                )
            factor = _CONTEXT.add(_ONE, _CONTEXT.divide(r, _HUNDRED))
            product = _CONTEXT.multiply(levels[name], factor)
            if product > _MAX:
                raise TransformError(
                    f"{what}: row {i} {name}: the index reaches {product:.6e}, beyond {MAX_ABS:g}"
                )
            level = product.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_CONTEXT)
            if level <= 0:
                raise TransformError(
                    f"{what}: row {i} {name}: a return of {r} % takes the index from "
                    f"{levels[name]} to {level} at {transform.decimals} decimals: a price that "
                    "could never move again"
                )
            levels[name] = level
            row[name] = float(level)


__all__ = ["PRECISION", "TransformError", "returns_to_index"]
