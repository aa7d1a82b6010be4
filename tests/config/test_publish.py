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

from oracle.bench.pipeline import SPEC as BENCH_SPEC
from oracle.config import ConfigError, load_feed_spec
from oracle.config.publish import deviates, is_due, within_bps
from oracle.models import FeedModel
from oracle.sources.replay import ReplaySource

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


@given(values, values, bps, st.integers(min_value=0, max_value=10**31))
def test_the_absolute_floor_only_holds_back_small_moves(
    old: int, new: int, deviation_bps: int, floor: int
) -> None:
    """A deviation under an absolute floor is a relative deviation that also moved at
    least the floor: the floor never publishes what the relative rule would not."""
    expected = deviates(old, new, deviation_bps) and abs(new - old) >= floor
    assert deviates(old, new, deviation_bps, floor) == expected


def _forecasts(tmp_path: Path, publish: str, n: int = 600) -> list[tuple[int, bool]]:
    """A next-day return forecast (values near zero): the benchmark's spec, 8 decimals."""
    text = BENCH_SPEC.replace("{n}", "0").replace("{passes}", "1")
    text = text.replace("deviation_bps = 50\n", publish)
    path = tmp_path / "returns.toml"
    path.write_text(text)
    spec = load_feed_spec(path)
    model = FeedModel(spec)
    fields = spec.features.record_fields
    out = []
    for obs in ReplaySource(spec.sources[0]).read(0, n):  # type: ignore[arg-type]
        o = model.step({k: float(obs.raw[k]) for k in fields}, obs.observed_at_ms)
        if o is not None:
            out.append((o.value, o.publish))
    return out


def test_a_value_near_zero_publishes_its_real_moves_only(tmp_path: Path) -> None:
    """A return forecast lives near zero: 50 bps of it is a wiggle, so a relative rule alone
    publishes every output (one transaction each). An absolute floor of 0.5 (half a percent
    of return) publishes the moves of at least 0.5, and the heartbeat (3,600 observations
    apart: none here)."""
    relative_only = _forecasts(tmp_path, "deviation_bps = 50\n")
    with_floor = _forecasts(tmp_path, "deviation_bps = 50\ndeviation_abs = 0.5\n")
    assert sum(p for _, p in relative_only) > 0.95 * len(relative_only)
    assert sum(p for _, p in with_floor) < 0.25 * len(with_floor)
    last = None
    for (value, publish), (_, relative) in zip(with_floor, relative_only, strict=True):
        if publish:
            assert last is None or abs(value - last) >= 50_000_000  # 0.5 at 8 decimals
            last = value
        assert relative or not publish  # the floor never publishes what the rule would not


def test_the_floor_is_read_in_the_feeds_units() -> None:
    """WaterFlow's score in [0, 1] publishes moves of 0.1 or more: 100,000 at 6 decimals;
    the relative rule may be left out (0: the floor alone decides)."""
    spec = load_feed_spec(FEEDS / "waterflow_anomaly.toml")
    assert (spec.deviation_bps, spec.deviation_abs) == (0, 100_000)


def test_a_floor_finer_than_the_feeds_unit_is_refused(tmp_path: Path) -> None:
    text = (FEEDS / "waterflow_anomaly.toml").read_text()
    path = tmp_path / "fine.toml"
    path.write_text(text.replace("deviation_abs = 0.1", "deviation_abs = 0.0000001"))
    with pytest.raises(
        ConfigError,
        match=r"fine\.toml: publish\.deviation_abs = 1e-07: "
        r"expected a multiple of the feed's unit, 1e-6",
    ):
        load_feed_spec(path)
