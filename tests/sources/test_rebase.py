"""The replay's ``returns_to_index`` transform and the ``values`` output kind: SP500Stocks'
daily returns published as ten rebased price feeds (feeds/rl/sp500_prices.toml).

The index is checked against an independent computation in exact rationals (Fraction, the
rule written out again), row by row for every stock, and every malformed transform or
dataset fails with its own error."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from math import nan
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from river import datasets
from sqlalchemy import Engine

from oracle.config import ConfigError, load_feed_spec
from oracle.config.feeds import ReplaySourceSpec, arm_feed_id
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.sources.rebase import TransformError
from oracle.sources.replay import RawObservation, ReplaySource, load_rows
from oracle.storage import Store, make_engine, upgrade

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "feeds" / "rl" / "sp500_prices.toml"
TICKERS = ("AAPL", "AMZN", "IBM", "INTC", "JNJ", "JPM", "KO", "MSFT", "WMT", "XOM")

SPEC = """
id = "T/prices"
version = 1
description = "t"
decimals = 8

[[sources]]
name = "r"
kind = "replay"
dataset = "{dataset}"
{source_extra}

[sources.transform]
{transform}

[features]
fields = {fields}

[output]
kind = "values"

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 0
heartbeat_s = 60
"""
TRANSFORM = 'kind = "returns_to_index"\nfields = ["a", "b"]\nbase = 100\ndecimals = 8'


def write(
    tmp_path: Path,
    *,
    transform: str = TRANSFORM,
    csv: str | None = "a,b\n1.0,-2.0\n0.5,0.25\n",
    fields: str = '["a", "b"]',
    source_extra: str = "",
    dataset: str = "data.csv",
) -> Path:
    if csv is not None:
        (tmp_path / "data.csv").write_text(csv)
    path = tmp_path / "spec.toml"
    path.write_text(
        SPEC.format(dataset=dataset, source_extra=source_extra, transform=transform, fields=fields)
    )
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_feed_spec(path)
    return [str(p) for p in info.value.problems]


def _half_even(x: Fraction, decimals: int) -> Fraction:
    """``x`` rounded to ``decimals`` places, ties to even: written again, in rationals."""
    scaled = x * 10**decimals
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        floor += 1
    return Fraction(floor, 10**decimals)


def test_the_shipped_price_spec_publishes_ten_rebased_closes() -> None:
    spec = load_feed_spec(PRICES)
    assert spec.output_kind == "values" and spec.model is None
    assert [o.id for o in spec.outputs] == [arm_feed_id("SP500/price", t) for t in TICKERS]
    source = spec.sources[0]
    assert isinstance(source, ReplaySourceSpec) and source.transform is not None
    assert source.transform.fields == TICKERS and source.passes == 1
    assert "rebased to 100" in spec.description and "not a dollar price" in spec.description


def test_the_index_is_the_exact_rule_row_by_row() -> None:
    """Every row of every stock against an independent exact computation: 100 × Π(1 + r/100),
    each row rounded half to even to 8 decimals, r the dataset's float in its shortest form."""
    spec = load_feed_spec(PRICES)
    rows = load_rows(spec.sources[0])  # type: ignore[arg-type]
    data = list(datasets.SP500Stocks())
    raw = [dict(x) for x, _ in data]
    assert len(rows) == len(raw) == 1257
    level = dict.fromkeys(TICKERS, Fraction(100))
    for got, r in zip(rows, raw, strict=True):
        for t in TICKERS:
            level[t] = _half_even(level[t] * (1 + Fraction(repr(r[t])) / 100), 8)
            assert got[t] == float(level[t]), (t, got[t], level[t])
    # the record's float quantizes back to exactly the rounded index (8 decimals)
    assert rows[-1]["AAPL"] == 240.2651496 and rows[-1]["AMZN"] == 550.80729869
    # a close rebased to 100: AMZN rose about 5.5-fold over Feb 2013 - Feb 2018, IBM fell
    assert rows[-1]["AMZN"] > 500 and rows[-1]["IBM"] < 100
    assert [r["y"] for r in rows] == [y for _, y in data]  # columns not named: unchanged


