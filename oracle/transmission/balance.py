"""Balance monitor: an alert (log, metric, health) when the sender runs low, and the
check that keeps the broadcaster from queueing transactions the sender cannot pay for."""

from __future__ import annotations

from oracle.transmission.context import Context, log
from oracle.transmission.states import Attempt


def max_cost(attempt: Attempt, value: int) -> int:
    """The most ``attempt`` can take from the sender: gas at its max fee, value, L1 fee."""
    return attempt.gas_limit * attempt.max_fee_per_gas + value + (attempt.l1_fee or 0)


class BalanceMonitor:
    name = "balance"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.low = False

    async def refresh(self) -> int:
        ctx = self.ctx
        balance = await ctx.client.balance(ctx.sender)
        ctx.balance = balance
        ctx.metrics.balance_wei.set(balance)
        low = balance < ctx.config.low_balance_wei
        ctx.metrics.low_balance.set(1 if low else 0)
        if low and not self.low:
            log.error("balance_low", sender=ctx.sender, balance_wei=balance,
                      threshold_wei=ctx.config.low_balance_wei)  # fmt: skip
        elif self.low and not low:
            log.info("balance_restored", sender=ctx.sender, balance_wei=balance)
        self.low = low
        if low:
            ctx.problems.report(
                self.name,
                f"balance {balance} wei below the alert threshold {ctx.config.low_balance_wei}",
                kind="low-balance",
            )
        else:
            ctx.problems.clear(self.name)
        return balance
