"""History endpoints with paging, for the dashboard (``/ui/``) and any other client.

- ``GET /v1/feeds/{id}/history?limit=N&before=SEQ``: the feed's outputs and observations,
  newest first, ``limit`` of each (1..``MAX_PAGE``; of a policy feed, ``limit`` outputs per
  arm, each naming its arm's ``feed``); ``next_before`` pages further back.
  Also the model's recent per-step absolute errors, as the model itself computed them for
  its rolling MAE (oldest first; the window is ``metrics.mae_window``). A node with a
  retention window (``[database] retain_s``, oracle.node.retention) has deleted the rows
  older than it: a page reaching back there returns the rows left (fewer, or none, and
  ``next_before`` null once nothing older is left), never an error.
- ``GET /v1/reports?limit=N&feed=ID``: the newest landed reports the node has seen on
  chain (every member's, not only its own), newest first, from a bounded in-memory window.
- ``GET /v1/transmissions?limit=N&before=ID``: this node's own transactions: hash, status,
  block, gas used, gas price and L1 fee (wei as decimal strings), newest first.

Query parameters are validated: a bad one is a 400 JSON error naming it; pages are bounded,
so no request reads more than ``MAX_PAGE`` rows of a table.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from oracle.api.stream import ReportStream
from oracle.reporting.landed import to_json
from oracle.storage import ObservationRow, OutputRow

MAX_PAGE = 500
DEFAULT_PAGE = 100
_MAX_INT = 2**63 - 1


class HistoryStore(Protocol):
    """The reads the history endpoints make of the node's database."""

    def outputs_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[OutputRow]: ...

    def observations_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[ObservationRow]: ...

    def transmissions_before(
        self, *, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]: ...


def int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    """Query parameter ``name`` as an integer in [low, high]; ``default`` when absent."""
    values = request.query.getall(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise web.HTTPBadRequest(reason=f"pass {name} at most once")
    text = values[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise web.HTTPBadRequest(
            reason=f"{name} must be a whole number from {low} to {high}, not {text[:40]!r}"
        )
    value = int(text)
    if not low <= value <= high:
        raise web.HTTPBadRequest(reason=f"{name} must be from {low} to {high}, not {value}")
    return value


def limit_param(request: web.Request) -> int:
    value: int = int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    return value


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + bytes(b).hex()


def output_json(row: OutputRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "observed_at_ms": row.observed_at_ms,
        "value": str(row.value),  # int128: beyond JavaScript's safe integers
        "raw_value": row.raw_value,
        "model_commitment": _hex(row.commitment),
        "publish": row.publish,
    }


def observation_json(row: ObservationRow, target: str | None) -> dict[str, Any]:
    record = row.record
    value = record.get(target) if target is not None else None
    return {
        "seq": row.seq,
        "source": row.source,
        "observed_at_ms": row.observed_at_ms,
        "target": value if isinstance(value, int | float) else None,
        "record": record,
    }


def feed_history(
    store: HistoryStore,
    feed_id: str,
    output_ids: list[str],
    target: str | None,
    errors: list[float],
    request: web.Request,
) -> dict[str, Any]:
    """``output_ids``: the on-chain feeds the spec publishes, under which its outputs are
    stored (the feed itself, or one per arm of a policy: each output then names its
    ``feed``)."""
    limit = limit_param(request)
    before = int_param(request, "before", None, 0, _MAX_INT)
    outputs: list[dict[str, Any]] = []
    full: list[int] = []
    for output_id in output_ids:
        rows = store.outputs_before(output_id, before_seq=before, limit=limit)
        outputs += [{"feed": output_id, **output_json(r)} for r in rows]
        if len(rows) == limit:
            full.append(rows[-1].seq)
    observations = store.observations_before(feed_id, before_seq=before, limit=limit)
    if len(observations) == limit:
        full.append(observations[-1].seq)
    return {
        "feed": feed_id,
        "target": target,
        "outputs": outputs,
        "observations": [observation_json(r, target) for r in observations],
        "model_errors": errors,
        # every list is complete from this seq up: the next page starts below it (a list
        # that reached further back shows those rows again there; none is ever skipped)
        "next_before": max(full) if full else None,
    }


def transmissions(store: HistoryStore, request: web.Request) -> dict[str, Any]:
    limit = limit_param(request)
    before = int_param(request, "before", None, 1, _MAX_INT)
    rows = store.transmissions_before(before_id=before, limit=limit)
    out = []
    for r in rows:
        out.append(
            {
                "id": r["id"],
                "chain_id": r["chain_id"],
                "report_hash": _hex(r["report_hash"]),
                "sender": r["sender"],
                "tx_hash": _hex(r["tx_hash"]),
                "status": r["status"],
                "created_at_ms": r["created_at_ms"],
                "included_block": r["included_block"],
                "receipt_status": r["receipt_status"],
                "gas_used": r["gas_used"],
                "effective_gas_price_wei": r["effective_gas_price_wei"],
                "l1_fee_wei": r["l1_fee_wei"],
                "confirmed_at_ms": r["confirmed_at_ms"],
                "error": None if r["error"] is None else str(r["error"])[:300],
            }
        )
    return {
        "transmissions": out,
        "next_before": rows[-1]["id"] if len(rows) == limit else None,
    }


def reports(stream: ReportStream, request: web.Request) -> dict[str, Any]:
    limit = limit_param(request)
    feeds = stream.feed_filter(request)
    return {
        "reports": [to_json(landed) for landed in stream.recent(feeds, limit)],
        "window": stream.recent_size,
    }
