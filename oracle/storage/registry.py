"""What a node followed of a ModelRegistry (oracle.registry.events) and what it made of each
approved version (oracle.node.registered)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, insert, select, update

from oracle.storage.schema import RegistryEvent, RegistryScan, RegistryVersion

_SCAN = cast(Table, RegistryScan.__table__)
_EVENTS = cast(Table, RegistryEvent.__table__)
_VERSIONS = cast(Table, RegistryVersion.__table__)


@dataclass(frozen=True)
class EventRow:
    block_number: int
    block_hash: str
    log_index: int
    block_time_ms: int
    kind: str  # VersionApproved | ModelDeactivated (oracle.registry.events follows no other)
    model_id: int
    version: int  # 0 for ModelDeactivated
    spec_hash: bytes | None = None
    spec_uri: str | None = None
    feed_ids: str | None = None  # JSON list of 0x-hex bytes32
    actor: str | None = None


@dataclass(frozen=True)
class VersionRow:
    model_id: int
    version: int
    status: str
    reason: str | None
    detail: str | None
    spec: bytes | None
    updated_ms: int


class RegistryStore:
    def __init__(self, engine: Engine, registry: str) -> None:
        self.engine = engine
        self.registry = registry

    def scan_tip(self) -> tuple[int, str] | None:
        stmt = select(_SCAN.c.block_number, _SCAN.c.block_hash).where(
            _SCAN.c.contract == self.registry
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def record(self, events: Sequence[EventRow], tip: tuple[int, str]) -> None:
        """Store a scanned range's events (those not stored yet) and the new tip in one
        transaction: a crash between the two would skip or repeat events."""
        with self.engine.begin() as conn:
            known = set()
            if events:  # a re-read range (after a deep reorg) holds events already stored
                stmt = select(_EVENTS.c.block_hash, _EVENTS.c.log_index).where(
                    (_EVENTS.c.contract == self.registry)
                    & (_EVENTS.c.block_number >= min(e.block_number for e in events))
                )
                known = {(str(h), int(i)) for h, i in conn.execute(stmt)}
            for e in events:
                if (e.block_hash, e.log_index) in known:
                    continue
                conn.execute(insert(_EVENTS).values(contract=self.registry, **e.__dict__))
            done = conn.execute(
                update(_SCAN)
                .where(_SCAN.c.contract == self.registry)
                .values(block_number=tip[0], block_hash=tip[1])
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(_SCAN).values(
                        contract=self.registry, block_number=tip[0], block_hash=tip[1]
                    )
                )

    def events(self) -> list[EventRow]:
        cols = [c for c in _EVENTS.c if c.name not in ("id", "contract")]
        stmt = (
            select(*cols)
            .where(_EVENTS.c.contract == self.registry)
            .order_by(_EVENTS.c.block_number, _EVENTS.c.log_index)
        )
        with self.engine.connect() as conn:
            return [EventRow(**row._asdict()) for row in conn.execute(stmt)]

    def versions(self) -> dict[tuple[int, int], VersionRow]:
        cols = [c for c in _VERSIONS.c if c.name not in ("id", "contract")]
        stmt = select(*cols).where(_VERSIONS.c.contract == self.registry)
        with self.engine.connect() as conn:
            rows = [VersionRow(**row._asdict()) for row in conn.execute(stmt)]
        return {(r.model_id, r.version): r for r in rows}

    def set_version(
        self,
        model_id: int,
        version: int,
        status: str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        spec: bytes | None = None,
    ) -> None:
        """Record a version's status (the verified spec is kept once given)."""
        values: dict[str, object] = {
            "status": status,
            "reason": reason,
            "detail": detail,
            "updated_ms": time.time_ns() // 1_000_000,
        }
        if spec is not None:
            values["spec"] = spec
        mine = (
            (_VERSIONS.c.contract == self.registry)
            & (_VERSIONS.c.model_id == model_id)
            & (_VERSIONS.c.version == version)
        )
        with self.engine.begin() as conn:
            if conn.execute(update(_VERSIONS).where(mine).values(**values)).rowcount == 0:
                conn.execute(
                    insert(_VERSIONS).values(
                        contract=self.registry, model_id=model_id, version=version, **values
                    )
                )
