from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.models import QuantizationError, quantize
from oracle.models.quantize import INT128_MAX


@pytest.mark.parametrize(
    ("value", "decimals", "rounding", "expected"),
    [
        (0.5, 0, "ROUND_HALF_EVEN", 0),
        (1.5, 0, "ROUND_HALF_EVEN", 2),
        (2.5, 0, "ROUND_HALF_EVEN", 2),
        (2.5, 0, "ROUND_HALF_UP", 3),
        (-2.5, 0, "ROUND_FLOOR", -3),
        (-2.5, 0, "ROUND_DOWN", -2),
        (1234.5678, 2, "ROUND_HALF_EVEN", 123457),
        # 0.1 is 0.1000000000000000055511151231257827... exactly: no decimal shortcut
        (0.1, 17, "ROUND_DOWN", 10000000000000000),
        (0.1, 20, "ROUND_DOWN", 10000000000000000555),
    ],
)
def test_rounding_rules(value: float, decimals: int, rounding: str, expected: int) -> None:
    assert quantize(value, decimals, rounding) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_is_refused(bad: float) -> None:
    with pytest.raises(QuantizationError, match="not a finite number"):
        quantize(bad, 8, "ROUND_HALF_EVEN")


def test_out_of_int128_is_refused() -> None:
    with pytest.raises(QuantizationError, match="outside int128"):
        quantize(1e30, 18, "ROUND_HALF_EVEN")
    assert quantize(float(2**100), 0, "ROUND_HALF_EVEN") == 2**100


def test_bool_and_str_are_refused() -> None:
    with pytest.raises(QuantizationError):
        quantize(True, 0, "ROUND_HALF_EVEN")
    with pytest.raises(QuantizationError):
        quantize("1", 0, "ROUND_HALF_EVEN")  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e20, max_value=1e20))
def test_within_half_a_unit(value: float) -> None:
    q = quantize(value, 8, "ROUND_HALF_EVEN")
    assert abs(q) <= INT128_MAX
    from fractions import Fraction

    assert abs(Fraction(q, 10**8) - Fraction(value)) <= Fraction(1, 2 * 10**8)
