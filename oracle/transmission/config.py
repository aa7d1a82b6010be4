"""Knobs of the transaction manager, for one sender on one chain."""

from __future__ import annotations

from dataclasses import dataclass

GWEI = 10**9
ETHER = 10**18


@dataclass(frozen=True)
class TxManagerConfig:
    """Typed configuration; ``__post_init__`` names the offending knob on a bad value.

    Fees: ``maxFeePerGas = base_fee_multiplier × next base fee + priority fee``, the
    priority fee being the ``priority_fee_percentile`` of the last ``fee_history_blocks``
    blocks' rewards (at least ``min_priority_fee_wei``). A transaction not included after
    ``bump_after_blocks`` blocks is replaced with both fees raised by ``bump_permille``
    (125 = +12.5%, above geth's 10% replacement rule) or to the current estimate if that
    is higher, never above the transmission's cap (``default_max_fee_cap_wei`` unless the
    caller set one).
    """

    chain_id: int
    rpc_urls: tuple[str, ...]
    confirmation_depth: int = 3
    bump_after_blocks: int = 3
    bump_permille: int = 125
    default_max_fee_cap_wei: int = 500 * GWEI
    base_fee_multiplier: int = 2
    priority_fee_percentile: float = 50.0
    min_priority_fee_wei: int = 1_000_000
    fee_history_blocks: int = 10
    # an RPC quoting more than this per gas is lying or broken, not expensive
    absurd_fee_wei: int = 100_000 * GWEI
    absurd_l1_fee_wei: int = 10 * ETHER
    gas_limit_margin_percent: int = 25
    max_gas_limit: int = 30_000_000
    low_balance_wei: int = ETHER // 20
    max_unfinished: int = 256
    max_new_per_tick: int = 32
    poll_interval: float = 1.0
    health_interval: float = 10.0
    rpc_timeout: float = 5.0
    max_lag_blocks: int = 20
    demote_seconds: float = 30.0

    def __post_init__(self) -> None:
        def bad(key: str, value: object, expected: str) -> ValueError:
            return ValueError(f"transmission config: {key} = {value!r}, expected {expected}")

        if not isinstance(self.chain_id, int) or self.chain_id <= 0:
            raise bad("chain_id", self.chain_id, "a positive integer")
        if not self.rpc_urls or not all(isinstance(u, str) and u for u in self.rpc_urls):
            raise bad("rpc_urls", "<redacted>", "at least one URL")
        positive = {
            "confirmation_depth": self.confirmation_depth,
            "bump_after_blocks": self.bump_after_blocks,
            "default_max_fee_cap_wei": self.default_max_fee_cap_wei,
            "base_fee_multiplier": self.base_fee_multiplier,
            "fee_history_blocks": self.fee_history_blocks,
            "absurd_fee_wei": self.absurd_fee_wei,
            "max_gas_limit": self.max_gas_limit,
            "max_unfinished": self.max_unfinished,
            "max_new_per_tick": self.max_new_per_tick,
            "max_lag_blocks": self.max_lag_blocks,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise bad(key, value, "a positive integer")
        if not isinstance(self.bump_permille, int) or self.bump_permille < 100:
            raise bad("bump_permille", self.bump_permille, "≥ 100 (+10%, geth's minimum)")
        if not 0 <= self.priority_fee_percentile <= 100:
            raise bad("priority_fee_percentile", self.priority_fee_percentile, "0 to 100")
        for key, number in {
            "min_priority_fee_wei": self.min_priority_fee_wei,
            "low_balance_wei": self.low_balance_wei,
            "gas_limit_margin_percent": self.gas_limit_margin_percent,
        }.items():
            if not isinstance(number, int) or number < 0:
                raise bad(key, number, "a non-negative integer")
        if self.default_max_fee_cap_wei > self.absurd_fee_wei:
            raise bad("default_max_fee_cap_wei", self.default_max_fee_cap_wei, "≤ absurd_fee_wei")
        for key, seconds in {
            "poll_interval": self.poll_interval,
            "health_interval": self.health_interval,
            "rpc_timeout": self.rpc_timeout,
            "demote_seconds": self.demote_seconds,
        }.items():
            if not seconds > 0:
                raise bad(key, seconds, "a positive number of seconds")
