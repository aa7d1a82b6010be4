"""The manager's durable state: transmissions, their signed attempts, the next nonce.

Every step is committed before the manager acts on it: a transmission is stored before
anything is sent, a signed transaction before it is broadcast, and a nonce is taken in
the same database transaction that stores the first signed transaction using it. So a
process killed at any instant resumes from the database without signing a second
transaction for the same call and without skipping a nonce.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from oracle.storage.schema import Transmission as TransmissionModel
from oracle.storage.schema import TxAttempt, TxNonce
from oracle.transmission.errors import IdempotencyConflict, QueueFull, TransmissionError
from oracle.transmission.states import (
    TERMINAL,
    Attempt,
    AttemptKind,
    AttemptState,
    State,
    Transmission,
)

_TX = cast(Table, TransmissionModel.__table__)
_ATT = cast(Table, TxAttempt.__table__)
_NONCE = cast(Table, TxNonce.__table__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction signed locally, not yet stored."""

    raw: bytes
    tx_hash: bytes
    kind: AttemptKind
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int
    l1_fee: int | None


class TransmissionStore:
    """Storage for one sender on one chain."""

    def __init__(self, engine: Engine, chain_id: int, sender: str) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.sender = sender

    # -- transmissions --------------------------------------------------------------------

    def enqueue(
        self,
        *,
        key: bytes,
        to: str,
        data: bytes,
        value: int,
        gas_limit: int | None,
        max_fee_cap: int | None,
        max_unfinished: int,
    ) -> tuple[int, bool]:
        """Store a call; return ``(id, created)``. The same key and call give the same id."""
        existing = self._by_key(key)
        if existing is not None:
            return self._same_call(existing, to, data, value), False
        ts = now_ms()
        try:
            with self.engine.begin() as conn:
                unfinished = conn.execute(
                    select(func.count())
                    .select_from(_TX)
                    .where(_TX.c.chain_id == self.chain_id)
                    .where(_TX.c.sender == self.sender)
                    .where(_TX.c.status.not_in([s.value for s in TERMINAL]))
                ).scalar_one()
                if unfinished >= max_unfinished:
                    raise QueueFull(int(unfinished), max_unfinished)
                result = conn.execute(
                    insert(_TX).values(
                        chain_id=self.chain_id,
                        report_hash=key,
                        sender=self.sender,
                        to_address=to,
                        data=data,
                        value_wei=str(value),
                        gas_limit=gas_limit,
                        max_fee_cap_wei=None if max_fee_cap is None else str(max_fee_cap),
                        status=State.QUEUED.value,
                        cancelling=False,
                        created_at_ms=ts,
                        updated_at_ms=ts,
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                return int(pk[0]), True
        except IntegrityError:
            # another caller stored the same key between our read and our insert
            raced = self._by_key(key)
            if raced is None:
                raise
            return self._same_call(raced, to, data, value), False

    def _same_call(self, row: Transmission, to: str, data: bytes, value: int) -> int:
        if row.to.lower() != to.lower() or row.data != data or row.value != value:
            raise IdempotencyConflict(self.chain_id, row.key, row.id)
        return row.id

    def _by_key(self, key: bytes) -> Transmission | None:
        stmt = select(_TX).where(_TX.c.chain_id == self.chain_id).where(_TX.c.report_hash == key)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _transmission(row._mapping)

    def get(self, tid: int) -> Transmission | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_TX).where(_TX.c.id == tid)).first()
        return None if row is None else _transmission(row._mapping)

    def in_states(self, states: Iterable[State], *, limit: int | None = None) -> list[Transmission]:
        """This sender's transmissions in ``states``: by nonce, then unassigned ones by id."""
        stmt = (
            select(_TX)
            .where(_TX.c.chain_id == self.chain_id)
            .where(_TX.c.sender == self.sender)
            .where(_TX.c.status.in_([s.value for s in states]))
            .order_by(_TX.c.tx_nonce.is_(None), _TX.c.tx_nonce, _TX.c.id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [_transmission(r._mapping) for r in conn.execute(stmt)]

    def counts(self) -> dict[State, int]:
        stmt = (
            select(_TX.c.status, func.count())
            .where(_TX.c.chain_id == self.chain_id)
            .where(_TX.c.sender == self.sender)
            .group_by(_TX.c.status)
        )
        with self.engine.connect() as conn:
            return {State(status): int(n) for status, n in conn.execute(stmt)}

    def transition(self, tid: int, expected: State, to: State, **fields: Any) -> bool:
        """Move ``tid`` from ``expected`` to ``to`` (compare-and-set); False if it moved."""
        values = {"status": to.value, "updated_at_ms": now_ms(), **_columns(fields)}
        stmt = (
            update(_TX)
            .where(_TX.c.id == tid)
            .where(_TX.c.status == expected.value)
            .values(**values)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def record(self, tid: int, expected: State, **fields: Any) -> bool:
        """Update fields of ``tid`` while it is in ``expected``."""
        return self.transition(tid, expected, expected, **fields)

    def release_nonce(self, tid: int, expected: State) -> bool:
        """The nonce went to a transaction from outside: forget it, re-queue the call."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(_TX)
                .where(_TX.c.id == tid)
                .where(_TX.c.status == expected.value)
                .values(
                    status=State.QUEUED.value,
                    tx_nonce=None,
                    tx_hash=None,
                    last_sent_block=None,
                    included_block=None,
                    included_block_hash=None,
                    updated_at_ms=now_ms(),
                )
            ).rowcount
            if moved != 1:
                return False
            conn.execute(
                update(_ATT)
                .where(_ATT.c.transmission_id == tid)
                .values(state=AttemptState.REPLACED.value, updated_at_ms=now_ms())
            )
            return True

    # -- attempts -------------------------------------------------------------------------

    def take_nonce_and_store(self, tid: int, nonce: int, signed: SignedTx) -> Attempt:
        """Give ``tid`` nonce ``nonce`` and store its first signed transaction, atomically.

        ``nonce`` must be the stored next nonce (the caller signed with it); the check and
        the increment happen under a row lock, so a nonce is never handed out twice.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_NONCE.c.next_nonce)
                .where(_NONCE.c.chain_id == self.chain_id)
                .where(_NONCE.c.address == self.sender)
                .with_for_update()
            ).first()
            if row is None:
                raise TransmissionError(
                    f"no nonce stored for {self.sender} on chain {self.chain_id}: "
                    "the nonce syncer must run before the broadcaster"
                )
            if int(row[0]) != nonce:
                raise TransmissionError(
                    f"nonce {nonce} is no longer next for {self.sender} (stored: {row[0]})"
                )
            moved = conn.execute(
                update(_TX)
                .where(_TX.c.id == tid)
                .where(_TX.c.status == State.SIMULATED.value)
                .where(_TX.c.tx_nonce.is_(None))
                .values(tx_nonce=nonce, updated_at_ms=now_ms())
            ).rowcount
            if moved != 1:
                raise TransmissionError(f"transmission {tid} is no longer waiting for a nonce")
            attempt_id = self._insert_attempt(conn, tid, nonce, signed)
            conn.execute(
                update(_NONCE)
                .where(_NONCE.c.chain_id == self.chain_id)
                .where(_NONCE.c.address == self.sender)
                .values(next_nonce=nonce + 1, updated_at_ms=now_ms())
            )
        return _attempt_of(attempt_id, tid, nonce, signed)

    def add_attempt(self, tid: int, nonce: int, signed: SignedTx) -> Attempt:
        """Store a replacement (bump or cancel) for ``tid``'s nonce before it is broadcast."""
        with self.engine.begin() as conn:
            attempt_id = self._insert_attempt(conn, tid, nonce, signed)
        return _attempt_of(attempt_id, tid, nonce, signed)

    def _insert_attempt(self, conn: Any, tid: int, nonce: int, signed: SignedTx) -> int:
        ts = now_ms()
        result = conn.execute(
            insert(_ATT).values(
                transmission_id=tid,
                nonce=nonce,
                tx_hash=signed.tx_hash,
                raw_tx=signed.raw,
                kind=signed.kind.value,
                state=AttemptState.SIGNED.value,
                max_fee_per_gas_wei=str(signed.max_fee_per_gas),
                max_priority_fee_per_gas_wei=str(signed.max_priority_fee_per_gas),
                gas_limit=signed.gas_limit,
                l1_fee_wei=None if signed.l1_fee is None else str(signed.l1_fee),
                created_at_ms=ts,
                updated_at_ms=ts,
            )
        )
        return int(result.inserted_primary_key[0])

    def attempts(self, tid: int) -> list[Attempt]:
        """``tid``'s attempts, oldest first (the last one carries the highest fees)."""
        stmt = select(_ATT).where(_ATT.c.transmission_id == tid).order_by(_ATT.c.id)
        with self.engine.connect() as conn:
            return [_attempt(r._mapping) for r in conn.execute(stmt)]

    def set_attempt_state(
        self, attempt_id: int, state: AttemptState, *, broadcast_block: int | None = None
    ) -> None:
        values: dict[str, Any] = {"state": state.value, "updated_at_ms": now_ms()}
        if broadcast_block is not None:
            values["broadcast_block"] = broadcast_block
        with self.engine.begin() as conn:
            conn.execute(update(_ATT).where(_ATT.c.id == attempt_id).values(**values))

    # -- nonces ---------------------------------------------------------------------------

    def next_nonce(self) -> int | None:
        stmt = (
            select(_NONCE.c.next_nonce)
            .where(_NONCE.c.chain_id == self.chain_id)
            .where(_NONCE.c.address == self.sender)
        )
        with self.engine.connect() as conn:
            value = conn.execute(stmt).scalar()
        return None if value is None else int(value)

    def set_next_nonce(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"a nonce cannot be negative, got {value}")
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_NONCE)
                .where(_NONCE.c.chain_id == self.chain_id)
                .where(_NONCE.c.address == self.sender)
                .values(next_nonce=value, updated_at_ms=now_ms())
            ).rowcount
            if changed == 0:
                conn.execute(
                    insert(_NONCE).values(
                        chain_id=self.chain_id,
                        address=self.sender,
                        next_nonce=value,
                        updated_at_ms=now_ms(),
                    )
                )

    def highest_held_nonce(self) -> int | None:
        """The highest nonce held by an unfinished transmission (it must stay reserved)."""
        stmt = (
            select(func.max(_TX.c.tx_nonce))
            .where(_TX.c.chain_id == self.chain_id)
            .where(_TX.c.sender == self.sender)
            .where(_TX.c.status.not_in([s.value for s in TERMINAL]))
        )
        with self.engine.connect() as conn:
            value = conn.execute(stmt).scalar()
        return None if value is None else int(value)


