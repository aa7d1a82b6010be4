"""The life of a transmission, and what the manager stores about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Where a transmission is. Stored as text in ``transmissions.status``.

    ``queued`` → ``simulated`` → ``sent`` → ``included`` → ``confirmed``, with the side
    exits ``failed`` (the call would revert, reverted on chain, or was cancelled to
    fill its nonce), ``dropped`` (an inclusion undone by a reorg; re-simulated and sent
    again) and ``superseded`` (its nonce was taken by a transaction the manager did not
    send, and the call is no longer needed).
    """

    QUEUED = "queued"
    SIMULATED = "simulated"
    SENT = "sent"
    INCLUDED = "included"
    CONFIRMED = "confirmed"
    DROPPED = "dropped"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({State.CONFIRMED, State.FAILED, State.SUPERSEDED})
IN_FLIGHT = frozenset({State.SENT, State.INCLUDED, State.DROPPED})


class AttemptState(StrEnum):
    SIGNED = "signed"  # stored, maybe not yet broadcast: broadcast these exact bytes
    BROADCAST = "broadcast"  # a node accepted it (or already knew it)
    REJECTED = "rejected"  # a node refused it (e.g. underpriced); superseded by a bump
    REPLACED = "replaced"  # its nonce went to a transaction from outside the manager


class AttemptKind(StrEnum):
    CALL = "call"  # the transmission's own call
    CANCEL = "cancel"  # a zero-value self-transfer that fills the nonce of a dead call


@dataclass(frozen=True, slots=True)
class Transmission:
    """A transmission's fate as stored: what was asked, where it is, what it cost."""

    id: int
    chain_id: int
    key: bytes
    sender: str
    to: str
    data: bytes
    value: int
    gas_limit: int | None
    max_fee_cap: int | None
    state: State
    nonce: int | None
    tx_hash: bytes | None
    error: str | None
    cancelling: bool
    last_sent_block: int | None
    included_block: int | None
    included_block_hash: bytes | None
    receipt_status: int | None
    gas_used: int | None
    effective_gas_price: int | None
    l1_fee: int | None
    created_at_ms: int
    updated_at_ms: int
    confirmed_at_ms: int | None

    @property
    def cost_wei(self) -> int | None:
        """What the inclusion cost the sender: L2 execution gas plus the L1 data fee."""
        if self.gas_used is None or self.effective_gas_price is None:
            return None
        return self.gas_used * self.effective_gas_price + (self.l1_fee or 0)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One signed transaction of a transmission."""

    id: int
    transmission_id: int
    nonce: int
    tx_hash: bytes
    raw_tx: bytes
    kind: AttemptKind
    state: AttemptState
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int
    l1_fee: int | None
    broadcast_block: int | None
