"""Durable state of the reporting protocol, in the ``rounds`` and ``reports`` tables.

What must survive a SIGKILL, and why:

* the report a node signed for (epoch, round): a follower signs at most one report per
  round, also across restarts, so a leader cannot collect shares for two different
  reports of one round from it;
* every aggregated report and its signature, until it is on-chain: a restarted node
  resumes its transmission duty (the transaction manager's ``transmissions`` row, keyed
  by the report hash, makes a resumed submission the same transaction, never a second).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from eth_utils.crypto import keccak
from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from oracle.storage.schema import Report as ReportTable
from oracle.storage.schema import Round as RoundTable

_ROUNDS = cast(Table, RoundTable.__table__)
_REPORTS = cast(Table, ReportTable.__table__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def report_hash(report: bytes) -> bytes:
    return keccak(report)


@dataclass(frozen=True)
class StoredReport:
    epoch: int
    round: int
    report_hash: bytes
    payload: bytes
    signature: bytes | None
    created_at_ms: int


class RoundStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set_round_state(self, epoch: int, round_: int, leader: str, state: str) -> None:
        now = _now_ms()
        finished = now if state in ("signed", "aggregated", "failed", "idle") else None
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_ROUNDS)
                .where(_ROUNDS.c.epoch == epoch, _ROUNDS.c.round == round_)
                .values(state=state[:32], finished_at_ms=finished)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(_ROUNDS).values(
                        epoch=epoch,
                        round=round_,
                        leader=leader[:128],
                        state=state[:32],
                        started_at_ms=now,
                        finished_at_ms=finished,
                    )
                )

    def round_state(self, epoch: int, round_: int) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_ROUNDS.c.state).where(_ROUNDS.c.epoch == epoch, _ROUNDS.c.round == round_)
            ).first()
        return None if row is None else str(row[0])

    def commit_to_report(self, epoch: int, round_: int, report: bytes) -> bool:
        """Record that this node signs ``report`` for (epoch, round); False if it already
        committed to a *different* report for that round (then it must not sign)."""
        digest = report_hash(report)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(_REPORTS.c.report_hash).where(
                    _REPORTS.c.epoch == epoch, _REPORTS.c.round == round_
                )
            ).all()
            if rows:
                return all(bytes(r[0]) == digest for r in rows)
            conn.execute(
                insert(_REPORTS).values(
                    epoch=epoch,
                    round=round_,
                    report_hash=digest,
                    payload=report,
                    signature=None,
                    created_at_ms=_now_ms(),
                )
            )
        return True

    def save_signed(self, epoch: int, round_: int, report: bytes, signature: bytes) -> None:
        digest = report_hash(report)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_REPORTS).where(_REPORTS.c.report_hash == digest).values(signature=signature)
            ).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(_REPORTS).values(
                                epoch=epoch,
                                round=round_,
                                report_hash=digest,
                                payload=report,
                                signature=signature,
                                created_at_ms=_now_ms(),
                            )
                        )
                except IntegrityError:
                    pass  # a concurrent writer stored the same report

    def signed_reports_since(self, epoch: int, since_ms: int) -> list[StoredReport]:
        stmt = (
            select(_REPORTS)
            .where(
                _REPORTS.c.epoch == epoch,
                _REPORTS.c.signature.is_not(None),
                _REPORTS.c.created_at_ms >= since_ms,
            )
            .order_by(_REPORTS.c.round)
        )
        with self.engine.connect() as conn:
            return [
                StoredReport(
                    r.epoch,
                    r.round,
                    bytes(r.report_hash),
                    bytes(r.payload),
                    bytes(r.signature),
                    r.created_at_ms,
                )
                for r in conn.execute(stmt)
            ]
