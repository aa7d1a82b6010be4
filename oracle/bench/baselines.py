"""Naive baselines and the scores ``mira eval`` compares a feed with, as pure functions of
the stream: nothing here touches a node, and everything is deterministic (seeded), so a
test can hold the numbers.

Forecasts: ``targets[i]`` is the target of observation ``i`` (0-based); a forecast made at
observation ``s`` with horizon ``h`` is of ``targets[s + h]``. What a naive rule may use at
``s`` is what the node knew then: the targets up to ``s`` (horizon >= 1), or up to
``s - 1`` when the record's own target is the one forecast (horizon 0).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from river import linear_model, optim, preprocessing


def known_until(s: int, horizon: int) -> int:
    """The last observation whose target is known when observation ``s`` forecasts."""
    return s if horizon >= 1 else s - 1


def forecast_baseline(
    name: str, targets: Sequence[float], at: Sequence[int], horizon: int, *, season: int, lags: int
) -> list[float | None]:
    """The baseline ``name``'s forecasts made at each observation in ``at`` (None where it
    has no forecast yet)."""
    if name == "lag_regression":
        return _lag_regression(targets, at, horizon, lags)
    if name == "median":
        return _running_median(targets, at, horizon)
    prefix = np.cumsum(np.asarray(targets, dtype=float))
    out: list[float | None] = []
    for s in at:
        k = known_until(s, horizon)
        if k < 0:
            out.append(None)
        elif name == "last":
            out.append(float(targets[k]))
        elif name == "mean":
            out.append(float(prefix[k] / (k + 1)))
        elif name == "zero":
            out.append(0.0)
        elif name == "seasonal_naive":
            t = s + horizon
            back = t - season * math.ceil((t - k) / season)
            out.append(float(targets[back]) if back >= 0 else None)
        else:
            raise ValueError(f"unknown forecast baseline {name!r}")
    return out


def _lag_regression(
    targets: Sequence[float], at: Sequence[int], horizon: int, lags: int
) -> list[float | None]:
    """StandardScaler | LinearRegression (river's defaults, SGD lr 0.01) on the last
    ``lags`` known targets, learned prequentially: a forecast's features learn its target
    once the target is known."""
    model = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.01)
    )
    wanted = set(at)
    pending: dict[int, dict[str, float]] = {}  # target index -> features that forecast it
    out: dict[int, float | None] = {}
    for s in range(max(at, default=-1) + 1):
        k = known_until(s, horizon)
        if horizon == 0 and k >= 0 and k in pending:
            model.learn_one(pending.pop(k), targets[k])
        if horizon >= 1 and s in pending:
            model.learn_one(pending.pop(s), targets[s])
        if k + 1 < lags:
            out[s] = None
            continue
        x = {f"lag_{i}": float(targets[k + 1 - i]) for i in range(1, lags + 1)}
        out[s] = float(model.predict_one(x)) if s in wanted else None
        pending[s + horizon] = x
    return [out.get(s) for s in at]


def _running_median(
    targets: Sequence[float], at: Sequence[int], horizon: int
) -> list[float | None]:
    """The median of every target known at each forecast (what minimises absolute error
    for a level that does not move)."""
    known: list[float] = []
    out = []
    for s in at:
        k = known_until(s, horizon)
        while len(known) < k + 1:
            bisect.insort(known, float(targets[len(known)]))
        out.append(float(np.median(known)) if known else None)
    return out


def errors(predictions: Sequence[float], actual: Sequence[float]) -> dict[str, float]:
    p = np.asarray(predictions, dtype=float)
    a = np.asarray(actual, dtype=float)
    return {
        "mae": float(np.mean(np.abs(p - a))),
        "rmse": float(math.sqrt(np.mean((p - a) ** 2))),
    }


def rolling_zscore(values: Sequence[float], window: int) -> list[float]:
    """``|x_t - mean| / std`` over the ``window`` values before ``t`` (0 until two are
    known, or while they do not vary)."""
    out = []
    for t in range(len(values)):
        past = np.asarray(values[max(0, t - window) : t], dtype=float)
        if len(past) < 2 or past.std() == 0.0:
            out.append(0.0)
            continue
        out.append(float(abs(values[t] - past.mean()) / past.std()))
    return out


def detection_scores(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, float]:
    """ROC-AUC and average precision of ``scores`` against ``labels`` (scikit-learn's)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }


def random_policy(rewards: np.ndarray, runs: int, seed: int = 0) -> dict[str, Any]:
    """Uniformly random arm choice: the exact expected cumulative reward, and the mean and
    spread of ``runs`` seeded runs (``rewards`` is steps × arms)."""
    rng = np.random.default_rng(seed)
    steps, arms = rewards.shape
    totals = np.empty(runs)
    for start in range(0, runs, 64):  # 64 runs at a time: memory stays O(steps)
        picks = rng.integers(0, arms, size=(min(64, runs - start), steps))
        totals[start : start + len(picks)] = rewards[np.arange(steps), picks].sum(axis=1)
    return {
        "expected": float(rewards.mean(axis=1).sum()),
        "mean_of_runs": float(totals.mean()),
        "std_of_runs": float(totals.std()),
        "runs": runs,
        "totals": totals,  # every run's total, for percentiles
    }
