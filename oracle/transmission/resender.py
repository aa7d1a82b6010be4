"""Resender: a transaction not included after ``bump_after_blocks`` blocks is replaced,
same nonce, with both fees raised (see ``FeeEstimator.bump``), until it is included or
the transmission's fee cap is reached; at the cap the last transaction is re-broadcast
as is, in case a node's mempool dropped it. A replacement is stored before it is sent.
"""

from __future__ import annotations

from oracle.transmission.client import Sent
from oracle.transmission.confirmer import fees_of
from oracle.transmission.context import Context, log
from oracle.transmission.states import Attempt, AttemptState, State, Transmission


class Resender:
    name = "resender"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._at_cap: set[int] = set()

    async def run(self, head: int) -> None:
        ctx = self.ctx
        for t in ctx.store.in_states([State.SENT]):
            attempts = ctx.store.attempts(t.id)
            latest = attempts[-1]
            if latest.state is AttemptState.SIGNED:
                # stored before a crash and maybe never broadcast
                await self._send(t, latest, head, bump=True)
                continue
            if (
                t.last_sent_block is not None
                and head - t.last_sent_block < ctx.config.bump_after_blocks
            ):
                continue
            await self._bump(t, latest, head)

    async def _bump(self, t: Transmission, latest: Attempt, head: int) -> None:
        ctx = self.ctx
        assert t.nonce is not None
        fees = ctx.fees.bump(fees_of(latest), await ctx.estimate(), ctx.cap_of(t))
        if fees is None:
            if t.id not in self._at_cap:
                log.warning("fee_cap_reached", id=t.id, nonce=t.nonce, cap=ctx.cap_of(t),
                            max_fee=latest.max_fee_per_gas)  # fmt: skip
                self._at_cap.add(t.id)
            await self._send(t, latest, head, bump=False)
            return
        signed = await ctx.sign(t, t.nonce, fees, latest.kind, latest.gas_limit)
        attempt = ctx.store.add_attempt(t.id, t.nonce, signed)
        ctx.checkpoint("bumped", t.id)
        log.info("transmission_bumped", id=t.id, nonce=t.nonce, tx=attempt.tx_hash.hex(),
                 max_fee=fees.max_fee_per_gas, tip=fees.max_priority_fee_per_gas,
                 previous_max_fee=latest.max_fee_per_gas)  # fmt: skip
        await self._send(t, attempt, head, bump=True)

    async def _send(self, t: Transmission, attempt: Attempt, head: int, *, bump: bool) -> None:
        ctx = self.ctx
        outcome, message = await ctx.client.send_raw(attempt.raw_tx, attempt.tx_hash)
        if outcome in (Sent.ACCEPTED, Sent.KNOWN):
            ctx.store.set_attempt_state(attempt.id, AttemptState.BROADCAST, broadcast_block=head)
            if bump and attempt.state is AttemptState.SIGNED:
                ctx.metrics.bumps.inc()
        else:
            ctx.metrics.broadcast_errors.inc()
            if attempt.state is AttemptState.SIGNED:
                ctx.store.set_attempt_state(attempt.id, AttemptState.REJECTED)
            if outcome is Sent.NONCE_TOO_LOW:
                ctx.nonce_dirty = True  # included meanwhile, or taken: the confirmer decides
            elif outcome is Sent.NO_FUNDS:
                ctx.problems.report("funds", f"replacement for transmission {t.id}: {message}")
            elif outcome is Sent.REJECTED:
                ctx.problems.report(self.name, f"replacement for transmission {t.id}: {message}")
        ctx.store.record(t.id, State.SENT, last_sent_block=head)
