"""The publish rule (oracle.config.publish): one rule for the model runner's publish flag
and the round protocol's due test, so a node never proposes what its own model did not
mark, nor skips what it did."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.config import load_feed_spec
from oracle.config.publish import deviates, is_due, within_bps
from oracle.models import FeedModel

FEEDS = Path(__file__).resolve().parents[2] / "feeds"
values = st.integers(min_value=-(10**30), max_value=10**30)
bps = st.integers(min_value=0, max_value=1_000_000)


@given(values, bps)
def test_an_unchanged_value_is_never_a_deviation(value: int, deviation_bps: int) -> None:
    assert not deviates(value, value, deviation_bps)


@given(values, values)
def test_zero_bps_means_every_change(old: int, new: int) -> None:
    assert deviates(old, new, 0) == (new != old)


@given(values, bps)
def test_from_zero_every_change_deviates(new: int, deviation_bps: int) -> None:
    assert deviates(0, new, deviation_bps) == (new != 0)


@given(values, values, bps)
def test_deviation_is_the_exact_relative_move(old: int, new: int, deviation_bps: int) -> None:
    """Against the definition in exact rationals: |new − old| / |old| ≥ bps / 10⁴."""
    if old == 0 or new == old:
        return
    exact = Fraction(abs(new - old), abs(old)) >= Fraction(deviation_bps, 10_000)
    assert deviates(old, new, deviation_bps) == exact


def test_deviation_boundary_is_inclusive() -> None:
    assert deviates(10_000, 10_050, 50) and deviates(10_000, 9_950, 50)
    assert not deviates(10_000, 10_049, 50) and not deviates(10_000, 9_951, 50)
    assert deviates(-10_000, -10_050, 50)


def test_tolerance_is_within_bps_of_the_reference() -> None:
    assert within_bps(10_100, 10_000, 100) and within_bps(9_900, 10_000, 100)
    assert not within_bps(10_101, 10_000, 100)
    assert within_bps(0, 0, 0) and not within_bps(1, 0, 10**6)


def test_due_on_first_value_heartbeat_or_deviation() -> None:
    kw = {"deviation_bps": 50, "heartbeat": 60}
    assert is_due(None, 0, 1, 0, **kw)
    assert not is_due(10_000, 0, 10_000, 59, **kw)
    assert is_due(10_000, 0, 10_000, 60, **kw)  # the heartbeat, unchanged value
    assert is_due(10_000, 0, 10_050, 1, **kw)
    assert not is_due(10_000, 0, 10_049, 1, **kw)


@pytest.mark.parametrize("deviation_bps", [0, 25])
def test_the_model_runner_publishes_by_the_rule(deviation_bps: int) -> None:
    """A value feed (its output is its input) with a long heartbeat: the runner marks for
    publication exactly the outputs the rule calls due, unchanged values included at 0 bps
    (the case where the runner and the round's due test used to disagree)."""
    spec = replace(load_feed_spec(FEEDS / "eth_usd_median.toml"), deviation_bps=deviation_bps)
    model = FeedModel(spec)
    inputs = [2000.0, 2000.0, 2000.0, 2000.5, 2000.5, 2010.0, 0.0, 0.0, 1.0]
    last: int | None = None
    last_at = 0
    for i, x in enumerate(inputs):
        at = 1_700_000_000_000 + 1000 * i
        out = model.step({"value": x}, at)
        assert out is not None
        expected = is_due(
            last, last_at, out.value, at, deviation_bps=deviation_bps, heartbeat=3_600_000
        )
        assert out.publish == expected, (i, x, out)
        if out.publish:
            last, last_at = out.value, at
    if deviation_bps == 0:
        published = [
            o for o in (model.step({"value": 1.0}, 1_700_000_100_000 + k) for k in range(3)) if o
        ]
        assert [o.publish for o in published] == [False, False, False]
