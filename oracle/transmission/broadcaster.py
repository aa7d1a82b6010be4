"""Broadcaster: simulate each queued call, give it the next nonce, sign, store, send.

Order of the steps is what makes a crash harmless: the signed transaction and its nonce
are committed together before the first byte goes to a node, so a restarted manager
finds the stored bytes and broadcasts them again; it never signs a second transaction
for the same call, and a nonce is never taken without a transaction to fill it.
"""

from __future__ import annotations

from oracle.transmission.balance import max_cost
from oracle.transmission.client import Sent
from oracle.transmission.context import Context, log
from oracle.transmission.errors import TransmissionError
from oracle.transmission.states import (
    IN_FLIGHT,
    Attempt,
    AttemptKind,
    AttemptState,
    State,
    Transmission,
)


class Broadcaster:
    name = "broadcaster"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, head: int) -> None:
        ctx = self.ctx
        # 1. stored but (maybe) never broadcast: a crash or a refusal; same bytes again
        for t in ctx.store.in_states([State.SIMULATED]):
            if t.nonce is None:
                continue
            attempt = ctx.store.attempts(t.id)[-1]
            if not await self._first_send(t, attempt, head):
                return
        # 2. new calls, oldest first
        for t in ctx.store.in_states(
            [State.QUEUED, State.SIMULATED], limit=ctx.config.max_new_per_tick
        ):
            if t.nonce is not None:
                continue
            if not await self._start(t, head):
                return
        ctx.problems.clear(self.name)

    async def _start(self, t: Transmission, head: int) -> bool:
        """Simulate, sign, store and send ``t``. False when the queue must wait."""
        ctx = self.ctx
        reason = await ctx.client.simulate(ctx.call_of(t))
        if reason is not None:
            if ctx.store.transition(
                t.id, t.state, State.FAILED, error=f"simulation reverted: {reason}"
            ):
                ctx.metrics.simulation_reverts.inc()
                log.warning("transmission_not_sent", id=t.id, reason=reason)
            return True
        gas = t.gas_limit or await ctx.client.estimate_gas(ctx.call_of(t))
        if t.state is State.QUEUED and not ctx.store.transition(
            t.id, State.QUEUED, State.SIMULATED, gas_limit=gas
        ):
            return True
        estimate = await ctx.estimate()
        cap = ctx.cap_of(t)
        if cap < estimate.base_fee:
            ctx.problems.report(
                self.name,
                f"transmission {t.id}: fee cap {cap} is below the base fee {estimate.base_fee}; "
                "waiting rather than sending a transaction that cannot be included",
                kind="cap-below-base-fee",
            )
            return False
        fees = ctx.fees.capped(estimate.fees, cap)
        nonce = ctx.store.next_nonce()
        if nonce is None:
            raise TransmissionError("the nonce syncer has not run")
        signed = await ctx.sign(t, nonce, fees, AttemptKind.CALL, gas)
        needed = signed.gas_limit * signed.max_fee_per_gas + t.value + (signed.l1_fee or 0)
        available = (ctx.balance or 0) - self._reserved()
        if needed > available:
            ctx.problems.report(
                "funds",
                f"insufficient funds: transmission {t.id} needs up to {needed} wei, "
                f"{max(available, 0)} available after in-flight transactions; holding the queue",
                kind="insufficient-funds",
            )
            return False
        ctx.problems.clear("funds")
        attempt = ctx.store.take_nonce_and_store(t.id, nonce, signed)
        log.info("transmission_signed", id=t.id, nonce=nonce, tx=attempt.tx_hash.hex())
        ctx.checkpoint("signed", t.id)
        refreshed = ctx.store.get(t.id)
        assert refreshed is not None
        return await self._first_send(refreshed, attempt, head)

    def _reserved(self) -> int:
        """What in-flight and signed transactions may still take from the balance."""
        ctx = self.ctx
        total = 0
        for t in ctx.store.in_states([*IN_FLIGHT, State.SIMULATED]):
            if t.nonce is None or t.state is State.INCLUDED:
                continue
            attempts = ctx.store.attempts(t.id)
            if attempts:
                total += max_cost(attempts[-1], t.value)
        return total

    async def _first_send(self, t: Transmission, attempt: Attempt, head: int) -> bool:
        ctx = self.ctx
        outcome, message = await ctx.client.send_raw(attempt.raw_tx, attempt.tx_hash)
        if outcome is Sent.NO_FUNDS:
            ctx.problems.report(
                "funds", f"node refused transmission {t.id}: {message}", kind="insufficient-funds"
            )
            ctx.metrics.broadcast_errors.inc()
            return False
        if outcome is Sent.REJECTED:
            ctx.problems.report(self.name, f"node refused transmission {t.id}: {message}")
            ctx.metrics.broadcast_errors.inc()
            ctx.store.record(t.id, State.SIMULATED, error=f"broadcast refused: {message}")
            return False
        ctx.checkpoint("broadcast", t.id)
        if outcome in (Sent.UNDERPRICED, Sent.NONCE_TOO_LOW):
            # held back by a pricier transaction at this nonce or a base fee jump: the
            # resender replaces it with higher fees after bump_after_blocks
            ctx.store.set_attempt_state(attempt.id, AttemptState.REJECTED)
        else:
            ctx.store.set_attempt_state(attempt.id, AttemptState.BROADCAST, broadcast_block=head)
        if outcome is Sent.NONCE_TOO_LOW:
            # included before a crash, or taken from outside: the confirmer tells which
            ctx.nonce_dirty = True
        ctx.store.transition(t.id, State.SIMULATED, State.SENT, last_sent_block=head, error=None)
        log.info("transmission_sent", id=t.id, nonce=attempt.nonce, tx=attempt.tx_hash.hex(),
                 outcome=outcome.value)  # fmt: skip
        return True
