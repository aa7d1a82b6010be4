"""What the manager's jobs share: storage, the chain client, the key, metrics, alerts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from oracle.transmission.client import Call, ChainClient
from oracle.transmission.config import TxManagerConfig
from oracle.transmission.fees import Estimate, FeeEstimator, Fees
from oracle.transmission.metrics import TxMetrics
from oracle.transmission.states import AttemptKind, Transmission
from oracle.transmission.store import SignedTx, TransmissionStore

log = structlog.get_logger("mira.transmission")

CANCEL_GAS = 21_000

# Called at the points where a crash is most dangerous ("signed": a transaction is stored
# but not broadcast; "broadcast": a node has it but the database does not say so yet).
# For tracing and for the crash tests, which SIGKILL the process there.
Checkpoint = Callable[[str, int], None]


class Problems:
    """Conditions that degrade health. Each is logged when it starts and when it ends,
    not on every tick: a persistent fault gives one warning, not a storm."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}
        self._kinds: dict[str, str] = {}

    def report(self, part: str, message: str, *, kind: str | None = None) -> None:
        """``kind`` groups messages whose details vary (amounts): one log per kind."""
        kind = kind or message
        if self._kinds.get(part) != kind:
            log.warning("transmission_problem", part=part, problem=message)
        self.active[part] = message
        self._kinds[part] = kind

    def clear(self, part: str) -> None:
        self._kinds.pop(part, None)
        if self.active.pop(part, None) is not None:
            log.info("transmission_problem_cleared", part=part)


@dataclass
class Context:
    config: TxManagerConfig
    store: TransmissionStore
    client: ChainClient
    fees: FeeEstimator
    account: LocalAccount
    metrics: TxMetrics
    checkpoint: Checkpoint
    problems: Problems = field(default_factory=Problems)
    op_stack: bool = False
    nonce_dirty: bool = True
    balance: int | None = None
    _estimate: Estimate | None = None

    @property
    def sender(self) -> str:
        return str(self.account.address)

    def call_of(self, t: Transmission) -> Call:
        return Call(self.sender, t.to, t.data, t.value)

    def cap_of(self, t: Transmission) -> int:
        return t.max_fee_cap if t.max_fee_cap is not None else self.config.default_max_fee_cap_wei

    async def estimate(self) -> Estimate:
        """The fee estimate, fetched at most once per tick."""
        if self._estimate is None:
            self._estimate = await self.fees.estimate()
        return self._estimate

    def new_tick(self) -> None:
        self._estimate = None

    async def sign(
        self, t: Transmission, nonce: int, fees: Fees, kind: AttemptKind, gas_limit: int
    ) -> SignedTx:
        if kind is AttemptKind.CALL:
            to, data, value, gas = t.to, t.data, t.value, gas_limit
        else:  # fill the nonce with a zero-value transfer to ourselves
            to, data, value, gas = self.sender, b"", 0, CANCEL_GAS
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.config.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(to),
            "value": value,
            "data": data,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        signed = self.account.sign_transaction(tx)
        raw = bytes(signed.raw_transaction)
        l1_fee = await self.client.l1_fee(raw) if self.op_stack else None
        return SignedTx(
            raw=raw,
            tx_hash=bytes(signed.hash),
            kind=kind,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            gas_limit=gas,
            l1_fee=l1_fee,
        )