_WEI_FIELDS = {
    "effective_gas_price": "effective_gas_price_wei",
    "l1_fee": "l1_fee_wei",
}
_RENAMED = {"nonce": "tx_nonce"}


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _WEI_FIELDS:
            out[_WEI_FIELDS[name]] = None if value is None else str(value)
        else:
            out[_RENAMED.get(name, name)] = value
    return out


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


def _bytes_or_none(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def _transmission(m: Any) -> Transmission:
    return Transmission(
        id=int(m["id"]),
        chain_id=int(m["chain_id"]),
        key=bytes(m["report_hash"]),
        sender=m["sender"],
        to=m["to_address"] or "",
        data=bytes(m["data"] or b""),
        value=int(m["value_wei"] or 0),
        gas_limit=m["gas_limit"],
        max_fee_cap=_int_or_none(m["max_fee_cap_wei"]),
        state=State(m["status"]),
        nonce=m["tx_nonce"],
        tx_hash=_bytes_or_none(m["tx_hash"]),
        error=m["error"],
        cancelling=bool(m["cancelling"]),
        last_sent_block=m["last_sent_block"],
        included_block=m["included_block"],
        included_block_hash=_bytes_or_none(m["included_block_hash"]),
        receipt_status=m["receipt_status"],
        gas_used=m["gas_used"],
        effective_gas_price=_int_or_none(m["effective_gas_price_wei"]),
        l1_fee=_int_or_none(m["l1_fee_wei"]),
        created_at_ms=int(m["created_at_ms"]),
        updated_at_ms=int(m["updated_at_ms"]),
        confirmed_at_ms=m["confirmed_at_ms"],
    )


def _attempt(m: Any) -> Attempt:
    return Attempt(
        id=int(m["id"]),
        transmission_id=int(m["transmission_id"]),
        nonce=int(m["nonce"]),
        tx_hash=bytes(m["tx_hash"]),
        raw_tx=bytes(m["raw_tx"]),
        kind=AttemptKind(m["kind"]),
        state=AttemptState(m["state"]),
        max_fee_per_gas=int(m["max_fee_per_gas_wei"]),
        max_priority_fee_per_gas=int(m["max_priority_fee_per_gas_wei"]),
        gas_limit=int(m["gas_limit"]),
        l1_fee=_int_or_none(m["l1_fee_wei"]),
        broadcast_block=m["broadcast_block"],
    )


def _attempt_of(attempt_id: int, tid: int, nonce: int, signed: SignedTx) -> Attempt:
    return Attempt(
        id=attempt_id,
        transmission_id=tid,
        nonce=nonce,
        tx_hash=signed.tx_hash,
        raw_tx=signed.raw,
        kind=signed.kind,
        state=AttemptState.SIGNED,
        max_fee_per_gas=signed.max_fee_per_gas,
        max_priority_fee_per_gas=signed.max_priority_fee_per_gas,
        gas_limit=signed.gas_limit,
        l1_fee=signed.l1_fee,
        broadcast_block=None,
    )
