"""The relational schema. Tables are created by the Alembic migrations in ``migrations/``
only; this module is their single description (``Base.metadata`` is Alembic's
``target_metadata``).

Conventions:

* timestamps are integers: unix **milliseconds** (``*_ms`` columns), so replay is exact;
* fixed-point values (int128) are stored as decimal text, because neither SQLite nor a
  BIGINT holds 128 bits and a float would round them;
* digests and keys are raw bytes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit autoincrement keys on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ObservationRun(Base):
    """A run of a feed's accepted observations, in the order the model consumed them: one
    row a write per feed, the entries in ``body`` (oracle.storage.runs, the format's one
    place). A feed's runs never overlap: each seq is stored once (checked at the write:
    oracle.storage.store).

    A source's exactly-once key (``dedup_key``: chain events, replay rows) is stored per
    entry but no longer indexed (migration 0007): the chain-events source's own table
    (``chain_logs``, written in the same transaction) rules out a log ingested twice, and a
    replay resumes from the position in its feed's newest key."""

    __tablename__ = "observation_runs"
    __table_args__ = (UniqueConstraint("feed_id", "last_seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False)
    first_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # the newest entry's time (a feed's times increase with its seqs): the retention
    # pass deletes a run whose every entry is older than the window
    last_observed_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)  # entries
    # [[seq, source, observed_at_ms, dedup_key, record], ...]: the record is the
    # canonical JSON of what the model saw (oracle.storage.records), as a string
    body: Mapped[str] = mapped_column(Text, nullable=False)
    commitments: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # empty here


class RejectedObservation(Base):
    """An observation refused before it reached a model, with the reason."""

    __tablename__ = "rejected_observations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(128), nullable=False)
    received_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModelCheckpoint(Base):
    """A node's own pickled model state after consuming observation ``seq``."""

    __tablename__ = "model_checkpoints"
    __table_args__ = (UniqueConstraint("feed_id", "seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    spec_digest: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    state: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class OutputRun(Base):
    """A run of one output id's model outputs, quantized to the feed's fixed point, with
    their commitments: one row a write per output id (oracle.storage.runs)."""

    __tablename__ = "output_runs"
    __table_args__ = (UniqueConstraint("feed_id", "last_seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False)
    first_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_observed_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)  # entries
    # [[seq, observed_at_ms, value (int128 as decimal text), raw_value, publish (the
    #   deviation or heartbeat rule says it goes on-chain)], ...]
    body: Mapped[str] = mapped_column(Text, nullable=False)
    commitments: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # 32 bytes each


class Round(Base):
    """A reporting round (used by the reporting issue)."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("epoch", "round"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)
    round: Mapped[int] = mapped_column(BigInteger, nullable=False)
    leader: Mapped[str] = mapped_column(String(128), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    started_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Report(Base):
    """An encoded report and, once aggregated, its threshold signature."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("report_hash"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)
    round: Mapped[int] = mapped_column(BigInteger, nullable=False)
    report_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Transmission(Base):
    """A transaction carrying a report to one chain."""

    __tablename__ = "transmissions"
    __table_args__ = (UniqueConstraint("chain_id", "report_hash"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    report_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    sender: Mapped[str] = mapped_column(String(42), nullable=False)
    tx_nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Added by 0002 (transaction manager). ``report_hash`` is the idempotency key; the
    # call columns are nullable only because rows from before 0002 have none: the
    # manager always writes them. Wei amounts are decimal text (they exceed BIGINT).
    to_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    value_wei: Mapped[str | None] = mapped_column(String(78), nullable=True)
    gas_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_fee_cap_wei: Mapped[str | None] = mapped_column(String(78), nullable=True)
    # set when the call can no longer be delivered but its nonce must still be filled
    cancelling: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_sent_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    included_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    included_block_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    receipt_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gas_used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    effective_gas_price_wei: Mapped[str | None] = mapped_column(String(78), nullable=True)
    l1_fee_wei: Mapped[str | None] = mapped_column(String(78), nullable=True)
    confirmed_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class UsedNonce(Base):
    """A FROST nonce commitment that has been used once and must never be used again."""

    __tablename__ = "used_nonces"
    __table_args__ = (UniqueConstraint("key_id", "commitment_digest"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    commitment_digest: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    used_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TxAttempt(Base):
    """One signed transaction for a transmission, stored before it is broadcast.

    A transmission has one attempt per fee bump (same nonce); after a crash the stored
    ``raw_tx`` is broadcast again, byte for byte, instead of signing a new transaction.
    """

    __tablename__ = "tx_attempts"
    __table_args__ = (UniqueConstraint("tx_hash"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    transmission_id: Mapped[int] = mapped_column(
        Id, ForeignKey("transmissions.id"), nullable=False, index=True
    )
    nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # call | cancel
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # signed | broadcast
    max_fee_per_gas_wei: Mapped[str] = mapped_column(String(78), nullable=False)
    max_priority_fee_per_gas_wei: Mapped[str] = mapped_column(String(78), nullable=False)
    gas_limit: Mapped[int] = mapped_column(BigInteger, nullable=False)
    l1_fee_wei: Mapped[str | None] = mapped_column(String(78), nullable=True)
    broadcast_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TxNonce(Base):
    """The next nonce the manager will give out for one sender on one chain."""

    __tablename__ = "tx_nonces"
    __table_args__ = (UniqueConstraint("chain_id", "address"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    address: Mapped[str] = mapped_column(String(42), nullable=False)
    next_nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ChainBlock(Base):
    """A block a chain-events source has scanned and may have to check for a reorg: its
    scan tip, and every block it took logs from. Pruned to a recent window."""

    __tablename__ = "chain_blocks"
    __table_args__ = (UniqueConstraint("feed_id", "source", "number"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False)
    source: Mapped[str] = mapped_column(String(128), nullable=False)
    number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hash: Mapped[str] = mapped_column(String(66), nullable=False)  # 0x-prefixed hex
    parent_hash: Mapped[str] = mapped_column(String(66), nullable=False)


class ChainLog(Base):
    """A log a chain-events source has processed (accepted or rejected), so it is never
    processed twice: by (block hash, log index), and across a reorg that re-includes its
    transaction in another block, by (transaction hash, ordinal among the source's
    matching logs of that transaction)."""

    __tablename__ = "chain_logs"
    __table_args__ = (
        UniqueConstraint("feed_id", "source", "block_hash", "log_index"),
        UniqueConstraint("feed_id", "source", "tx_hash", "tx_ordinal"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(128), nullable=False)
    source: Mapped[str] = mapped_column(String(128), nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    log_index: Mapped[int] = mapped_column(Integer, nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    tx_ordinal: Mapped[int] = mapped_column(Integer, nullable=False)


class RegistryScan(Base):
    """How far a node followed a ModelRegistry's events: the last confirmed block scanned
    (its hash: a reorg deeper than the confirmation depth is detected against it)."""

    __tablename__ = "registry_scan"
    __table_args__ = (UniqueConstraint("contract"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)


class RegistryEvent(Base):
    """One decoded ModelRegistry event, in canonical (block, log index) order: the node's
    view of the registry is rebuilt from these on restart (oracle.registry.events)."""

    __tablename__ = "registry_events"
    __table_args__ = (UniqueConstraint("contract", "block_hash", "log_index"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    log_index: Mapped[int] = mapped_column(Integer, nullable=False)
    block_time_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    model_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 0: the model itself
    spec_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    spec_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    feed_ids: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of 0x hex
    actor: Mapped[str | None] = mapped_column(String(42), nullable=True)


class RegistryVersion(Base):
    """What this node made of one approved version: its status (accepted, running,
    rejected, unsupported, deactivated, superseded), the reason of a refusal, and the
    verified spec bytes, so a restart resumes without fetching again."""

    __tablename__ = "registry_versions"
    __table_args__ = (UniqueConstraint("contract", "model_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    model_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
