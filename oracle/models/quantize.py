"""Fixed point: a model output becomes an ``int128`` exactly once, here.

The float is converted to :class:`~decimal.Decimal` exactly (every binary64 has a finite
decimal expansion), scaled by ``10**decimals`` and rounded with the feed's explicit
rule. No float arithmetic happens after the model, so every node gets the same integer.
"""

from __future__ import annotations

import decimal
import math

from oracle.errors import MiraError

INT128_MIN = -(2**127)
INT128_MAX = 2**127 - 1
_CONTEXT = decimal.Context(prec=400, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class QuantizationError(MiraError, ValueError):
    """A value cannot be represented as the feed's int128 fixed point."""


def quantize(value: float, decimals: int, rounding: str) -> int:
    """``round(value * 10**decimals)`` under ``rounding``, checked to fit int128.

    >>> quantize(1.5, 0, "ROUND_HALF_EVEN"), quantize(2.5, 0, "ROUND_HALF_EVEN")
    (2, 2)
    >>> quantize(-0.125, 2, "ROUND_HALF_UP")
    -13
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QuantizationError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantizationError(f"cannot quantize {value!r}: not a finite number")
    scaled = _CONTEXT.multiply(decimal.Decimal(value), decimal.Decimal(10) ** decimals)
    result = int(scaled.to_integral_value(rounding=rounding, context=_CONTEXT))
    if not INT128_MIN <= result <= INT128_MAX:
        raise QuantizationError(
            f"{value!r} with {decimals} decimals is {result}, outside int128 "
            f"[{INT128_MIN}, {INT128_MAX}]"
        )
    return result
