from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.models import QuantizationError, quantize
from oracle.models.quantize import INT128_MAX, quantizer


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


RULES = [
    "ROUND_HALF_EVEN",
    "ROUND_HALF_UP",
    "ROUND_HALF_DOWN",
    "ROUND_DOWN",
    "ROUND_UP",
    "ROUND_FLOOR",
    "ROUND_CEILING",
]


def _exact_decimal(value: float, decimals: int, rounding: str) -> int:
    """The reference: exact Decimal arithmetic with the decimal module's own rules."""
    import decimal

    ctx = decimal.Context(prec=400, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    scaled = ctx.multiply(decimal.Decimal(value), decimal.Decimal(10) ** decimals)
    return int(scaled.to_integral_value(rounding=rounding, context=ctx))


@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e20, max_value=1e20),
        # exact ties at every scale: k / 2 / 10**d
        st.builds(lambda k, d: k / 2 / 10**d, st.integers(-(10**6), 10**6), st.integers(0, 6)),
    ),
    st.integers(0, 18),
    st.sampled_from(RULES),
)
def test_integer_rounding_equals_exact_decimal_rounding(
    value: float, decimals: int, rounding: str
) -> None:
    expected = _exact_decimal(value, decimals, rounding)
    if abs(expected) <= INT128_MAX:
        assert quantize(value, decimals, rounding) == expected


@pytest.mark.parametrize("rounding", RULES)
@pytest.mark.parametrize("value", [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.25, -0.75, 3.0, -0.0])
def test_ties_and_signs_match_decimal(value: float, rounding: str) -> None:
    assert quantize(value, 0, rounding) == _exact_decimal(value, 0, rounding)


def test_unknown_rounding_rule_is_refused() -> None:
    with pytest.raises(QuantizationError, match="unknown rounding rule"):
        quantize(1.0, 0, "ROUND_SOMETIMES")


@pytest.mark.parametrize("rounding", RULES)
@pytest.mark.parametrize("decimals", [0, 2, 8, 18, 36])
def test_quantizer_is_quantize(decimals: int, rounding: str) -> None:
    """The per-observation quantizer gives quantize's integer, or raises as it does."""
    q = quantizer(decimals, rounding)
    rng = random.Random(decimals)
    values = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 5e-324, 1e-300, 1.7e38, -1.7e38, 1e300]
    values += [
        float.fromhex(f"0x1.{rng.getrandbits(52):013x}p{rng.randint(-60, 60)}") for _ in range(300)
    ]
    values += [n / 8 for n in range(-40, 40)] + [7, True]  # type: ignore[list-item]
    values += [math.nan, math.inf, -math.inf, 2.0**126, -(2.0**127)]
    for v in values:
        try:
            expected: int | str = quantize(v, decimals, rounding)
        except QuantizationError as exc:
            expected = f"error: {exc}"
        try:
            got: int | str = q(v)
        except QuantizationError as exc:
            got = f"error: {exc}"
        assert got == expected, (v, decimals, rounding)


def _near_ties(draw_k: int, decimals: int, steps: int) -> float:
    """The double ``steps`` ulps from (k + 1/2) / 10**decimals: a product the quantizer's
    float path must hand to the exact path, or round the way the exact rule does."""
    v = (draw_k + 0.5) / 10**decimals
    for _ in range(abs(steps)):
        v = math.nextafter(v, math.inf if steps > 0 else -math.inf)
    return v


@settings(max_examples=3000)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e-6, max_value=1e-6),
        # around the float path's bound |value * 10**d| < 2**52
        st.builds(
            lambda s, f: s * f * 2.0**52 / 10**8,
            st.sampled_from([-1.0, 1.0]),
            st.floats(min_value=0.999, max_value=1.001),
        ),
        st.builds(
            _near_ties,
            st.integers(-(2**51), 2**51),
            st.sampled_from([0, 2, 6, 8]),
            st.integers(-40, 40),
        ),
    ),
    st.sampled_from([0, 2, 6, 8, 18, 22, 23]),
)
def test_quantizer_float_path_rounds_as_the_exact_rule(value: float, decimals: int) -> None:
    """ROUND_HALF_EVEN's float path (most outputs) against exact Decimal rounding, on
    values near every tie, near the path's bounds and at every scale."""
    expected = _exact_decimal(value, decimals, "ROUND_HALF_EVEN")
    if abs(expected) <= INT128_MAX:
        got = quantizer(decimals, "ROUND_HALF_EVEN")(value)
        assert got == expected and type(got) is int, (value, decimals)


def test_quantizer_float_path_near_a_tie_is_exact() -> None:
    """Products within a few ulps of k + 1/2, where a float rounding decides wrongly
    unless the exact path takes them: both sides of the tie, both signs."""
    q = quantizer(8, "ROUND_HALF_EVEN")
    for k in (0, 1, 2, 12_345_678, 2**30 + 1, 2**51 - 1, -3, -12_345_679, -(2**51)):
        for steps in range(-6, 7):
            v = _near_ties(k, 8, steps)
            assert q(v) == _exact_decimal(v, 8, "ROUND_HALF_EVEN"), (k, steps, v)