def test_the_price_runner_publishes_each_stock_as_its_own_feed(tmp_path: Path) -> None:
    spec = load_feed_spec(PRICES)
    engine = make_engine(f"sqlite:///{tmp_path / 'n.sqlite'}")
    upgrade(engine)
    store = Store(engine)
    runner = FeedRunner(spec, store, FeedMetrics(CollectorRegistry()), replay_batch=3)
    runner.restore()
    asyncio.run(runner.poll())
    out = runner.pipeline.last_output
    assert out is not None and out.seq == 3
    rows = load_rows(spec.sources[0])  # type: ignore[arg-type]
    expected = [round(rows[2][t] * 10**8) for t in TICKERS]
    assert [a.value for a in out.arms] == expected
    updates = runner.latest_updates()
    assert [(u.feed_id, u.value) for u in updates] == [
        (o.id_bytes32, v) for o, v in zip(spec.outputs, expected, strict=True)
    ]
    assert all(a.publish for a in out.arms)  # every price moved (deviation_bps = 0)
    runner.pipeline.flush()
    # each feed's outputs are stored under its own id, and a restart replays them identically
    for o, v in zip(spec.outputs, expected, strict=True):
        [*_, last] = store.outputs(o.id, after_seq=0, limit=10)
        assert last.value == v
    again = FeedRunner(spec, store, FeedMetrics(CollectorRegistry()), replay_batch=3)
    again.restore()
    assert again.position == 3
    assert again.pipeline.last_output is not None
    assert [a.value for a in again.pipeline.last_output.arms] == expected


def test_an_unchanged_price_is_not_due_but_the_others_are(tmp_path: Path) -> None:
    path = write(tmp_path, csv="a,b\n1.0,-2.0\n0.0,0.5\n")
    spec = load_feed_spec(path)
    runner = FeedRunner(spec, Store(_engine(tmp_path)), FeedMetrics(CollectorRegistry()))
    first = runner.pipeline.ingest(next(runner.replay.read(0, 1)))  # type: ignore[union-attr]
    second = runner.pipeline.ingest(next(runner.replay.read(1, 1)))  # type: ignore[union-attr]
    assert first is not None and second is not None
    assert [(a.arm, a.value, a.publish) for a in first.arms] == [
        ("a", 101 * 10**8, True),
        ("b", 98 * 10**8, True),
    ]
    # a's return is 0: its price is unchanged, not due; b moved +0.5 %: 98.49
    assert [(a.arm, a.value, a.publish) for a in second.arms] == [
        ("a", 101 * 10**8, False),
        ("b", 9849 * 10**6, True),
    ]


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'n.sqlite'}")
    upgrade(engine)
    return engine


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-100", "-100.0", "-150.5", "-1e9"])
def test_a_return_of_minus_100_percent_or_less_stops_the_load(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, csv=f"a,b\n1.0,2.0\n{value},0.5\n")
    spec = load_feed_spec(path)  # the spec is fine: only the dataset can tell
    with pytest.raises(TransformError, match=r"row 1 a is a return of .* %: at -100 % or below"):
        ReplaySource(spec.sources[0])  # type: ignore[arg-type]


def test_an_index_that_rounds_to_zero_stops_the_load(tmp_path: Path) -> None:
    transform = 'kind = "returns_to_index"\nfields = ["a"]\nbase = 1\ndecimals = 0'
    path = write(tmp_path, transform=transform, csv="a\n-60\n", fields='["a"]')
    spec = load_feed_spec(path)
    with pytest.raises(TransformError, match=r"row 0 a: .* takes the index from 1.0 to 0"):
        ReplaySource(spec.sources[0])  # type: ignore[arg-type]


def test_an_index_beyond_the_value_limit_stops_the_load(tmp_path: Path) -> None:
    path = write(tmp_path, csv="a,b\n1e25,0\n1e25,0\n")
    spec = load_feed_spec(path)
    with pytest.raises(TransformError, match=r"row 1 a: the index reaches .* beyond 1e\+30"):
        ReplaySource(spec.sources[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("abc", "non-numeric string"), ("nan", "non-numeric string"), ("", "non-numeric string")],
)
def test_a_value_that_is_no_return_stops_the_load(tmp_path: Path, cell: str, reason: str) -> None:
    path = write(tmp_path, csv=f"a,b\n1.0,2.0\n0.5,{cell}\n")
    spec = load_feed_spec(path)
    with pytest.raises(TransformError, match=rf"row 1 b.* {reason}.*: not a return"):
        ReplaySource(spec.sources[0])  # type: ignore[arg-type]


