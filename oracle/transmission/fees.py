"""EIP-1559 fees: an estimate from eth_feeHistory, and replacement bumps under a cap."""

from __future__ import annotations

from dataclasses import dataclass

from oracle.transmission.client import ChainClient
from oracle.transmission.config import TxManagerConfig


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True, slots=True)
class Estimate:
    base_fee: int  # the next block's
    fees: Fees


def bumped(value: int, permille: int) -> int:
    """``value`` raised by ``permille``/1000 (rounded up), and by at least 1 wei."""
    return max(value + 1, -(-value * (1000 + permille) // 1000))


class FeeEstimator:
    def __init__(self, client: ChainClient, config: TxManagerConfig) -> None:
        self.client = client
        self.config = config

    async def estimate(self) -> Estimate:
        base, rewards = await self.client.fee_history()
        tips = sorted(rewards)
        tip = tips[len(tips) // 2] if tips else 0
        tip = max(tip, self.config.min_priority_fee_wei)
        return Estimate(base, Fees(base * self.config.base_fee_multiplier + tip, tip))

    def capped(self, fees: Fees, cap: int) -> Fees:
        """``fees`` with the max fee at most ``cap`` and the tip at most the max fee."""
        max_fee = min(fees.max_fee_per_gas, cap)
        return Fees(max_fee, min(fees.max_priority_fee_per_gas, max_fee))

    def bump(self, previous: Fees, current: Estimate, cap: int) -> Fees | None:
        """The fees of a replacement for a transaction paying ``previous``.

        Both fees rise by at least ``bump_permille`` (what nodes require of a
        replacement), or to the current estimate if that is higher. None when the cap
        leaves no room for a valid replacement.
        """
        permille = self.config.bump_permille
        tip = max(
            bumped(previous.max_priority_fee_per_gas, permille),
            current.fees.max_priority_fee_per_gas,
        )
        max_fee = max(bumped(previous.max_fee_per_gas, permille), current.fees.max_fee_per_gas)
        max_fee = max(max_fee, tip)
        if max_fee > cap:
            max_fee = cap
        if tip > max_fee:
            tip = max_fee
        if max_fee < bumped(previous.max_fee_per_gas, permille) or tip < bumped(
            previous.max_priority_fee_per_gas, permille
        ):
            return None
        return Fees(max_fee, tip)
