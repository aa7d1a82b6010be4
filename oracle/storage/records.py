"""An observation's record as JSON: what the model saw, read back when a restart re-runs
the observations after a checkpoint (the model must get the same floats bit for bit) and
served by the history API.

A record is stored as a JSON object inside its run's body (oracle.storage.runs), written
by orjson with the rest of the run: a float's shortest round-trip spelling is most of the
cost (``float.__repr__``: 3-9 µs for nine fields; orjson ~0.7 µs, less again in one call
for a whole run). ``json.dumps`` and orjson spell every finite float so that parsing gives
it back exactly; they differ only in spelling some of them (orjson writes ``0.00001`` and
``1e-7`` where Python writes ``1e-05`` and ``1e-07``), and records written either way read
back the same. The keys are written in the record's own order: the pipeline builds a
record from the spec's fields, which are sorted, so its JSON is canonical.

:func:`encode_record` and :func:`decode_record` are a record's text on its own: the rows
of the per-entry tables before runs held it so (migration 0007 reads them, its downgrade
writes them).
"""

from __future__ import annotations

from typing import Any

import orjson


def encode_record(record: dict[str, float]) -> str:
    """Compact JSON of a validated record (finite floats: orjson would write NaN as
    null, so a record must be validated first)."""
    return orjson.dumps(record).decode()


def decode_record(text: str) -> dict[str, Any]:
    """A stored record, as written by :func:`encode_record` or by earlier versions'
    ``json.dumps(sort_keys=True)``: the same floats either way."""
    record = orjson.loads(text)
    if not isinstance(record, dict):
        raise ValueError(f"a stored record is a JSON object, not {type(record).__name__}")
    return record
