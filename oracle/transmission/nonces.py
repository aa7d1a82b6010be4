"""Nonce syncer: the locally stored next nonce, reconciled with the chain.

Runs at start and whenever a job saw a sign that the chain moved without us ("nonce too
low", a nonce taken from outside). The next nonce is never below the chain's pending
count (someone else used our key) nor at or below a nonce an unfinished transmission
holds; it is lowered only when nothing we hold lies in between, so no gap is left.
"""

from __future__ import annotations

from oracle.transmission.context import Context, log


class NonceSyncer:
    name = "nonce-syncer"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def sync(self) -> int:
        ctx = self.ctx
        pending = await ctx.client.nonce(ctx.sender, "pending")
        held = ctx.store.highest_held_nonce()
        floor = pending if held is None else max(pending, held + 1)
        local = ctx.store.next_nonce()
        if local != floor:
            log.info("nonce_resynced", sender=ctx.sender, stored=local, chain_pending=pending,
                     held=held, next=floor)  # fmt: skip
            ctx.store.set_next_nonce(floor)
        ctx.nonce_dirty = False
        return floor
