"""scikit-learn warm start: a batch fit on the first rows, carried into the river
pipeline, which then keeps learning online; the same in every process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from river import compose
from sklearn.linear_model import Ridge

from oracle.bench.pipeline import SPEC as BENCH_SPEC
from oracle.config import ConfigError, load_feed_spec
from oracle.config.feeds import FeedSpec
from oracle.models import FeedModel
from oracle.sources.replay import ReplaySource
from tests.models.test_determinism import run as run_in_a_process

REPO = Path(__file__).resolve().parents[2]
ROWS = 200


def warm_spec(tmp_path: Path, rows: int = ROWS, steps: str | None = None) -> Path:
    # StandardScaler | LinearRegression over eight SP500Stocks returns (the benchmark's
    # spec; the demo feed forecasts volatility from its own history instead)
    text = BENCH_SPEC.replace("{n}", "warm").replace("{passes}", "1")
    text = text.replace(
        "[[model.steps]]", f"[model.warm_start]\nrows = {rows}\nalpha = 0.5\n\n[[model.steps]]", 1
    )
    if steps is not None:
        text = text[: text.index("[[model.steps]]")] + steps + text[text.index("[output]") :]
    path = tmp_path / "warm.toml"
    path.write_text(text)
    return path


def records(spec: FeedSpec, n: int) -> list[tuple[dict[str, float], int]]:
    fields = spec.features.record_fields
    src = ReplaySource(spec.sources[0])  # type: ignore[arg-type]
    return [({k: float(o.raw[k]) for k in fields}, o.observed_at_ms) for o in src.read(0, n)]


def test_batch_fit_is_carried_into_the_river_pipeline_which_keeps_learning(
    tmp_path: Path,
) -> None:
    spec = load_feed_spec(warm_spec(tmp_path))
    model = FeedModel(spec)
    data = records(spec, ROWS + 50)
    outputs = [model.step(r, t) for r, t in data[: ROWS + 1]]
    # horizon 1: observation k+1 labels the features of k; ROWS labelled pairs are
    # collected (no output meanwhile), then the fit, then the first prediction
    assert all(o is None for o in outputs[:ROWS])
    assert outputs[ROWS] is not None
    assert model.metrics()["warming_up"] is False

    pipeline = model.state.model
    assert isinstance(pipeline, compose.Pipeline)
    scaler, regression = pipeline.steps.values()
    names = sorted(spec.features.fields)
    x = np.array([[r[n] for n in names] for r, _ in data[:ROWS]])
    y = np.array([r["y"] for r, _ in data[1 : ROWS + 1]])
    # the scaler holds the batch's count, mean and population variance
    assert all(scaler.counts[n] == ROWS for n in names)
    np.testing.assert_allclose([scaler.means[n] for n in names], x.mean(axis=0), rtol=1e-11)
    np.testing.assert_allclose([scaler.vars[n] for n in names], x.var(axis=0), rtol=1e-11)
    # the regression holds the ridge fit on the scaled rows
    ridge = Ridge(alpha=0.5).fit((x - x.mean(axis=0)) / x.std(axis=0), y)
    np.testing.assert_allclose([regression._weights[n] for n in names], ridge.coef_, rtol=1e-9)
    assert regression.intercept == pytest.approx(float(ridge.intercept_), rel=1e-9)
    # so the first online prediction is the batch model's prediction
    current = np.array([[data[ROWS][0][n] for n in names]])
    expected = ridge.predict((current - x.mean(axis=0)) / x.std(axis=0))[0]
    assert outputs[ROWS].raw_value == pytest.approx(expected, rel=1e-9)

    # online learning continues from there: the scaler counts on, the weights move
    fitted = dict(regression._weights.to_dict())
    for r, t in data[ROWS + 1 :]:
        assert model.step(r, t) is not None
    assert all(scaler.counts[n] == ROWS + 49 for n in names)
    assert regression._weights.to_dict() != fitted


def test_two_processes_warm_start_to_identical_outputs(tmp_path: Path) -> None:
    path = warm_spec(tmp_path)
    a = run_in_a_process(path, ROWS + 300, 1)
    b = run_in_a_process(path, ROWS + 300, 2)
    assert len(a) == 300
    assert a == b


def test_warm_start_needs_a_linear_pipeline(tmp_path: Path) -> None:
    steps = '[[model.steps]]\nclass = "time_series.HoltWinters"\nalpha = 0.3\n\n'
    with pytest.raises(ConfigError) as info:
        load_feed_spec(warm_spec(tmp_path, steps=steps))
    assert any(p.key == "model.warm_start" for p in info.value.problems)
