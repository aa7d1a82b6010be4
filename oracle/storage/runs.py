"""How a feed's observations and outputs are stored: in runs, one row a write per feed.

A write (one transaction: :meth:`oracle.storage.Store.write_batch`) stores the
observations of each feed it holds as ONE row of ``observation_runs``, and the outputs of
each output id as one row of ``output_runs``: the run's seq range and newest time as
columns (what the indexes, the reads and the retention pass select on), and its entries
as JSON arrays, one per field, in ``body`` (an output run's commitments, 32 bytes each,
concatenated in ``commitments``).

Why runs: inserting a row costs SQLite ~3 µs whatever it holds (binding, a B-tree insert
per index, each at the feed's own page); an observation and its output were two rows,
7.5 µs of a ~31 µs path around a ~10 µs model. A run costs about its bytes (~3.6 ns a
byte: ~1.2 µs an observation and its output in runs of 128, encoding ~0.55 µs of it). A
node polling 10,000 feeds writes one entry a feed a poll, so one row a feed either way.

The format is this module's alone: the store writes and reads runs only through
:func:`observation_runs`, :func:`output_runs`, :func:`read_observations` and
:func:`read_outputs` (and migration 0007, which moved the rows of the old per-entry
tables into runs, uses them too). A run is read back whole, so a run holds at most
:data:`RUN_MAX` entries (a write of more is cut into several).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import orjson

from oracle.storage.errors import StorageError

RUN_MAX = 128  # entries a run holds at most: a read decodes whole runs (~0.15 µs an entry)
_COMMITMENT = 32  # bytes of a model commitment (sha256)
_feed = operator.itemgetter(0)


class ObservationRow(NamedTuple):
    feed_id: str
    seq: int
    source: str
    observed_at_ms: int
    dedup_key: str | None
    record: str  # the record's compact JSON: oracle.storage.records


class OutputRow(NamedTuple):
    feed_id: str
    seq: int
    observed_at_ms: int
    value: int  # int128 fixed point: stored as decimal text (JSON numbers stop at 2**63)
    raw_value: float
    commitment: bytes
    publish: bool


class Run(NamedTuple):
    """One stored run (the columns of a row of either table, in this order; an
    observation run's ``commitments`` is empty)."""

    feed_id: str
    first_seq: int
    last_seq: int
    last_observed_at_ms: int
    size: int  # entries
    body: str
    commitments: bytes


class RunOverlap(StorageError):
    """A write would store an entry at or below a seq already stored for its feed (each
    seq of a feed is stored once, in order): the whole write was rolled back."""


def observation_runs(rows: Sequence[ObservationRow]) -> list[Run]:
    """``rows`` (in the order they were made: each feed's seqs increasing) as runs."""
    runs: list[Run] = []
    for feed_id, group in _groups(rows):
        _, seqs, sources, times, keys, records = zip(*group, strict=True)
        _increasing(feed_id, seqs)
        body = orjson.dumps(
            {
                "seq": seqs,
                "source": sources,
                "observed_at_ms": times,
                "dedup_key": keys,
                "record": records,
            }
        ).decode()
        runs.append(Run(feed_id, seqs[0], seqs[-1], times[-1], len(seqs), body, b""))
    return runs


def output_runs(rows: Sequence[OutputRow]) -> list[Run]:
    """``rows`` (each output id's seqs increasing) as runs."""
    runs: list[Run] = []
    for feed_id, group in _groups(rows):
        _, seqs, times, values, raws, commitments, publish = zip(*group, strict=True)
        _increasing(feed_id, seqs)
        for c in commitments:
            if len(c) != _COMMITMENT:
                raise ValueError(f"output {feed_id}: a commitment is {_COMMITMENT} bytes")
        body = orjson.dumps(
            {
                "seq": seqs,
                "observed_at_ms": times,
                "value": [*map(str, values)],
                "raw_value": raws,
                "publish": publish,
            }
        ).decode()
        runs.append(
            Run(feed_id, seqs[0], seqs[-1], times[-1], len(seqs), body, b"".join(commitments))
        )
    return runs


def read_observations(feed_id: str, body: str) -> list[ObservationRow]:
    """A stored observation run's entries, in seq order."""
    cols = _columns(feed_id, body, ("seq", "source", "observed_at_ms", "dedup_key", "record"))
    return [ObservationRow(feed_id, *entry) for entry in zip(*cols, strict=True)]


def read_outputs(feed_id: str, body: str, commitments: bytes) -> list[OutputRow]:
    """A stored output run's entries, in seq order."""
    seqs, times, values, raws, publish = _columns(
        feed_id, body, ("seq", "observed_at_ms", "value", "raw_value", "publish")
    )
    commitments = bytes(commitments)  # PostgreSQL's driver gives a memoryview
    if len(commitments) != _COMMITMENT * len(seqs):
        raise StorageError(f"output run of {feed_id}: {len(commitments)} bytes of commitments")
    try:
        return [
            OutputRow(feed_id, s, t, int(v), float(r), commitments[at : at + _COMMITMENT], bool(p))
            for at, s, t, v, r, p in zip(
                range(0, len(commitments), _COMMITMENT),
                seqs,
                times,
                values,
                raws,
                publish,
                strict=True,
            )
        ]
    except (TypeError, ValueError) as exc:
        raise StorageError(f"an output run of {feed_id} holds a malformed entry: {exc}") from exc


def _groups(rows: Sequence[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
    """Each feed's consecutive rows (a write's rows come feed by feed), at most
    :data:`RUN_MAX` a group. A feed whose rows are not consecutive in ``rows`` gets a
    run for each stretch (their seqs must still increase: :func:`_increasing`, and the
    store's check against what is stored)."""
    feeds = [*map(_feed, rows)]
    if not feeds:
        return
    stretches: list[tuple[str, Sequence[Any]]]
    if feeds.count(feeds[0]) == len(feeds):  # one feed's write (the common case): C calls
        stretches = [(feeds[0], rows)]
    else:
        stretches = [
            (feed_id, [row for _, row in members])
            for feed_id, members in itertools.groupby(zip(feeds, rows, strict=True), _feed)
        ]
    for feed_id, group in stretches:
        for at in range(0, len(group), RUN_MAX):
            yield feed_id, group[at : at + RUN_MAX]


def _increasing(feed_id: str, seqs: tuple[int, ...]) -> None:
    # consecutive seqs (the common case) compared in one C call, else pair by pair
    consecutive = seqs == tuple(range(seqs[0], seqs[0] + len(seqs)))
    if not consecutive and not all(map(operator.lt, seqs, seqs[1:])):
        raise RunOverlap(f"feed {feed_id}: the seqs of one write do not increase ({seqs[:8]}…)")


def _columns(feed_id: str, body: str, names: tuple[str, ...]) -> list[list[Any]]:
    """The named columns of a stored run, each as long as the others."""
    try:
        decoded = orjson.loads(body)
        cols = [decoded[name] for name in names]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise StorageError(f"a stored run of {feed_id} is unreadable: {exc}") from exc
    if any(type(c) is not list or len(c) != len(cols[0]) for c in cols):
        raise StorageError(f"a stored run of {feed_id} has columns of different lengths")
    return cols
