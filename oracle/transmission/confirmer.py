"""Confirmer: find receipts, confirm at depth, notice reorgs and nonces taken from outside.

* ``sent`` → ``included`` when a receipt of any of its attempts appears;
* ``included`` → ``confirmed`` (or ``failed`` if it reverted, or if it was a cancel) once
  ``confirmation_depth`` blocks hold it and its block is still canonical;
* ``included`` → ``dropped`` when the receipt or its block left the canonical chain;
  a dropped call is re-simulated and its stored bytes broadcast again (or, if it would
  now revert, its nonce is filled with a zero-value transfer to ourselves);
* a nonce used on chain with no receipt for any attempt, on any endpoint, was taken from
  outside: the call is re-queued with a new nonce if it still simulates, else it is
  ``superseded``.
"""

from __future__ import annotations

from oracle.transmission.client import Receipt, Sent
from oracle.transmission.context import Context, log
from oracle.transmission.fees import Fees
from oracle.transmission.states import Attempt, AttemptKind, AttemptState, State, Transmission
from oracle.transmission.store import now_ms


class Confirmer:
    name = "confirmer"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, head: int) -> None:
        ctx = self.ctx
        rows = ctx.store.in_states([State.SENT, State.INCLUDED, State.DROPPED])
        if not rows:
            return
        chain_nonce = await ctx.client.nonce(ctx.sender, "latest")
        for t in rows:
            if t.state is State.INCLUDED:
                await self._check_included(t, head)
                continue
            attempts = ctx.store.attempts(t.id)
            found = await self._find_receipt(attempts, everywhere=False)
            if found is None and t.nonce is not None and chain_nonce > t.nonce:
                found = await self._find_receipt(attempts, everywhere=True)
                if found is None:
                    await self._taken_from_outside(t, chain_nonce)
                    continue
            if found is not None:
                await self._included(t, *found, head=head)
            elif t.state is State.DROPPED:
                await self._resend_dropped(t, attempts, head)

    async def _find_receipt(
        self, attempts: list[Attempt], *, everywhere: bool
    ) -> tuple[Attempt, Receipt] | None:
        ctx = self.ctx
        for attempt in reversed(attempts):
            if attempt.state is AttemptState.REPLACED:
                continue
            if everywhere:
                receipt = await ctx.client.receipt_anywhere(attempt.tx_hash, ctx.sender)
            else:
                receipt = await ctx.client.receipt(attempt.tx_hash, ctx.sender)
            if receipt is not None:
                return attempt, receipt
        return None

    async def _included(
        self, t: Transmission, attempt: Attempt, receipt: Receipt, *, head: int
    ) -> None:
        ctx = self.ctx
        l1_fee = receipt.l1_fee if receipt.l1_fee is not None else attempt.l1_fee
        moved = ctx.store.transition(
            t.id,
            t.state,
            State.INCLUDED,
            tx_hash=receipt.tx_hash,
            included_block=receipt.block_number,
            included_block_hash=receipt.block_hash,
            receipt_status=receipt.status,
            gas_used=receipt.gas_used,
            effective_gas_price=receipt.effective_gas_price,
            l1_fee=l1_fee,
        )
        if moved:
            if attempt.state is not AttemptState.BROADCAST:  # e.g. sent just before a crash
                ctx.store.set_attempt_state(attempt.id, AttemptState.BROADCAST)
            log.info("transmission_included", id=t.id, tx=receipt.tx_hash.hex(),
                     block=receipt.block_number, status=receipt.status)  # fmt: skip
            refreshed = ctx.store.get(t.id)
            assert refreshed is not None
            await self._check_included(refreshed, head)

    async def _check_included(self, t: Transmission, head: int) -> None:
        ctx = self.ctx
        assert t.tx_hash is not None and t.included_block is not None
        receipt = await ctx.client.receipt(t.tx_hash, ctx.sender)
        canonical = await ctx.client.block_hash(t.included_block)
        if (
            receipt is None
            or receipt.block_hash != t.included_block_hash
            or canonical != t.included_block_hash
        ):
            if ctx.store.transition(t.id, State.INCLUDED, State.DROPPED):
                ctx.metrics.reorgs.inc()
                log.warning("transmission_reorged_out", id=t.id, tx=t.tx_hash.hex(),
                            block=t.included_block)  # fmt: skip
            return
        if head - t.included_block + 1 < ctx.config.confirmation_depth:
            return
        if t.cancelling:
            final, error = State.FAILED, t.error
        elif t.receipt_status == 1:
            final, error = State.CONFIRMED, None
        else:
            final, error = State.FAILED, f"reverted on chain in block {t.included_block}"
        done = now_ms()
        if ctx.store.transition(t.id, State.INCLUDED, final, error=error, confirmed_at_ms=done):
            spent = t.cost_wei or 0
            ctx.metrics.gas_used.inc(t.gas_used or 0)
            ctx.metrics.gas_spent_wei.inc(spent)
            ctx.metrics.l1_fee_wei.inc(t.l1_fee or 0)
            if final is State.CONFIRMED:
                ctx.metrics.confirmation_seconds.observe(max(0, done - t.created_at_ms) / 1000)
            log.info("transmission_final", id=t.id, state=final.value, tx=t.tx_hash.hex(),
                     cost_wei=spent, error=error)  # fmt: skip

    async def _taken_from_outside(self, t: Transmission, chain_nonce: int) -> None:
        ctx = self.ctx
        ctx.nonce_dirty = True
        if t.cancelling:
            # the nonce is filled, which is all a cancel wanted
            ctx.store.transition(t.id, t.state, State.FAILED, confirmed_at_ms=now_ms())
            return
        reason = await ctx.client.simulate(ctx.call_of(t))
        if reason is None:
            if ctx.store.release_nonce(t.id, t.state):
                log.warning("nonce_taken_from_outside", id=t.id, nonce=t.nonce,
                            chain_nonce=chain_nonce, action="requeued")  # fmt: skip
        else:
            error = (
                f"nonce {t.nonce} was used by a transaction the manager did not send, "
                f"and the call now reverts: {reason}"
            )
            if ctx.store.transition(t.id, t.state, State.SUPERSEDED, error=error):
                log.warning("nonce_taken_from_outside", id=t.id, nonce=t.nonce, action="superseded",
                            reason=reason)  # fmt: skip

    async def _resend_dropped(self, t: Transmission, attempts: list[Attempt], head: int) -> None:
        ctx = self.ctx
        assert t.nonce is not None
        latest = attempts[-1]
        if not t.cancelling:
            reason = await ctx.client.simulate(ctx.call_of(t))
            if reason is not None:
                await self._cancel(
                    t, latest, head, f"re-simulation after a reorg reverted: {reason}"
                )
                return
        outcome, message = await ctx.client.send_raw(latest.raw_tx, latest.tx_hash)
        if outcome in (Sent.NO_FUNDS, Sent.REJECTED):
            ctx.problems.report(self.name, f"re-sending reorged transmission {t.id}: {message}")
            return
        ctx.store.set_attempt_state(latest.id, AttemptState.BROADCAST, broadcast_block=head)
        ctx.store.transition(t.id, State.DROPPED, State.SENT, last_sent_block=head)
        log.info("transmission_resent_after_reorg", id=t.id, tx=latest.tx_hash.hex(),
                 outcome=outcome.value)  # fmt: skip

    async def _cancel(self, t: Transmission, latest: Attempt, head: int, error: str) -> None:
        """Fill ``t``'s nonce with a zero-value self-transfer: later nonces must not wait."""
        ctx = self.ctx
        assert t.nonce is not None
        estimate = await ctx.estimate()
        fees = ctx.fees.bump(fees_of(latest), estimate, ctx.cap_of(t))
        if fees is None:  # no room under the cap: the same fees still fill the nonce
            fees = fees_of(latest)
        signed = await ctx.sign(t, t.nonce, fees, AttemptKind.CANCEL, 0)
        if not ctx.store.record(t.id, State.DROPPED, cancelling=True, error=error):
            return
        attempt = ctx.store.add_attempt(t.id, t.nonce, signed)
        log.warning("transmission_cancelled", id=t.id, nonce=t.nonce, reason=error)
        outcome, message = await ctx.client.send_raw(attempt.raw_tx, attempt.tx_hash)
        if outcome in (Sent.NO_FUNDS, Sent.REJECTED):
            ctx.problems.report(self.name, f"cancel of transmission {t.id}: {message}")
            return
        ctx.store.set_attempt_state(attempt.id, AttemptState.BROADCAST, broadcast_block=head)
        ctx.store.transition(t.id, State.DROPPED, State.SENT, last_sent_block=head)


def fees_of(attempt: Attempt) -> Fees:
    return Fees(attempt.max_fee_per_gas, attempt.max_priority_fee_per_gas)
