"""oracle.models.calls: a regressor's learn and predict made step by step are river's
Pipeline's own, bit for bit, and a model of another shape keeps its methods."""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly, compose, feature_extraction, linear_model, optim, preprocessing, stats

from oracle.config import load_feed_spec
from oracle.models import FeedModel
from oracle.models.calls import regressor_calls
from oracle.models.commitment import commitment
from oracle.sources.replay import ReplaySource

REPO = Path(__file__).resolve().parents[2]
SPEC = b"s" * 32
FIELDS = ("a", "b", "c")

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
records = st.lists(
    st.tuples(st.fixed_dictionaries({k: finite for k in FIELDS}), finite),
    min_size=1,
    max_size=40,
)


def _bits(v: float) -> bytes:
    return struct.pack(">d", v)


def _pipelines() -> list[compose.Pipeline]:
    """Every shape the allowlist builds for a regressor feed, and a longer one."""
    return [
        preprocessing.StandardScaler() | linear_model.LinearRegression(),
        preprocessing.StandardScaler(with_std=False) | linear_model.LinearRegression(l2=0.1),
        preprocessing.MinMaxScaler() | linear_model.LinearRegression(optimizer=optim.SGD(0.001)),
        preprocessing.MaxAbsScaler() | linear_model.LinearRegression(intercept_lr=0.0),
        preprocessing.StandardScaler()
        | preprocessing.MaxAbsScaler()
        | linear_model.LinearRegression(clip_gradient=10.0),
    ]


@settings(max_examples=60, deadline=None)
@given(stream=records, which=st.integers(0, len(_pipelines()) - 1))
def test_step_by_step_is_the_pipeline_bit_for_bit(
    stream: list[tuple[dict[str, float], float]], which: int
) -> None:
    """The node's order (the previous features learn this target, then these features
    predict): every prediction and the commitment after every step are the same."""
    river_model = _pipelines()[which]
    ours = copy.deepcopy(river_model)
    learn, predict = regressor_calls(ours)
    assert learn is not ours.learn_one  # taken apart, not the Pipeline's own
    previous = None
    for x, y in stream:
        if previous is not None:
            river_model.learn_one(previous, y)
            learn(previous, y)
        assert _bits(predict(x)) == _bits(river_model.predict_one(x))
        assert commitment(SPEC, ours) == commitment(SPEC, river_model)
        previous = x


@given(stream=records)
@settings(max_examples=30, deadline=None)
def test_learning_leaves_the_features_unchanged(
    stream: list[tuple[dict[str, float], float]],
) -> None:
    """The node keeps the features it learns from (pending forecasts, stored records): the
    step-by-step calls change no dict they are given, as the Pipeline changes none."""
    learn, predict = regressor_calls(
        preprocessing.StandardScaler() | linear_model.LinearRegression()
    )
    for x, y in stream:
        before = dict(x)
        predict(x)
        learn(x, y)
        assert x == before and list(x) == list(before)


@pytest.mark.parametrize(
    "model",
    [
        linear_model.LinearRegression(),  # a single estimator
        # a supervised transformer learns after transforming, with the target
        feature_extraction.TargetAgg(by=["a"], how=stats.Mean()) | linear_model.LinearRegression(),
        # a union learns each of its parts
        (preprocessing.StandardScaler() + preprocessing.MinMaxScaler())
        | linear_model.LinearRegression(),
        # an anomaly filter may stop learning
        anomaly.QuantileFilter(anomaly.HalfSpaceTrees(seed=1), q=0.95)
        | linear_model.LinearRegression(),
        # the last step a transformer: nothing supervised to learn
        preprocessing.StandardScaler() | preprocessing.MinMaxScaler(),
    ],
    ids=["estimator", "supervised-transformer", "union", "anomaly-filter", "no-estimator"],
)
def test_other_shapes_keep_their_own_methods(model: Any) -> None:
    learn, predict = regressor_calls(model)
    assert learn == model.learn_one and predict == model.predict_one


def test_a_restored_feed_learns_and_predicts_with_its_restored_model() -> None:
    """A checkpoint replaces the model's objects: the restored feed's outputs (values and
    commitments) are the uninterrupted feed's, not those of the model it was built with."""
    spec = load_feed_spec(REPO / "feeds" / "sp500_forecast.toml")
    observations = list(ReplaySource(spec.sources[0]).read(0, 120))
    fields = spec.features.record_fields

    def record(obs: Any) -> dict[str, float]:
        return {k: float(obs.raw[k]) for k in fields}

    whole, first = FeedModel(spec), FeedModel(spec)
    expected = [whole.step(record(o), o.observed_at_ms) for o in observations]
    for o in observations[:60]:
        first.step(record(o), o.observed_at_ms)
    again = FeedModel(spec)
    again.restore(first.checkpoint())
    outs = [again.step(record(o), o.observed_at_ms) for o in observations[60:]]
    assert outs == expected[60:]
    assert outs[-1] is not None and outs[-1].commitment == whole.commitment()
