"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema by Alembic."""

from oracle.storage.db import DEFAULT_URL, make_engine
from oracle.storage.errors import DatabaseNotMigrated, StorageError
from oracle.storage.migrate import current_revision, head_revision, require_current, upgrade
from oracle.storage.nonces import SqlUsedNonceLog
from oracle.storage.records import decode_record, encode_record
from oracle.storage.runs import ObservationRow, OutputRow, RunOverlap
from oracle.storage.store import CheckpointRow, Pruned, RejectionRow, Store

__all__ = [
    "DEFAULT_URL",
    "CheckpointRow",
    "DatabaseNotMigrated",
    "ObservationRow",
    "OutputRow",
    "Pruned",
    "RejectionRow",
    "RunOverlap",
    "SqlUsedNonceLog",
    "StorageError",
    "Store",
    "current_revision",
    "decode_record",
    "encode_record",
    "head_revision",
    "make_engine",
    "require_current",
    "upgrade",
]
