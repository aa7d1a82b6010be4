"""Durable single-use log of FROST nonce commitments: the SQL ``UsedNonceLog``
(oracle.crypto.nonces) a node's signer records every nonce in before a share leaves it."""

from __future__ import annotations

import time
from typing import cast

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from oracle.crypto.errors import NonceReuseError
from oracle.storage.schema import UsedNonce

_TABLE = cast(Table, UsedNonce.__table__)


class SqlUsedNonceLog:
    """Records each (key, nonce commitment) pair once, in the database.

    ``mark_used`` commits before it returns, so a share computed afterwards can never be
    recomputed with the same nonce after a crash. Uniqueness is the database's
    ``UNIQUE(key_id, commitment_digest)``: two concurrent callers cannot both succeed.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def mark_used(self, key_id: bytes, commitment_digest: bytes) -> None:
        _check(key_id, commitment_digest)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(_TABLE).values(
                        key_id=bytes(key_id),
                        commitment_digest=bytes(commitment_digest),
                        used_at_ms=time.time_ns() // 1_000_000,
                    )
                )
        except IntegrityError as exc:
            raise NonceReuseError(bytes(key_id), bytes(commitment_digest)) from exc

    def is_used(self, key_id: bytes, commitment_digest: bytes) -> bool:
        _check(key_id, commitment_digest)
        stmt = (
            select(_TABLE.c.id)
            .where(_TABLE.c.key_id == bytes(key_id))
            .where(_TABLE.c.commitment_digest == bytes(commitment_digest))
        )
        with self._engine.connect() as conn:
            return conn.execute(stmt).first() is not None


def _check(key_id: bytes, commitment_digest: bytes) -> None:
    for name, value in (("key_id", key_id), ("commitment_digest", commitment_digest)):
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
        if not 1 <= len(value) <= 64:
            raise ValueError(f"{name} must be 1 to 64 bytes, got {len(value)}")
