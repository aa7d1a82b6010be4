"""The only river classes and parameters a feed spec may name.

A spec says ``class = "linear_model.LinearRegression"``; that string is looked up in
:data:`ALLOWLIST` and nowhere else: no import, no ``getattr`` on a module, no eval. Each
entry lists its parameters with their types and limits (huge trees or windows would let
a spec exhaust a node's memory), and which parameters must be given (every random
component must be seeded).

Estimators whose hot path depends on BLAS (PARegressor, BayesianLinearRegression,
LinUCBDisjoint) are deliberately absent: their last bits differ across CPUs.

The allowlist is part of the feed-spec language, so it lives with the spec reader
(oracle.config) that checks a spec against it; the model (oracle.models) builds from it.

Bandit policies (for ``[output] kind = "policy"``) are seeded. The contextual one
(``bandit.ContextualLinear``) is river's pure-Python LinearRegression per arm, not
LinUCBDisjoint (BLAS). A Thompson sampler's
reward distribution is a template: river gives each arm its own copy, seeded from the
policy's generator, so the template's own generator is never drawn from; it is built
with seed 0 so that its state (which the model commitment covers) is fixed too.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from river import anomaly, bandit, linear_model, optim, preprocessing, proba, stats, time_series

from oracle.config.reader import Table

# What a class is, which decides where it may appear in a pipeline.
TRANSFORMER = "transformer"
REGRESSOR = "regressor"
ANOMALY = "anomaly detector"
FORECASTER = "forecaster"
OPTIMIZER = "optimizer"
LOSS = "loss"
POLICY = "bandit policy"
REWARD = "reward statistic"
DISTRIBUTION = "reward distribution"


@dataclass(frozen=True)
class Param:
    kind: str  # "float" | "int" | "bool" | "component"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    required: bool = False
    component_role: str | None = None  # for kind == "component"


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Any]
    role: str
    params: dict[str, Param] = field(default_factory=dict)


def _built_by_models(**_: Any) -> Any:
    """The factory of an entry whose class lives in oracle.models, which the spec reader
    may not import (layers): oracle.models.runner builds it from the checked parameters."""
    raise TypeError("built by oracle.models.runner.build_model, not from the allowlist")


CONTEXTUAL_LINEAR = "bandit.ContextualLinear"

SEED = Param("int", 0, 2**32 - 1, required=True)
LR = Param("float", 0.0, 10.0, low_open=True)
BURN_IN = Param("int", 0, 10_000)

ALLOWLIST: dict[str, Entry] = {
    "preprocessing.StandardScaler": Entry(
        preprocessing.StandardScaler, TRANSFORMER, {"with_std": Param("bool")}
    ),
    "preprocessing.MinMaxScaler": Entry(preprocessing.MinMaxScaler, TRANSFORMER),
    "preprocessing.MaxAbsScaler": Entry(preprocessing.MaxAbsScaler, TRANSFORMER),
    "linear_model.LinearRegression": Entry(
        linear_model.LinearRegression,
        REGRESSOR,
        {
            "optimizer": Param("component", component_role=OPTIMIZER),
            # the loss a forecast is scored by: Quantile(0.5) (the median) for MAE
            "loss": Param("component", component_role=LOSS),
            "l2": Param("float", 0.0, 1e3),
            "l1": Param("float", 0.0, 1e3),
            "intercept_init": Param("float", -1e12, 1e12),
            "intercept_lr": Param("float", 0.0, 10.0),
            "clip_gradient": Param("float", 0.0, 1e12, low_open=True),
        },
    ),
    "anomaly.HalfSpaceTrees": Entry(
        anomaly.HalfSpaceTrees,
        ANOMALY,
        {
            "n_trees": Param("int", 1, 50),
            "height": Param("int", 1, 12),
            "window_size": Param("int", 1, 10_000),
            "seed": SEED,
            # limits are derived from the spec's [features] ranges, never given here
        },
    ),
    "time_series.HoltWinters": Entry(
        time_series.HoltWinters,
        FORECASTER,
        {
            "alpha": Param("float", 0.0, 1.0, low_open=True, required=True),
            "beta": Param("float", 0.0, 1.0),
            "gamma": Param("float", 0.0, 1.0),
            "seasonality": Param("int", 0, 366),
            "multiplicative": Param("bool"),
        },
    ),
    "time_series.SNARIMAX": Entry(
        time_series.SNARIMAX,
        FORECASTER,
        {
            "p": Param("int", 0, 12, required=True),
            "d": Param("int", 0, 2, required=True),
            "q": Param("int", 0, 12, required=True),
            "m": Param("int", 1, 366),
            "sp": Param("int", 0, 4),
            "sd": Param("int", 0, 2),
            "sq": Param("int", 0, 4),
        },
    ),
    "bandit.EpsilonGreedy": Entry(
        bandit.EpsilonGreedy,
        POLICY,
        {
            "epsilon": Param("float", 0.0, 1.0, required=True),
            "decay": Param("float", 0.0, 1.0),
            "burn_in": BURN_IN,
            "seed": SEED,
            "reward_obj": Param("component", component_role=REWARD),
        },
    ),
    "bandit.UCB": Entry(
        bandit.UCB,
        POLICY,
        {
            "delta": Param("float", 0.0, 1000.0, low_open=True, required=True),
            "burn_in": BURN_IN,
            "seed": SEED,
            "reward_obj": Param("component", component_role=REWARD),
        },
    ),
    "bandit.ThompsonSampling": Entry(
        bandit.ThompsonSampling,
        POLICY,
        {
            "burn_in": BURN_IN,
            "seed": SEED,
            "reward_obj": Param("component", component_role=DISTRIBUTION, required=True),
        },
    ),
    # one river LinearRegression per arm on the context features, seeded epsilon-greedy
    # (oracle.models.contextual); only for a policy learning from an agent's logged steps
    CONTEXTUAL_LINEAR: Entry(
        _built_by_models,
        POLICY,
        {
            "epsilon": Param("float", 0.0, 1.0, required=True),
            "seed": SEED,
            "lr": LR,
            "l2": Param("float", 0.0, 1e3),
            "burn_in": BURN_IN,
        },
    ),
    "stats.Mean": Entry(stats.Mean, REWARD),
    "stats.EWMean": Entry(
        stats.EWMean, REWARD, {"fading_factor": Param("float", 0.0, 1.0, low_open=True)}
    ),
    # rewards must be 0 or 1 (a success or not): the runner refuses anything else
    "proba.Beta": Entry(
        functools.partial(proba.Beta, seed=0),
        DISTRIBUTION,
        {
            "alpha": Param("float", 0.0, 1e6, low_open=True),
            "beta": Param("float", 0.0, 1e6, low_open=True),
        },
    ),
    "proba.Gaussian": Entry(functools.partial(proba.Gaussian, seed=0), DISTRIBUTION),
    "optim.SGD": Entry(optim.SGD, OPTIMIZER, {"lr": LR}),
    "optim.losses.Squared": Entry(optim.losses.Squared, LOSS),
    "optim.losses.Absolute": Entry(optim.losses.Absolute, LOSS),
    "optim.losses.Quantile": Entry(
        optim.losses.Quantile,
        LOSS,
        {"alpha": Param("float", 0.0, 1.0, low_open=True, required=True)},
    ),
    "optim.Adam": Entry(
        optim.Adam,
        OPTIMIZER,
        {
            "lr": LR,
            "beta_1": Param("float", 0.0, 1.0, low_open=True),
            "beta_2": Param("float", 0.0, 1.0, low_open=True),
            "eps": Param("float", 0.0, 1.0, low_open=True),
        },
    ),
}


@dataclass(frozen=True)
class ComponentSpec:
    """A validated allowlisted class and its parameters (nested components included)."""

    name: str
    params: tuple[tuple[str, Any], ...]  # sorted by name

    @property
    def entry(self) -> Entry:
        return ALLOWLIST[self.name]

    @property
    def role(self) -> str:
        return self.entry.role

    def build(self, **extra: Any) -> Any:
        """Instantiate from the allowlist only."""
        kwargs: dict[str, Any] = {}
        for key, value in self.params:
            kwargs[key] = value.build() if isinstance(value, ComponentSpec) else value
        kwargs.update(extra)
        return self.entry.factory(**kwargs)

    def canonical(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "params": {
                k: v.canonical() if isinstance(v, ComponentSpec) else v for k, v in self.params
            },
        }


def read_component(table: Table, *, roles: set[str]) -> ComponentSpec | None:
    """Read ``class = ...`` and its parameters from ``table``; record problems."""
    name = table.string("class", max_len=100)
    if not isinstance(name, str):
        table.finish()
        return None
    entry = ALLOWLIST.get(name)
    if entry is None:
        allowed = sorted(ALLOWLIST)
        hint = ""
        if name.count(".") > 1 or name.startswith(("river.", "sklearn.")):
            hint = " (import paths are not accepted: name an allowlisted class)"
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            hint += f" (did you mean {close[0]!r}?)"
        table.fail("class", name, f"expected an allowlisted class: {', '.join(allowed)}{hint}")
        return None
    if entry.role not in roles:
        table.fail(
            "class", name, f"expected a {' or '.join(sorted(roles))} here, got a {entry.role}"
        )
    params: list[tuple[str, Any]] = []
    for pname, p in sorted(entry.params.items()):
        if not table.has(pname):
            if p.required:
                table.fail(pname, None, f"required by {name}")
            continue
        value: Any
        if p.kind == "float":
            value = table.number(pname, low=p.low, high=p.high, low_open=p.low_open)
        elif p.kind == "int":
            value = table.integer(
                pname,
                low=None if p.low is None else int(p.low),
                high=None if p.high is None else int(p.high),
            )
        elif p.kind == "bool":
            value = table.boolean(pname)
        else:
            sub = table.table(pname)
            assert p.component_role is not None
            value = None if sub is None else read_component(sub, roles={p.component_role})
            if value is None:
                continue
        params.append((pname, value))
    table.finish()
    return ComponentSpec(name, tuple(params))
