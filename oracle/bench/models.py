"""``mira eval`` and ``mira bench models``: a feed spec run through the node's own
pipeline (validation, model, quantization, storage in a temporary SQLite database; no
chain) over its replay source, and its error measured against naive baselines on the
same stream.

Per output kind (the baselines are named in the spec's ``[eval]`` table, or these):

* ``forecast``: MAE and RMSE of the model's raw forecasts, and of the last known value,
  the running mean, zero, seasonal naive and a lag regression, each forecasting the same
  targets from what the node knew at the time.
* ``anomaly``: ROC-AUC and average precision of the scores against the spec's labels
  (``[eval] anomalies``), and of a rolling z-score.
* ``policy``: the cumulative reward of the arms the policy pulled, against uniformly
  random play (its exact expectation, and the mean of many seeded runs) and the best
  fixed arm in hindsight (regret).

``improvement`` is measured on the spec's metric against the best *naive* baseline: for
an error, ``1 - model / baseline``; for a score or a reward, ``model / baseline - 1``. The
lag regression, the running median and the best fixed arm are references, reported
beside the naive rules but not the bar.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from oracle.bench.baselines import (
    detection_scores,
    errors,
    forecast_baseline,
    random_policy,
    rolling_zscore,
)
from oracle.config.feeds import (
    EvalSpec,
    FeedSpec,
    HttpSourceSpec,
    ReplaySourceSpec,
    load_feed_spec,
)
from oracle.errors import MiraError
from oracle.models import FeedModel
from oracle.node.pipeline import FeedPipeline
from oracle.sources.replay import ReplaySource
from oracle.storage import Store, make_engine, upgrade

BAR = 0.10  # every demo model feed beats its best naive baseline by this much
# reported beside the naive baselines, not the bar: a learned model, the level that
# minimises absolute error in hindsight of the past, and an oracle that knows the future
REFERENCES = ("lag_regression", "median", "best_fixed_arm")
HIGHER_IS_BETTER = ("roc_auc", "average_precision", "cumulative_reward")


class EvalError(MiraError):
    """A spec cannot be evaluated; the message names the spec and the key to change."""


def evaluate_file(path: Path) -> dict[str, Any]:
    return evaluate(load_feed_spec(path))


def evaluate(spec: FeedSpec) -> dict[str, Any]:
    """Run ``spec`` over its replay source and score it against its baselines."""
    source = spec.sources[0]
    if not isinstance(source, ReplaySourceSpec):
        kind = "http" if isinstance(source, HttpSourceSpec) else "chain_events"
        raise EvalError(
            f"{spec.file}: sources[0].kind = {kind!r}: expected a replay source (mira eval "
            "measures a feed on data it can replay)"
        )
    if spec.model is None:
        raise EvalError(f"{spec.file}: model: expected a model to evaluate (a value feed has none)")
    ev = spec.evaluation
    assert ev is not None  # every spec with a model has one: [eval] or its kind's defaults
    if spec.output_kind == "anomaly" and not ev.anomalies:
        raise EvalError(
            f"{spec.file}: eval.anomalies: expected labelled anomalies "
            "([[first_row, last_row], ...]) to score an anomaly feed against"
        )
    run = _run(spec, source)
    result: dict[str, Any] = {
        "spec": spec.file,
        "feed": spec.id,
        "version": spec.version,
        "kind": spec.output_kind,
        "dataset": source.dataset,
        "observations": run["observations"],
        "rejected": run["rejected"],
    }
    if spec.output_kind == "forecast":
        result.update(_score_forecast(spec, ev, run))
    elif spec.output_kind == "anomaly":
        result.update(_score_anomaly(spec, ev, run))
    else:
        result.update(_score_policy(spec, ev, run))
    return result


def _run(spec: FeedSpec, source_spec: ReplaySourceSpec) -> dict[str, Any]:
    """The node's pipeline over every row, stored in a throw-away database; returns the
    accepted records (by observation, 0-based), the outputs and the arms pulled."""
    with tempfile.TemporaryDirectory(prefix="mira-eval-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.sqlite'}")
        try:
            upgrade(engine)
            store = Store(engine)
            pipe = FeedPipeline(spec, store)
            source = ReplaySource(source_spec)
            pulled: dict[int, str] = {}
            rows: dict[int, int] = {}  # observation (0-based) -> dataset row
            for i, obs in enumerate(source.read()):
                before = pipe.model.seq
                pipe.ingest(obs)
                if pipe.model.seq != before:
                    rows[before] = i % len(source.rows)
                    if pipe.model.state.last_pulled is not None:
                        pulled[before] = pipe.model.state.last_pulled
                if pipe.pending >= 1000:
                    pipe.flush()
            pipe.flush()
            records = [
                (row.seq - 1, _record(row.record)) for row in store.observations_after(spec.id, 0)
            ]
            outputs = {
                o.id: {
                    r.seq - 1: r.raw_value for r in store.outputs(o.id, after_seq=0, limit=10**9)
                }
                for o in spec.outputs
            }
            rejected = sum(store.rejection_counts(spec.id).values())
        finally:
            engine.dispose()
    return {
        "observations": len(records),
        "rejected": rejected,
        "records": [r for _, r in sorted(records)],
        "outputs": outputs,
        "pulled": pulled,
        "rows": rows,
    }


def _record(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()}


def _targets(spec: FeedSpec, records: list[dict[str, float]]) -> list[float]:
    model = FeedModel(spec)  # the target as the node's model derives it from a record
    return [model.target(r) for r in records]


def _improvement(metric: str, model: float, baseline: float) -> float | None:
    if baseline == 0.0:
        return None
    if metric in HIGHER_IS_BETTER:
        return model / abs(baseline) - 1.0 if baseline > 0 else (model - baseline) / -baseline
    return 1.0 - model / baseline


def _verdict(metric: str, model: float, baselines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    naive = {n: b[metric] for n, b in baselines.items() if n not in REFERENCES}
    if not naive:
        return {"best_naive_baseline": None, "improvement": None, "bar": BAR, "pass": None}
    pick = max if metric in HIGHER_IS_BETTER else min
    best = pick(naive, key=lambda n: naive[n])
    gain = _improvement(metric, model, naive[best])
    return {
        "best_naive_baseline": best,
        "improvement": None if gain is None else round(gain, 6),
        "bar": BAR,
        "pass": gain is not None and gain >= BAR,
    }


def _score_forecast(spec: FeedSpec, ev: EvalSpec, run: dict[str, Any]) -> dict[str, Any]:
    h = spec.horizon
    targets = _targets(spec, run["records"])
    predictions = run["outputs"][spec.id]
    # the forecasts whose target is in the stream
    candidates = [s for s in sorted(predictions) if s + h < len(targets)]
    per = {
        name: forecast_baseline(name, targets, candidates, h, season=ev.season, lags=ev.lags)
        for name in ev.baselines
    }
    # ... and that every baseline makes too: all are scored on the same targets
    keep = [j for j in range(len(candidates)) if all(per[n][j] is not None for n in per)]
    actual = [targets[candidates[j] + h] for j in keep]
    model = errors([predictions[candidates[j]] for j in keep], actual)
    baselines = {
        name: errors([float(forecasts[j]) for j in keep], actual)  # type: ignore[arg-type]
        for name, forecasts in per.items()
    }
    return {
        "metric": ev.metric,
        "horizon": h,
        "evaluated": len(keep),
        "model_scores": _rounded(model),
        "baselines": {n: _rounded(b) for n, b in baselines.items()},
        **_verdict(ev.metric, model[ev.metric], baselines),
    }


def _score_anomaly(spec: FeedSpec, ev: EvalSpec, run: dict[str, Any]) -> dict[str, Any]:
    targets = _targets(spec, run["records"])
    scores = run["outputs"][spec.id]
    at = sorted(scores)
    rows = run["rows"]
    labels = [any(a <= rows[s] <= b for a, b in ev.anomalies) for s in at]
    if not any(labels) or all(labels):
        raise EvalError(
            f"{spec.file}: eval.anomalies = {list(map(list, ev.anomalies))}: expected rows "
            "that label some but not all of the scored observations"
        )
    model = detection_scores([scores[s] for s in at], labels)
    baselines = {}
    if "zscore" in ev.baselines:
        z = rolling_zscore(targets, ev.zscore_window)
        baselines["zscore"] = detection_scores([z[s] for s in at], labels)
    return {
        "metric": ev.metric,
        "evaluated": len(at),
        "anomalous": sum(labels),
        "model_scores": _rounded(model),
        "baselines": {n: _rounded(b) for n, b in baselines.items()},
        **_verdict(ev.metric, model[ev.metric], baselines),
    }


def _score_policy(spec: FeedSpec, ev: EvalSpec, run: dict[str, Any]) -> dict[str, Any]:
    records = run["records"]
    pulled = run["pulled"]
    steps = sorted(pulled)
    model = FeedModel(spec)  # the rewards exactly as the node's policy learns them
    rewards = np.array([model.arm_rewards(records[s]) for s in steps], dtype=float)
    chosen = [spec.arms.index(pulled[s]) for s in steps]
    total = float(rewards[np.arange(len(steps)), chosen].sum())
    per_arm = rewards.sum(axis=0)
    best_arm = int(np.argmax(per_arm))
    baselines: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    if "uniform_random" in ev.baselines:
        rnd = random_policy(rewards, ev.random_runs)
        totals = rnd.pop("totals")
        baselines["uniform_random"] = {
            "cumulative_reward": round(rnd["mean_of_runs"], 6),
            "expected": round(rnd["expected"], 6),
            "std_of_runs": round(rnd["std_of_runs"], 6),
            "runs": rnd["runs"],
        }
        extra["percentile_among_random_runs"] = round(float(np.mean(totals < total)) * 100, 2)
    if "best_fixed_arm" in ev.baselines:
        baselines["best_fixed_arm"] = {
            "arm": spec.arms[best_arm],
            "cumulative_reward": round(float(per_arm[best_arm]), 6),
        }
    pulls = {a: chosen.count(i) for i, a in enumerate(spec.arms)}
    return {
        "metric": "cumulative_reward",
        "evaluated": len(steps),
        "model_scores": {
            "cumulative_reward": round(total, 6),
            "regret_vs_best_fixed_arm": round(float(per_arm[best_arm]) - total, 6),
            "pulls": pulls,
        },
        "baselines": baselines,
        **extra,
        **_verdict("cumulative_reward", total, baselines),
    }


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in scores.items()}


def demo_specs(feeds_dir: Path, examples: list[Path]) -> list[Path]:
    """The demo specs that carry a model (feeds/*.toml), then the examples given."""
    paths = []
    for path in sorted(feeds_dir.glob("*.toml")):
        if load_feed_spec(path).model is not None:
            paths.append(path)
    return paths + [p for p in examples if p.is_file()]
