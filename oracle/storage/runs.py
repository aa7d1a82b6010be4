"""How a feed's observations and outputs are stored: in runs, one row a write per feed.

A write (one transaction: :meth:`oracle.storage.Store.write_batch`) stores the
observations of each feed it holds as ONE row of ``observation_runs``, and the outputs of
each output id as one row of ``output_runs``: the run's seq range, newest time and size
as columns (what the indexes, the reads and the retention pass select on), and its
entries in ``body``, a JSON array with one array an entry:

* an observation: ``[seq, source, observed_at_ms, dedup_key, record]``, the record (what
  the model saw: its fields' floats, in the spec's sorted order) a JSON object, written
  by orjson in the same C call as its run (oracle.storage.records says how floats are
  spelled and read back);
* an output: ``[seq, observed_at_ms, value, raw_value, publish]``, the int128 value as
  decimal text (JSON numbers stop at 2**63), its commitment the entry's 32 bytes of the
  run's ``commitments``.

Why runs: inserting a row costs SQLite ~3 µs whatever it holds (binding, a B-tree insert
per index, each at the feed's own page); an observation and its output were two rows,
7.5 µs of a ~31 µs path around a ~10 µs model. A run costs about its bytes (~3.6 ns a
byte). A node polling 10,000 feeds writes one entry a feed a poll, so one row a feed
either way: the encoding is a few C calls over the whole write (each entry's JSON by one
``orjson.dumps``), not Python work a run.

The format is this module's alone: the store writes and reads runs only through
:func:`observation_runs`, :func:`output_runs`, :func:`read_observations` and
:func:`read_outputs` (and migration 0007, which moved the rows of the old per-entry
tables into runs, uses them too). A run is read back whole, so a run holds at most
:data:`RUN_MAX` entries (a write of more is cut into several).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from oracle.storage.errors import StorageError

RUN_MAX = 128  # entries a run holds at most: a read decodes whole runs
_COMMITMENT = 32  # bytes of a model commitment (sha256)
_feed = operator.itemgetter(0)
_seq = operator.itemgetter(1)
_entry = operator.itemgetter(slice(1, None))  # an observation row but its feed id
_dumps = orjson.dumps


class ObservationRow(NamedTuple):
    feed_id: str
    seq: int
    source: str
    observed_at_ms: int
    dedup_key: str | None
    record: dict[str, Any]  # what the model saw (validated: finite plain floats)


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
    if not rows:
        return []
    times = [*map(operator.itemgetter(3), rows)]
    return _runs(rows, times, [*map(_entry, rows)], None)


def output_runs(rows: Sequence[OutputRow]) -> list[Run]:
    """``rows`` (each output id's seqs increasing) as runs."""
    if not rows:
        return []
    # the columns (a map of an itemgetter each: C calls, several times quicker than
    # zip(*rows) over a thousand rows)
    seqs, times, values, raws, commitments, publish = (
        [*map(operator.itemgetter(k), rows)] for k in range(1, 7)
    )
    if {*map(len, commitments)} != {_COMMITMENT}:
        raise ValueError(f"outputs of {rows[0][0]}…: a commitment is {_COMMITMENT} bytes")
    entries = [*zip(seqs, times, map(str, values), raws, publish, strict=True)]
    return _runs(rows, times, entries, commitments)


def read_observations(feed_id: str, body: str) -> list[ObservationRow]:
    """A stored observation run's entries, in seq order."""
    try:
        rows = [ObservationRow(feed_id, *entry) for entry in _entries(feed_id, body)]
    except TypeError as exc:  # an entry of another length
        raise StorageError(f"an observation run of {feed_id} holds a malformed entry") from exc
    if any(type(row.record) is not dict for row in rows):
        raise StorageError(f"an observation run of {feed_id} holds a record that is no object")
    return rows


def read_outputs(feed_id: str, body: str, commitments: bytes) -> list[OutputRow]:
    """A stored output run's entries, in seq order."""
    entries = _entries(feed_id, body)
    commitments = bytes(commitments)  # PostgreSQL's driver gives a memoryview
    if len(commitments) != _COMMITMENT * len(entries):
        raise StorageError(f"output run of {feed_id}: {len(commitments)} bytes of commitments")
    try:
        return [
            OutputRow(feed_id, s, t, int(v), float(r), commitments[at : at + _COMMITMENT], bool(p))
            for at, (s, t, v, r, p) in zip(
                range(0, len(commitments), _COMMITMENT), entries, strict=True
            )
        ]
    except (TypeError, ValueError) as exc:
        raise StorageError(f"an output run of {feed_id} holds a malformed entry: {exc}") from exc


def _runs(
    rows: Sequence[Any],
    times: Sequence[int],
    entries: list[tuple[Any, ...]],
    commitments: Sequence[bytes] | None,
) -> list[Run]:
    """The runs of ``rows``: each feed's consecutive rows (a write's rows come feed by
    feed) cut at :data:`RUN_MAX`, with their ``entries`` as the body and their
    ``commitments`` (outputs; none for observations). A feed whose rows are not
    consecutive gets a run for each stretch (its seqs must still increase: the store
    checks them against what it holds)."""
    feeds = [*map(_feed, rows)]
    seqs = [*map(_seq, rows)]
    n = len(rows)
    if len(set(feeds)) == n:  # every row its own feed (a poll of many feeds): C calls only
        # zip(entries): each entry in a 1-tuple, dumped as a one-entry array
        bodies = [b.decode() for b in map(_dumps, zip(entries))]
        blobs = commitments if commitments is not None else [b""] * n
        columns = zip(feeds, seqs, seqs, times, [1] * n, bodies, blobs, strict=True)
        # tuple.__new__(Run, columns): the NamedTuple without its Python-level __new__
        return [*map(tuple.__new__, itertools.repeat(Run, n), columns)]
    stretches = (
        [(0, n)]
        if feeds.count(feeds[0]) == n  # one feed's write (a flush)
        else [
            (members[0][0], members[-1][0] + 1)
            for members in (
                list(m) for _, m in itertools.groupby(enumerate(feeds), operator.itemgetter(1))
            )
        ]
    )
    runs: list[Run] = []
    for start, stop in stretches:
        for a in range(start, stop, RUN_MAX):
            b = min(a + RUN_MAX, stop)
            _increasing(feeds[a], seqs[a:b])
            body = _dumps(entries[a:b]).decode()
            blob = b"".join(commitments[a:b]) if commitments is not None else b""
            runs.append(Run(feeds[a], seqs[a], seqs[b - 1], times[b - 1], b - a, body, blob))
    return runs


def fold(runs: Sequence[Run]) -> list[tuple[int, Run]]:
    """Consecutive runs of one feed (in seq order) as few runs as hold them: each a
    stretch of them taken whole, in order, while its entries stay within :data:`RUN_MAX`.
    Returns (the index in ``runs`` of the stretch's first run, the run holding it) for
    each stretch; a run that fits with no neighbour comes back as it was.

    A run's body is a JSON array of its entries, so a stretch's body is the text between
    the brackets of each, joined by commas: the same entries, not decoded or re-encoded.
    Why: a node polling 10,000 feeds writes a one-entry run a feed a poll, and once each
    feed holds more than an index page's worth of runs every poll dirties a page of each
    table's ``(feed_id, last_seq)`` index per feed; folded, a feed holds a run per
    ``RUN_MAX`` entries."""
    for before, after in itertools.pairwise(runs):
        if after.feed_id != before.feed_id or after.first_seq <= before.last_seq:
            raise StorageError(
                f"runs of {runs[0].feed_id} to fold do not follow each other: "
                f"{before.feed_id} to seq {before.last_seq}, then {after.feed_id} "
                f"from seq {after.first_seq}"
            )
    folded: list[tuple[int, Run]] = []
    at = 0
    while at < len(runs):
        end, size = at + 1, runs[at].size
        while end < len(runs) and size + runs[end].size <= RUN_MAX:
            size += runs[end].size
            end += 1
        stretch = runs[at:end]
        first, last = stretch[0], stretch[-1]
        if len(stretch) == 1:
            folded.append((at, first))
        else:
            for run in stretch:
                if run.body[:1] != "[" or run.body[-1:] != "]" or len(run.body) < 3:
                    raise StorageError(f"a stored run of {run.feed_id} is not an array of entries")
            body = "[" + ",".join([run.body[1:-1] for run in stretch]) + "]"
            blob = b"".join([bytes(run.commitments) for run in stretch])
            merged = Run(
                first.feed_id,
                first.first_seq,
                last.last_seq,
                last.last_observed_at_ms,
                size,
                body,
                blob,
            )
            folded.append((at, merged))
        at = end
    return folded


def _increasing(feed_id: str, seqs: list[int]) -> None:
    # consecutive seqs (the common case) compared in one C call, else pair by pair
    consecutive = seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    if not consecutive and not all(map(operator.lt, seqs, seqs[1:])):
        raise RunOverlap(f"feed {feed_id}: the seqs of one write do not increase ({seqs[:8]}…)")


def _entries(feed_id: str, body: str) -> list[Any]:
    """The entries of a stored run: a JSON array of arrays."""
    try:
        entries = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise StorageError(f"a stored run of {feed_id} is unreadable: {exc}") from exc
    if type(entries) is not list or any(type(e) is not list for e in entries):
        raise StorageError(f"a stored run of {feed_id} is not an array of entries")
    return entries
