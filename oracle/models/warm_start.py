"""Warm start: fit scikit-learn on the first rows in batch, then carry the fitted state
into the river pipeline so online learning continues from it.

Supported pipelines: ``[StandardScaler,] LinearRegression`` (checked by the feed spec).
The scaler gets the batch's count, mean and population variance (what river's online
scaler would have after the same rows, up to float summation order); the regression
gets a ridge fit on the scaled features.

A batch solve goes through BLAS/LAPACK, whose last bits can differ across CPUs. The
carried weights are rounded to 12 significant digits so that nodes agree unless a
weight sits exactly on a rounding boundary (DESIGN.md: BLAS-dependent results only
behind a tolerance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river import compose, linear_model, preprocessing
from sklearn.linear_model import Ridge


def _round(v: float) -> float:
    return float(f"{v:.12g}")


def warm_start(model: Any, rows: list[tuple[dict[str, float], float]], *, alpha: float) -> None:
    names = sorted(rows[0][0])
    x = np.array([[r[0][n] for n in names] for r in rows], dtype=np.float64)
    y = np.array([r[1] for r in rows], dtype=np.float64)
    steps = list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]
    scaler = next((s for s in steps if isinstance(s, preprocessing.StandardScaler)), None)
    regressor = steps[-1]
    assert isinstance(regressor, linear_model.LinearRegression)
    if scaler is not None:
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        for i, n in enumerate(names):
            scaler.counts[n] = len(rows)
            scaler.means[n] = _round(float(mean[i]))
            scaler.vars[n] = _round(float(var[i]))
        std = np.sqrt(np.array([scaler.vars[n] for n in names]))
        means = np.array([scaler.means[n] for n in names])
        x = np.divide(x - means, std, out=np.zeros_like(x), where=std > 0)
    fit = Ridge(alpha=alpha, solver="cholesky").fit(x, y)
    for i, n in enumerate(names):
        regressor._weights[n] = _round(float(fit.coef_[i]))
    regressor.intercept = _round(float(fit.intercept_))
