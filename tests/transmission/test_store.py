"""The durable queue on SQLite and PostgreSQL: idempotent enqueue, bounded backlog,
atomic nonce + signed-transaction storage, compare-and-set state moves, and refusal of
bad input with nothing stored."""

from __future__ import annotations

import pytest
from eth_account import Account
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.transmission import (
    IdempotencyConflict,
    InvalidTransmission,
    QueueFull,
    State,
    TransmissionError,
    TransmissionManager,
    TxManagerConfig,
    UnknownTransmission,
)
from oracle.transmission.states import AttemptKind, AttemptState
from oracle.transmission.store import SignedTx, TransmissionStore

SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TARGET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _signed(tag: int) -> SignedTx:
    return SignedTx(bytes([tag]) * 100, bytes([tag]) * 32, AttemptKind.CALL, 10, 1, 50_000, None)


def _enqueue(store: TransmissionStore, key: bytes, data: bytes = b"\x01", limit: int = 10) -> int:
    tid, _ = store.enqueue(
        key=key,
        to=TARGET,
        data=data,
        value=0,
        gas_limit=None,
        max_fee_cap=None,
        max_unfinished=limit,
    )
    return tid


def test_enqueue_is_idempotent_per_key_and_refuses_a_different_call(engine: Engine) -> None:
    store = TransmissionStore(engine, 31337, SENDER)
    tid = _enqueue(store, b"k" * 32)
    again, created = store.enqueue(
        key=b"k" * 32, to=TARGET.lower(), data=b"\x01", value=0, gas_limit=None,
        max_fee_cap=None, max_unfinished=10,
    )  # fmt: skip
    assert (again, created) == (tid, False)
    with pytest.raises(IdempotencyConflict) as info:
        _enqueue(store, b"k" * 32, data=b"\x02")
    assert info.value.existing_id == tid
    # the same key on another chain is another transmission
    other = TransmissionStore(engine, 10, SENDER)
    assert _enqueue(other, b"k" * 32) != tid
    t = store.get(tid)
    assert t is not None and t.state is State.QUEUED and t.data == b"\x01" and t.nonce is None


def test_backlog_is_bounded(engine: Engine) -> None:
    store = TransmissionStore(engine, 31337, SENDER)
    first = _enqueue(store, b"a", limit=2)
    _enqueue(store, b"b", limit=2)
    with pytest.raises(QueueFull):
        _enqueue(store, b"c", limit=2)
    assert store.transition(first, State.QUEUED, State.FAILED, error="x")
    _enqueue(store, b"c", limit=2)  # a finished one frees a place


def test_nonce_and_first_signed_tx_are_stored_together(engine: Engine) -> None:
    store = TransmissionStore(engine, 31337, SENDER)
    a, b = _enqueue(store, b"a"), _enqueue(store, b"b")
    with pytest.raises(TransmissionError, match="nonce syncer"):
        store.take_nonce_and_store(a, 0, _signed(1))
    store.set_next_nonce(5)
    with pytest.raises(TransmissionError, match="waiting for a nonce"):
        store.take_nonce_and_store(a, 5, _signed(1))  # still queued: not simulated
    assert store.attempts(a) == [] and store.next_nonce() == 5
    for tid in (a, b):
        assert store.transition(tid, State.QUEUED, State.SIMULATED)
    attempt = store.take_nonce_and_store(a, 5, _signed(1))
    assert attempt.nonce == 5 and attempt.state is AttemptState.SIGNED
    with pytest.raises(TransmissionError, match="no longer next"):
        store.take_nonce_and_store(b, 5, _signed(2))
    assert store.attempts(b) == [] and store.get(b).nonce is None  # type: ignore[union-attr]
    store.take_nonce_and_store(b, 6, _signed(2))
    assert store.next_nonce() == 7 and store.highest_held_nonce() == 6
    [stored] = store.attempts(a)
    assert stored.raw_tx == _signed(1).raw and stored.tx_hash == _signed(1).tx_hash
    # compare-and-set: a move from a state it is not in does nothing
    assert not store.transition(a, State.QUEUED, State.SENT)
    assert store.transition(a, State.SIMULATED, State.SENT, last_sent_block=3)
    assert store.release_nonce(a, State.SENT)
    released = store.get(a)
    assert released is not None and released.state is State.QUEUED and released.nonce is None
    assert [x.state for x in store.attempts(a)] == [AttemptState.REPLACED]
    assert store.highest_held_nonce() == 6


def test_bad_enqueue_input_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    key = Account.create()
    manager = TransmissionManager(
        engine,
        key,
        TxManagerConfig(chain_id=31337, rpc_urls=("http://127.0.0.1:1",)),
        registry=CollectorRegistry(),
    )
    bad = [
        ({"to": "0x1234", "data": b"", "key": b"k"}, "20-byte hex address"),
        ({"to": TARGET, "data": "0x00", "key": b"k"}, "data must be bytes"),
        ({"to": TARGET, "data": b"", "key": b""}, "1 to 32 bytes"),
        ({"to": TARGET, "data": b"", "key": b"k" * 33}, "1 to 32 bytes"),
        ({"to": TARGET, "data": b"", "key": b"k", "value": -1}, "value must be"),
        ({"to": TARGET, "data": b"", "key": b"k", "value": 2**256}, "value must be"),
        ({"to": TARGET, "data": b"", "key": b"k", "gas_limit": 100}, "gas_limit"),
        ({"to": TARGET, "data": b"", "key": b"k", "max_fee_per_gas_cap": 0}, "cap"),
        ({"to": TARGET, "data": b"", "key": b"k", "max_fee_per_gas_cap": 10**30}, "cap"),
        ({"to": TARGET, "data": b"\x00" * 200_000, "key": b"k"}, "above"),
    ]
    for kwargs, message in bad:
        with pytest.raises(InvalidTransmission, match=message):
            manager.enqueue(**kwargs)  # type: ignore[arg-type]
    assert manager.ctx.store.counts() == {}
    with pytest.raises(UnknownTransmission, match="no transmission 99"):
        manager.fate(99)
