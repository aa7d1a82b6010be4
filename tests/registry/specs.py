"""Registered-model specs for the registry tests: a small SP500 forecast, and the
hostile variants each check must refuse."""

from __future__ import annotations

import tomllib

from oracle.config.feeds import feed_id_bytes32, spec_digest
from oracle.registry import fetch

FEED = "REG/sp500-vol"

SPEC = """id = "{feed}"
version = {version}
description = "SP500Stocks volatility, a model registered on-chain"
decimals = 8
{extra}
[[sources]]
name = "sp500"
kind = "replay"
dataset = "river:SP500Stocks"
start_ms = {start_ms}
step_ms = {step_ms}
realtime = {realtime}

[features]
fields = ["AAPL", "AMZN", "IBM"]
target = "vol"
target_stat = "mean_abs"
current = true
lags = 2

[[model.steps]]
class = "{scaler}"

[[model.steps]]
class = "linear_model.LinearRegression"
intercept_lr = {intercept_lr}

[output]
kind = "forecast"
horizon = 1

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 1
heartbeat_s = 3600
"""


def spec_text(
    *,
    feed: str = FEED,
    version: int = 1,
    start_ms: int = 1_700_000_000_000,
    step_ms: int = 1000,
    realtime: bool = False,
    scaler: str = "preprocessing.StandardScaler",
    intercept_lr: float = 0.05,
    extra: str = "",
) -> str:
    return SPEC.format(
        feed=feed,
        version=version,
        start_ms=start_ms,
        step_ms=step_ms,
        realtime=str(realtime).lower(),
        scaler=scaler,
        intercept_lr=intercept_lr,
        extra=extra,
    )


def digest(text: str) -> bytes:
    """What the registry holds as the spec hash (oracle.config.feeds.spec_digest)."""
    return spec_digest(tomllib.loads(text))


def data_uri(text: str) -> str:
    return fetch.data_uri(text.encode())


def feed_ids(feed: str = FEED) -> tuple[bytes, ...]:
    return (feed_id_bytes32(feed),)


HTTP_SPEC = """id = "{feed}"
version = 1
description = "a forecast learning from an HTTP price (refused: members read different values)"
decimals = 8

[[sources]]
name = "alpha"
kind = "http"
url = "http://127.0.0.1:9101/price"
path = "data.price"

[features]
lags = 3

[[model.steps]]
class = "linear_model.LinearRegression"

[output]
kind = "forecast"
horizon = 1

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 1
heartbeat_s = 3600
"""


def http_spec_text(feed: str = FEED) -> str:
    return HTTP_SPEC.format(feed=feed)
