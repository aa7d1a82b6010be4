"""What a spec's features, target and horizon mean (docs/model-author-guide.md), and the
skill score a forecast carries beside its error."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.config import load_feed_spec
from oracle.config.feeds import ConfigError
from oracle.models import FeedModel
from oracle.sources.replay import ReplaySource

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


def spec_from(tmp_path: Path, source: str, *swaps: tuple[str, str]) -> Path:
    text = (REPO / source).read_text()
    for old, new in swaps:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_the_current_value_is_a_feature_beside_its_lags() -> None:
    """WaterFlow's anomaly score sees the flow it scores, not only the flow before it."""
    model = FeedModel(load_feed_spec(REPO / "feeds" / "waterflow_anomaly.toml"))
    assert model.step({"y": 100.0}, T0) is None  # the lag is not filled yet
    x, y = model.features({"y": 24.0})
    assert (x, y) == ({"lag_1": 100.0, "y": 24.0}, 24.0)


def test_a_statistic_of_the_fields_is_the_target(tmp_path: Path) -> None:
    spec = load_feed_spec(REPO / "feeds" / "sp500_forecast.toml")
    model = FeedModel(spec)
    record = {name: 0.0 for name in spec.features.fields} | {"AAPL": -2.0, "KO": 1.0}
    x, y = model.features(record)
    assert y == pytest.approx(0.3)  # (|-2| + |1|) / 10
    assert x == {"vol": y}  # the statistic's history is the input, not the signed returns
    assert "vol" not in spec.features.record_fields


def test_horizon_zero_forecasts_the_records_own_target(tmp_path: Path) -> None:
    """SP500Stocks' y is already the next trading day's return: with horizon 0 the output
    at day t forecasts that y (day t+1), from day t's features, before learning it; with
    horizon 1 it would forecast day t+2."""
    old = load_feed_spec(
        spec_from(
            tmp_path,
            "feeds/sp500_forecast.toml",
            ('target = "vol"\ntarget_stat = "mean_abs"\ncurrent = true\nlags = 3', 'target = "y"'),
            ("horizon = 1", "horizon = 0"),
        )
    )
    assert old.horizon == 0
    model = FeedModel(old)
    rows = list(ReplaySource(old.sources[0]).read(0, 3))  # type: ignore[arg-type]
    fields = old.features.record_fields
    outs = [model.step({k: float(o.raw[k]) for k in fields}, o.observed_at_ms) for o in rows]
    assert all(o is not None for o in outs)  # an output from the first record on
    # its error is tracked against the same record's target, three of them by now
    assert len(model.state.mae.errors) == 3  # type: ignore[union-attr]
    first = FeedModel(old)
    x, _ = first.features({k: float(rows[0].raw[k]) for k in fields})
    assert outs[0].raw_value == first.state.model.predict_one(x)  # type: ignore[union-attr]


def test_a_forecaster_needs_a_horizon(tmp_path: Path) -> None:
    path = spec_from(tmp_path, "feeds/airline_holtwinters.toml", ("horizon = 12", "horizon = 0"))
    with pytest.raises(ConfigError, match=r"spec\.toml: output\.horizon = 0: expected at least 1"):
        load_feed_spec(path)


def test_a_forecast_carries_its_skill_against_the_naive_baseline() -> None:
    """Airline's Holt-Winters forecast 12 months ahead, against seasonal naive on the same
    targets: both errors and the skill are in the model's metrics (API status, /metrics)."""
    spec = load_feed_spec(REPO / "feeds" / "airline_holtwinters.toml")
    model = FeedModel(spec)
    for obs in ReplaySource(spec.sources[0]).read():  # type: ignore[arg-type]
        model.step({"y": float(obs.raw["y"])}, obs.observed_at_ms)
    m = model.metrics()
    assert m["baseline"] == "seasonal_naive"
    assert m["mae"] is not None and m["baseline_mae"] is not None
    assert m["skill"] == pytest.approx(1 - m["mae"] / m["baseline_mae"])
    assert m["skill"] > 0.3  # a 12-month forecast far better than last year's value


def test_a_policy_carries_its_skill_against_random_play() -> None:
    """The example bandit (seek the calmest stock): its rolling regret against each day's
    best arm beside uniformly random play's, over the last 100 days."""
    spec = load_feed_spec(REPO / "docs" / "examples" / "sp500_bandit.toml")
    model = FeedModel(spec)
    rows = list(ReplaySource(spec.sources[0]).read())  # type: ignore[arg-type]
    fields = spec.features.record_fields
    records = [{k: float(o.raw[k]) for k in fields} for o in rows]
    for record, obs in zip(records, rows, strict=True):
        model.step(record, obs.observed_at_ms)
    m = model.metrics()
    assert m["baseline"] == "uniform_random" and m["regret_window"] == 100
    # by hand over the last 100 records: best arm's reward minus the pulled / the mean
    reference = FeedModel(spec)
    regrets, random_regrets = [], []
    for record, obs in zip(records, rows, strict=True):
        reference.step(record, obs.observed_at_ms)
        rewards = reference.arm_rewards(record)
        pulled = rewards[spec.arms.index(reference.state.last_pulled)]  # type: ignore[arg-type]
        regrets.append(max(rewards) - pulled)
        random_regrets.append(max(rewards) - sum(rewards) / len(rewards))
    assert m["regret"] == pytest.approx(sum(regrets[-100:]) / 100)
    assert m["baseline_regret"] == pytest.approx(sum(random_regrets[-100:]) / 100)
    assert m["skill"] == pytest.approx(1 - m["regret"] / m["baseline_regret"])
    assert m["skill"] > 0.3
