"""The leader's side of a round (steps 1-3, 5 and 6 of oracle.reporting.protocol)."""

from __future__ import annotations

import asyncio
import time

import structlog

from oracle.config.publish import within_bps
from oracle.crypto.frost import (
    SignatureShare,
    SigningRound,
    aggregate,
    verify_signature_share,
)
from oracle.crypto.nonces import SigningCommitment
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import MsgType
from oracle.reporting import rounds
from oracle.reporting.context import (
    AUTHOR_CHOICES,
    Collected,
    Refusal,
    lower_median,
)
from oracle.reporting.follower import Follower
from oracle.reporting.messages import (
    Observation,
    Proposal,
    SignedReport,
    decode_commitment,
    decode_refusal,
    decode_share,
)
from oracle.reporting.report import FeedUpdate, Report, digest, encode
from oracle.reporting.rotation import TransmitRotation

log = structlog.get_logger(__name__)


# what a round's observing yields: the observations by member, the due medians, and the
# members whose observations agree with every median (the candidate signers)
_Observed = tuple[dict[int, Collected], tuple[FeedUpdate, ...], list[int]]


class Leader(Follower, TransmitRotation):
    """A member leading its rounds: collect observations, propose the due medians, gather
    and verify shares, aggregate, and hand the signed report to the rotation."""

    async def _observe_round(self, r: int, attempt: int) -> _Observed | None:
        """Collect observations; return them, the due medians and the agreeing members."""
        ctx = self.ctx
        collected = await self._collect_observations(r, attempt)
        if len(collected) < ctx.quorum:
            self.metrics.rounds.labels("no_quorum").inc()
            log.info("round.no_quorum", round=r, observations=len(collected), need=ctx.quorum)
            return None
        updates = self._due_medians(r, collected)
        if not updates:
            self.metrics.rounds.labels("nothing_due").inc()
            return None
        return collected, tuple(updates), self._candidates(collected, updates)

    async def _collect_observations(self, r: int, attempt: int) -> dict[int, Collected]:
        """This node's own observation and every member's that arrives in time, each
        indexed by feed; an undecodable one is refused, a forged nonce's author named."""
        ctx, cfg = self.ctx, self.config
        me = ctx.self_index
        own = await self._observation(r, attempt)
        collected: dict[int, Collected] = {
            me: Collected(
                self.transport.seal(self._header(MsgType.OBSERVATION, r, attempt), own.encode()),
                own,
            )
        }
        asks = {
            p.index: asyncio.create_task(
                self._ask(
                    p,
                    MsgType.OBSERVE,
                    r,
                    attempt,
                    b"",
                    frozenset({MsgType.OBSERVATION, MsgType.REFUSE}),
                    cfg.observe_timeout_s,
                )
            )
            for p in ctx.peers
            if p.index != me
        }
        for who, env in (await self._gather(asks, cfg.observe_timeout_s)).items():
            if env.header.type != MsgType.OBSERVATION:
                continue
            try:
                obs = Observation.decode(env.payload)
            except MessageRejected as exc:
                self.auth.reject(exc, f"member {who}")
                continue
            if obs.nonce is not None and obs.nonce.identifier != who + 1:
                # A nonce commitment carries the identifier whose Lagrange coefficient and
                # binding factor it gets; an honest member only ever sends its own. Another
                # member's (or a non-member's) would make the signing set invalid for
                # everyone, so the observation is left out and its author named.
                self._name_offender(r, attempt, who, "forged_nonce")
                continue
            collected[who] = Collected(env.raw, obs)
        for c in collected.values():
            c.by_feed = {u.feed_id: u for u in c.observation.outputs}
        return collected

    def _candidates(self, collected: dict[int, Collected], updates: list[FeedUpdate]) -> list[int]:
        """The members that sent a nonce and whose own values agree with every median
        within the feed's tolerance: the ones that will sign it."""

        def agrees(who: int) -> bool:
            feeds = collected[who].by_feed
            return all(
                u.feed_id in feeds
                and within_bps(
                    u.value, feeds[u.feed_id].value, self.policies[u.feed_id].tolerance_bps
                )
                for u in updates
            )

        now = time.monotonic()
        agreeing = [
            who for who in collected if collected[who].observation.nonce is not None and agrees(who)
        ]
        # A member recently named for a bad share is passed over while enough others agree;
        # when they do not, it is asked again rather than letting the feed stall: a repeat
        # offence is caught by share verification and names it again.
        trusted = [who for who in agreeing if self._suspects.get(who, 0.0) < now]
        return trusted if len(trusted) >= self.ctx.threshold else agreeing

    def _due_medians(self, r: int, collected: dict[int, Collected]) -> list[FeedUpdate]:
        """The due feeds' medians, none with a time or model commitment this node refuses.

        A median whose time or commitment this node refuses (check_update) would be refused
        by the honest followers too — that is the median's author choosing what goes
        on-chain — so its author's observation is left out of the round and the medians
        computed again; when no observation can be spared (quorum), only that feed waits.
        Each pass removes one observation or one feed, so this ends after at most
        n + feeds passes. (A leader whose own feed is stale by more than ``max_skew_s``
        thus reports nothing for it: the other leaders' rounds do.)"""
        ctx = self.ctx
        # this node's own outputs of the feeds observed (registered ones: never every feed's,
        # which a node carrying 10,000 pull-only feeds remakes after each poll)
        latest = self.outputs.latest_output
        carried = set().union(*(c.by_feed for c in collected.values())) & self.policies.keys()
        mine = {f: u for f in carried if (u := latest(f)) is not None}
        skipped: set[bytes] = set()
        while True:
            updates, refused = [], None
            due_groups: set[str] = set()
            # the feeds some member observed (push observations carry registered feeds
            # only: a committee's pull-only feeds cost this loop nothing)
            observed = set().union(*(c.by_feed for c in collected.values()))
            for feed_id in sorted((observed & self.policies.keys()) - skipped):
                policy = self.policies[feed_id]
                values = [
                    (c.by_feed[feed_id].value, who, c.by_feed[feed_id])
                    for who, c in collected.items()
                    if feed_id in c.by_feed
                ]
                if len(values) < ctx.quorum:
                    continue
                median = lower_median(values)
                if self.is_due(policy, median):
                    due_groups.add(policy.group)
                elif not (policy.group and self.is_newer(policy, median)):
                    continue  # (a group's feed may go with its group's due one)
                try:
                    self.check_update(policy, median, mine)
                except Refusal as exc:
                    if exc.reason not in AUTHOR_CHOICES:
                        # A value off this node's own output (or no output here): this
                        # node may be the outlier, so the followers decide, as always.
                        updates.append(median)
                        continue
                    author = next(who for _, who, u in values if u is median)
                    refused = (feed_id, author, exc)
                    break
                updates.append(median)
            if refused is None:
                return self._whole_groups(updates, due_groups)
            feed_id, author, why = refused
            self.metrics.dropped_observations.labels(why.reason).inc()
            log.warning(
                "round.median_refused", round=r, member=author, reason=why.reason, detail=why.detail
            )
            if len(collected) > ctx.quorum and author != ctx.self_index:
                del collected[author]
            else:
                skipped.add(feed_id)

    def _whole_groups(self, updates: list[FeedUpdate], due: set[str]) -> list[FeedUpdate]:
        """The updates without any group that is not due or not whole: a policy's feeds go
        on-chain together or wait (an agent refuses a torn policy)."""
        size: dict[str, int] = {}
        for p in self.policies.values():
            size[p.group] = size.get(p.group, 0) + 1
        have: dict[str, int] = {}
        for u in updates:
            g = self.policies[u.feed_id].group
            have[g] = have.get(g, 0) + 1
        return [
            u
            for u in updates
            if (g := self.policies[u.feed_id].group) == "" or (g in due and have[g] == size[g])
        ]

    async def lead(self, r: int) -> Report | None:
        """Run round ``r`` as its leader; return the aggregated report, if any."""
        started = time.perf_counter()
        ctx = self.ctx
        observed = await self._observe(r)
        if observed is None:
            return None
        first, (collected, updates, candidates) = observed
        report = Report(ctx.epoch, r, updates)
        report_bytes = encode(report)
        self.store.set_round_state(ctx.epoch, r, str(ctx.self_index), "proposing")
        if not self.store.commit_to_report(ctx.epoch, r, report_bytes):
            log.error("round.equivocation_avoided", round=r)
            return None
        signed = await self._sign(r, first, report_bytes, collected, candidates)
        if signed is None:
            return None
        encoded, chosen, attempt = signed
        self.metrics.round_seconds.observe(time.perf_counter() - started)
        self.metrics.rounds.labels("signed").inc()
        self.reports_led += 1
        self.store.save_signed(ctx.epoch, r, report_bytes, encoded)
        self.store.set_round_state(ctx.epoch, r, str(ctx.self_index), "aggregated")
        log.info(
            "round.signed",
            round=r,
            feeds=len(updates),
            signers=chosen,
            attempt=attempt,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        self._broadcast_report(r, SignedReport(report_bytes, encoded).encode())
        self._accept_report(report, report_bytes, encoded)
        return report

    async def _observe(self, r: int) -> tuple[int, _Observed] | None:
        """The round's observations (attempt 0), looked at once more (attempt 1) when too
        few members agree: right after a source moves, some members have not polled it yet
        and disagree with the new median; better to look again than waste the round."""
        observed = await self._observe_round(r, 0)
        if observed is None:
            return None
        cfg = self.config
        if len(observed[2]) < self.ctx.threshold and cfg.reobserve_after_s > 0:
            await asyncio.sleep(cfg.reobserve_after_s)
            again = await self._observe_round(r, 1)
            return None if again is None else (1, again)
        return 0, observed

    async def _sign(
        self,
        r: int,
        first: int,
        report_bytes: bytes,
        collected: dict[int, Collected],
        candidates: list[int],
    ) -> tuple[bytes, list[int], int] | None:
        """Have ``threshold`` agreeing members sign the report, trying again with fresh
        nonces from the others while some share is bad or missing (up to
        ``max_attempts``); return (encoded signature, signers, attempt) or None."""
        ctx, cfg = self.ctx, self.config
        message = digest(ctx.chain_id, ctx.oracle, ctx.epoch, report_bytes)
        observations = tuple(c.raw for c in collected.values())
        excluded: set[int] = set()
        for attempt in range(first, first + cfg.max_attempts):
            pool = [w for w in candidates if w not in excluded]
            commitments: dict[int, SigningCommitment | None]
            if attempt == first:
                commitments = {w: collected[w].observation.nonce for w in pool}
            else:
                commitments = await self._fresh_nonces(r, attempt, pool)
            ready = [w for w in pool if commitments.get(w) is not None]
            if len(ready) < ctx.threshold:
                self.metrics.rounds.labels("too_few_signers").inc()
                log.warning(
                    "round.too_few_signers",
                    round=r,
                    attempt=attempt,
                    agreeing=len(ready),
                    need=ctx.threshold,
                    excluded=sorted(excluded),
                )
                self.store.set_round_state(ctx.epoch, r, str(ctx.self_index), "failed")
                return None
            chosen = self._signers(r, ready)
            signing_set = [com for w in chosen if (com := commitments[w]) is not None]
            round_ = SigningRound.build(MIRA_EVM, ctx.public, message, signing_set)
            proposal = Proposal(report_bytes, observations, round_.commitments).encode()
            shares = await self._shares(r, attempt, round_, chosen, proposal)
            bad = [
                w
                for w, z in shares.items()
                if not verify_signature_share(round_, SignatureShare(w + 1, z))
            ]
            for w in bad:
                self._name_offender(r, attempt, w, "invalid_shares")
            missing = [w for w in chosen if w not in shares]
            excluded.update(bad)
            excluded.update(missing)
            if bad or missing:
                log.info("round.retry", round=r, attempt=attempt, bad=bad, missing=missing)
                continue
            signature = aggregate(round_, [SignatureShare(w + 1, z) for w, z in shares.items()])
            return MIRA_EVM.encode_signature(signature), chosen, attempt
        self.metrics.rounds.labels("failed").inc()
        self.store.set_round_state(ctx.epoch, r, str(ctx.self_index), "failed")
        return None

    def _signers(self, r: int, ready: list[int]) -> list[int]:
        """``threshold`` of the ready members: this node first if it is one, then the
        others in the order of the round's slot (so the load rotates)."""
        ctx = self.ctx
        me = ctx.self_index
        slot = rounds.slot_of(r, self.period_ms)
        others = sorted((w for w in ready if w != me), key=lambda w: (w - slot) % ctx.n)
        chosen = ([me] if me in ready else []) + others
        return chosen[: ctx.threshold]

    async def _shares(
        self,
        r: int,
        attempt: int,
        round_: SigningRound,
        chosen: list[int],
        proposal: bytes,
        *,
        request: MsgType = MsgType.PROPOSE,
        reply: MsgType = MsgType.SHARE,
        nonce_attempt: int | None = None,
        refused: str = "round.follower_refused",
        timeout_s: float | None = None,
    ) -> dict[int, int]:
        """Send ``proposal`` (a ``request``: the report's PROPOSE, or a pull root's) to the
        chosen signers and collect their shares (``reply``: SHARE, or a pull root's
        PULL_SHARE; unverified) within ``timeout_s`` (default
        ``sign_timeout_s``); this node's own share is computed here when it signs, spending
        its nonce of ``nonce_attempt`` (``attempt`` unless the round keeps its nonces under
        another key)."""
        ctx, cfg = self.ctx, self.config
        timeout = cfg.sign_timeout_s if timeout_s is None else timeout_s
        me = ctx.self_index
        shares: dict[int, int] = {}
        if me in chosen:
            shares[me] = ctx.signer.sign(round_).z
            self._nonces.pop((r, attempt if nonce_attempt is None else nonce_attempt), None)
        asks = {
            w: asyncio.create_task(
                self._ask(
                    ctx.peers[w],
                    request,
                    r,
                    attempt,
                    proposal,
                    frozenset({reply, MsgType.REFUSE}),
                    timeout,
                )
            )
            for w in chosen
            if w != me
        }
        for who, env in (await self._gather(asks, timeout)).items():
            if env.header.type == MsgType.REFUSE:
                log.warning(refused, round=r, member=who, reason=decode_refusal(env.payload))
                continue
            try:
                shares[who] = decode_share(env.payload)
            except MessageRejected as exc:
                self.auth.reject(exc, f"member {who}")
        return shares

    def _broadcast_report(self, r: int, payload: bytes) -> None:
        """Send the signed report to every other member (each joins the rotation)."""
        for p in self.ctx.peers:
            if p.index != self.ctx.self_index:
                self._spawn(
                    self._ask(
                        p,
                        MsgType.REPORT,
                        r,
                        0,
                        payload,
                        frozenset({MsgType.ACK}),
                        self.config.sign_timeout_s,
                    ),
                    f"report-{r}-{p.index}",
                )

    async def _fresh_nonces(
        self, r: int, attempt: int, pool: list[int]
    ) -> dict[int, SigningCommitment | None]:
        out: dict[int, SigningCommitment | None] = {}
        if self.ctx.self_index in pool:
            out[self.ctx.self_index] = self._issue_nonce(r, attempt)
        out.update(
            await self._ask_nonces(
                r, attempt, pool, MsgType.NONCE_REQUEST, self.config.observe_timeout_s
            )
        )
        return out

    async def _ask_nonces(
        self,
        r: int,
        attempt: int,
        pool: list[int],
        request: MsgType,
        timeout: float,
        *,
        reply: MsgType = MsgType.NONCE,
    ) -> dict[int, SigningCommitment]:
        """Ask every member of ``pool`` but this one for a fresh nonce commitment
        (``request``: a push or a pull round's, answered with ``reply``: NONCE or
        PULL_NONCE); the commitments that came back, each for
        the member that sent it. A commitment naming another identifier is a forgery: its
        sender is named an offender, and it is left out."""
        me = self.ctx.self_index
        asks = {
            w: asyncio.create_task(
                self._ask(
                    self.ctx.peers[w],
                    request,
                    r,
                    attempt,
                    b"",
                    frozenset({reply, MsgType.REFUSE}),
                    timeout,
                )
            )
            for w in pool
            if w != me
        }
        out: dict[int, SigningCommitment] = {}
        for who, env in (await self._gather(asks, timeout)).items():
            if env.header.type != reply:
                continue
            try:
                com = decode_commitment(env.payload)
            except MessageRejected as exc:
                self.auth.reject(exc, f"member {who}")
                continue
            if com.identifier == who + 1:
                out[who] = com
            else:
                self._name_offender(r, attempt, who, "forged_nonce")
        return out