def test_a_column_the_dataset_lacks_stops_the_load(tmp_path: Path) -> None:
    transform = 'kind = "returns_to_index"\nfields = ["a", "zz"]'
    path = write(tmp_path, transform=transform)
    spec = load_feed_spec(path)
    with pytest.raises(TransformError, match=r"names columns zz that the dataset does not have"):
        ReplaySource(spec.sources[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("transform", "key", "expected"),
    [
        ('kind = "log_returns"\nfields = ["a"]', "transform.kind", "one of returns_to_index"),
        ('fields = ["a"]', "transform.kind", "required"),
        ('kind = "returns_to_index"', "transform.fields", "required"),
        ('kind = "returns_to_index"\nfields = []', "transform.fields", "at least one"),
        ('kind = "returns_to_index"\nfields = "a"', "transform.fields", "an array of strings"),
        ('kind = "returns_to_index"\nfields = ["a", "a"]', "transform.fields", "no duplicates"),
        ('kind = "returns_to_index"\nfields = ["a-b"]', "transform.fields", "identifiers"),
        ('kind = "returns_to_index"\nfields = ["a"]\nbase = 0', "transform.base", "(0.0, "),
        ('kind = "returns_to_index"\nfields = ["a"]\nbase = -5', "transform.base", "(0.0, "),
        ('kind = "returns_to_index"\nfields = ["a"]\nbase = 1e13', "transform.base", "(0.0, "),
        ('kind = "returns_to_index"\nfields = ["a"]\nbase = "100"', "transform.base", "a number"),
        ('kind = "returns_to_index"\nfields = ["a"]\ndecimals = 19', "transform.decimals", "0, 18"),
        ('kind = "returns_to_index"\nfields = ["a"]\ndecimals = 1.5', "transform.decimals", "int"),
        ('kind = "returns_to_index"\nfields = ["a"]\nscale = 2', "transform.scale", "unknown key"),
    ],
)
def test_a_malformed_transform_is_refused_by_the_spec_reader(
    tmp_path: Path, transform: str, key: str, expected: str
) -> None:
    problems = problems_of(write(tmp_path, transform=transform))
    assert any(f"sources[0].{key}" in p and expected in p for p in problems), problems


def test_a_transform_with_several_passes_is_refused(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, source_extra="passes = 2"))
    assert any("expected passes = 1 with a returns_to_index transform" in p for p in problems)


FEATURES = 'fields = ["a", "b"]\n\n[output]'


def test_a_values_feed_takes_fields_only_and_no_model(tmp_path: Path) -> None:
    path = write(tmp_path)
    text = path.read_text()
    for extra, expected in [
        ('target = "a"', "expected only fields for output kind 'values'"),
        ("lags = 2", "expected only fields for output kind 'values'"),
        ("current = true", "expected only fields for output kind 'values'"),
    ]:
        path.write_text(text.replace(FEATURES, f'fields = ["a", "b"]\n{extra}\n\n[output]'))
        assert any(expected in p for p in problems_of(path)), extra
    model = '[[model.steps]]\nclass = "linear_model.LinearRegression"\n\n[quantize]'
    path.write_text(text.replace("[quantize]", model))
    assert any("expected no model for output kind 'values'" in p for p in problems_of(path))
    path.write_text(text.replace(FEATURES, "fields = []\n\n[output]"))
    assert any("expected the fields to publish" in p for p in problems_of(path))
    many = "[" + ", ".join(f'"f{i}"' for i in range(33)) + "]"
    path.write_text(text.replace(FEATURES, f"fields = {many}\n\n[output]"))
    assert any("at most 32 fields for output kind 'values'" in p for p in problems_of(path))


def test_a_values_feed_needs_a_source_of_records(tmp_path: Path) -> None:
    path = tmp_path / "http.toml"
    replay = 'kind = "replay"\ndataset = "{dataset}"\n{source_extra}\n\n[sources.transform]\n'
    http = 'kind = "http"\nurl = "http://127.0.0.1:1/p"\npath = "p"'
    path.write_text(SPEC.replace(replay + "{transform}", http).replace("{fields}", "[]"))
    assert any(
        "expected a replay source or a chain_events source with [fields] for output kind 'values'"
        in p
        for p in problems_of(path)
    )


def test_a_values_record_with_a_missing_or_bad_field_is_rejected_not_published(
    tmp_path: Path,
) -> None:
    path = write(tmp_path)
    spec = load_feed_spec(path)
    store = Store(_engine(tmp_path))
    runner = FeedRunner(spec, store, FeedMetrics(CollectorRegistry()))
    pipeline = runner.pipeline
    assert pipeline.ingest(RawObservation("r", 1_000, "x:0", {"a": 101.0})) is None
    assert pipeline.ingest(RawObservation("r", 2_000, "x:1", {"a": nan, "b": 99.0})) is None
    assert pipeline.ingest(RawObservation("r", 3_000, "x:2", {"a": "1e999", "b": 9.0})) is None
    assert pipeline.last_output is None and runner.latest_updates() == []
    pipeline.flush()
    assert store.rejection_counts(spec.id) == {"missing_field": 1, "nan": 1, "infinite": 1}
    out = pipeline.ingest(RawObservation("r", 4_000, "x:3", {"a": 101.0, "b": 99.0}))
    assert out is not None and [a.value for a in out.arms] == [101 * 10**8, 99 * 10**8]
