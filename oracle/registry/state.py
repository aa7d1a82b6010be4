"""The registry as a node knows it, rebuilt from its events in canonical order, and the
points every member derives from them alike.

Agreement: a version approved in block B (timestamp T) learns from the first observation
after that block: the first replay row observed after T, chain events of blocks after B,
HTTP readings after T (:class:`StartPoint`). A member that sees the approval later starts
from the same point, so replay and chain feeds come out bit-identical on every member. A
new version replaces the old one at :func:`switch_at_ms`: the first round boundary at
least ``delay`` after T, the same instant for every member (rounds are wall-clock slots,
oracle.reporting.rounds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from oracle.storage.registry import EventRow


@dataclass(frozen=True)
class StartPoint:
    """Where a version starts learning: after block ``block`` (timestamp ``time_ms``)."""

    block: int
    time_ms: int


@dataclass
class VersionInfo:
    version: int
    spec_hash: bytes
    spec_uri: str
    approved: StartPoint | None = None


@dataclass
class ModelInfo:
    model_id: int
    author: str
    feed_ids: tuple[bytes, ...]
    versions: dict[int, VersionInfo] = field(default_factory=dict)
    approved_version: int = 0
    deactivated: StartPoint | None = None


def apply(models: dict[int, ModelInfo], e: EventRow) -> None:
    """Apply one event (in canonical order; oracle.registry.events stores approvals with
    what was approved: spec hash, URI, author, declared feeds). Events about an unknown
    model cannot come from a working registry; they are ignored, never a crash."""
    if e.kind == "VersionApproved":
        model = models.get(e.model_id)
        if model is None:
            feeds = tuple(bytes.fromhex(f[2:]) for f in json.loads(e.feed_ids or "[]"))
            model = models[e.model_id] = ModelInfo(e.model_id, e.actor or "", feeds)
        if e.version > model.approved_version:
            model.versions[e.version] = VersionInfo(
                e.version,
                e.spec_hash or b"",
                e.spec_uri or "",
                approved=StartPoint(e.block_number, e.block_time_ms),
            )
            model.approved_version = e.version
        return
    model_found = models.get(e.model_id)
    if e.kind == "ModelDeactivated" and model_found is not None and model_found.deactivated is None:
        model_found.deactivated = StartPoint(e.block_number, e.block_time_ms)


def switch_at_ms(approved_ms: int, period_ms: int, delay_ms: int) -> int:
    """The round boundary at which a new version replaces the old one."""
    earliest = approved_ms + delay_ms
    return -(-earliest // period_ms) * period_ms


def storage_id(model_id: int, version: int) -> str:
    """The key a registered version's rows are stored under (oracle.node.pipeline)."""
    return f"m{model_id}v{version}"
