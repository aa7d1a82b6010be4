"""Fixed point: a model output becomes an ``int128`` exactly once, here.

A binary64 is exactly ``n / 2**k`` (``float.as_integer_ratio``), so
``value * 10**decimals`` is the exact rational ``n * 10**decimals / 2**k``; it is rounded
with the feed's explicit rule in integer arithmetic (the same result as an exact
:class:`~decimal.Decimal` computation, which the tests check), so every node gets the same
integer. :func:`quantizer`'s float path gives that integer for less where a float product
provably rounds the same way (see there), and defers to it everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from oracle.errors import MiraError

INT128_MIN = -(2**127)
INT128_MAX = 2**127 - 1
_POW10 = tuple(10**d for d in range(78))
_FLOAT_PATH = 2.0**52  # |value * 10**decimals| below it: quantizer's float path (see there)
_RULES = frozenset(
    (
        "ROUND_HALF_EVEN",
        "ROUND_HALF_UP",
        "ROUND_HALF_DOWN",
        "ROUND_CEILING",
        "ROUND_UP",
        "ROUND_DOWN",
        "ROUND_FLOOR",
    )
)


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
    if rounding not in _RULES:
        raise QuantizationError(f"unknown rounding rule {rounding!r}")
    num, den = value.as_integer_ratio()  # exact: value == num / den, den > 0
    q, r = divmod(num * _POW10[decimals] if decimals < len(_POW10) else num * 10**decimals, den)
    # q = floor(exact), 0 <= r < den; pick q or q + 1 by the rule
    if r:
        if rounding == "ROUND_HALF_EVEN":
            twice = 2 * r
            q += twice > den or (twice == den and q & 1)
        elif rounding == "ROUND_HALF_UP":  # ties away from zero
            twice = 2 * r
            q += twice > den or (twice == den and num > 0)
        elif rounding == "ROUND_HALF_DOWN":  # ties toward zero
            twice = 2 * r
            q += twice > den or (twice == den and num < 0)
        elif rounding == "ROUND_CEILING":
            q += 1
        elif rounding == "ROUND_UP":  # away from zero
            q += num > 0
        elif rounding == "ROUND_DOWN":  # toward zero
            q += num < 0
    result: int = q
    if not INT128_MIN <= result <= INT128_MAX:
        raise QuantizationError(
            f"{value!r} with {decimals} decimals is {result}, outside int128 "
            f"[{INT128_MIN}, {INT128_MAX}]"
        )
    return result


def quantizer(decimals: int, rounding: str) -> Callable[[float], int]:
    """``lambda v: quantize(v, decimals, rounding)``, cheaper per call: for a finite float
    well inside int128 under ``ROUND_HALF_EVEN`` (the usual case) a float path where it
    provably gives the same integer (see below), else the same integer arithmetic with
    the checks and the scale done once; anything else goes to :func:`quantize` itself.

    >>> quantizer(0, "ROUND_HALF_EVEN")(2.5), quantizer(2, "ROUND_HALF_UP")(-0.125)
    (2, -13)
    """
    if rounding not in _RULES:
        raise QuantizationError(f"unknown rounding rule {rounding!r}")
    if rounding != "ROUND_HALF_EVEN" or decimals >= len(_POW10):
        return lambda value: quantize(value, decimals, rounding)
    scale = _POW10[decimals]
    # |value| below this keeps |value| * 10**decimals (rounded) below 2**126 < INT128_MAX
    limit = 2.0**126 / scale
    # The float path, for 10**decimals exact as a binary64 (decimals <= 22) and a product
    # p = fl(value * 10**decimals) with |p| < 2**52, i.e. almost every output. Why it gives
    # the exact rule's integer: x = value * 10**decimals is a real number and p is x
    # rounded to the nearest double. Below 2**52 every half-integer h = k + 1/2 is a
    # double, and rounding to nearest is monotone and leaves doubles unchanged, so x < h
    # gives p <= h and x > h gives p >= h: p lies on the same side of every half-integer
    # as x, unless p is one. So when p is not a half-integer, x and p have the same
    # nearest integer, floor(p) + (r > 1/2) with r = p - floor(p) (exact for |p| >= 1:
    # Sterbenz, floor(p) is within a factor 2 of p; below 1, a rounded r still compares
    # with 1/2 as p + 1 does, 1/2 being a double). p a half-integer (r == 1/2: a tie, or
    # x near one), a large p, nan or anything not a float takes the integer path below,
    # exact for every double.
    scale_f = float(scale) if decimals <= 22 else math.nan  # nan: no value takes the path
    low, high, floor = -_FLOAT_PATH, _FLOAT_PATH, math.floor

    def fast(value: float) -> int:
        if type(value) is float:
            p = value * scale_f
            if low < p < high:  # nan fails it
                k = floor(p)
                r = p - k
                if r != 0.5:
                    return k + (r > 0.5)
        if type(value) is not float or not -limit < value < limit:  # nan fails both
            return quantize(value, decimals, rounding)
        num, den = value.as_integer_ratio()
        q, r = divmod(num * scale, den)
        if r:
            twice = 2 * r
            q += twice > den or (twice == den and q & 1)
        result: int = q
        return result

    return fast
