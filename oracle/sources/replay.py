"""Replay of a dataset as a stream: river's bundled datasets (SP500Stocks, WaterFlow,
AirlinePassengers, TrumpApproval; nothing is downloaded) or a CSV file.

Each row becomes a raw record: the numeric columns by name, plus ``y`` (river datasets)
for the target; a ``[sources.transform]`` replaces columns by values derived from them
(oracle.sources.rebase: returns in percent as a price index), once, when the rows load.
Timestamps come from ``time_field`` (unix seconds) when the spec names one, else from a
synthetic clock ``start_ms + i * step_ms`` so replays are exact.
Position ``i`` (over all passes) is the row's dedup key: a restarted node resumes after
the last row it stored.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from river import datasets

from oracle.config.feeds import ReplaySourceSpec
from oracle.errors import MiraError
from oracle.sources.rebase import returns_to_index

_RIVER: dict[str, Any] = {
    "SP500Stocks": datasets.SP500Stocks,
    "WaterFlow": datasets.WaterFlow,
    "AirlinePassengers": datasets.AirlinePassengers,
    "TrumpApproval": datasets.TrumpApproval,
}


class SourceError(MiraError):
    """A source is misconfigured or unusable."""


@dataclass(frozen=True, slots=True)
class RawObservation:
    source: str
    observed_at_ms: int
    dedup_key: str | None
    raw: dict[str, Any]


def load_rows(spec: ReplaySourceSpec) -> list[dict[str, Any]]:
    """Every row of the dataset, in order (read once, kept in memory), transformed as the
    spec says."""
    rows = _read_rows(spec)
    if spec.transform is not None:
        returns_to_index(rows, spec.transform, f"source {spec.name} ({spec.dataset})")
    return rows


def _read_rows(spec: ReplaySourceSpec) -> list[dict[str, Any]]:
    if spec.dataset.startswith("river:"):
        name = spec.dataset.removeprefix("river:")
        rows = []
        for x, y in _RIVER[name]():
            row = dict(x)
            row["y"] = y
            rows.append(row)
        return rows
    assert spec.csv_path is not None
    try:
        with spec.csv_path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {spec.csv_path}: {exc}") from exc


class ReplaySource:
    def __init__(self, spec: ReplaySourceSpec) -> None:
        self.spec = spec
        self.rows = load_rows(spec)
        if not self.rows:
            raise SourceError(f"source {spec.name}: {spec.dataset} has no rows")

    @property
    def total(self) -> int:
        return len(self.rows) * self.spec.passes

    def columns(self) -> set[str]:
        return set(self.rows[0])

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[RawObservation]:
        """Rows ``start``, ``start + 1``, ... (positions run across passes)."""
        end = self.total if limit is None else min(self.total, start + limit)
        n = len(self.rows)
        spec = self.spec
        for i in range(start, end):
            row = self.rows[i % n]
            yield RawObservation(spec.name, self._time_ms(i, row), f"row:{i}", row)

    def _time_ms(self, i: int, row: dict[str, Any]) -> int:
        spec = self.spec
        if spec.time_field is None or spec.passes > 1:
            return spec.start_ms + i * spec.step_ms
        value = row.get(spec.time_field)
        if isinstance(value, dt.datetime):
            return int(value.timestamp() * 1000)
        try:
            return int(float(value) * 1000)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return -1  # rejected downstream as out of order / bad time
