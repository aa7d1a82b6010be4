"""The shared core of the round protocol (oracle.reporting.protocol): its state, the chain
view and due test, and the messaging every role uses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import structlog

from oracle.config.publish import is_due
from oracle.crypto.errors import CryptoError
from oracle.crypto.nonces import SigningCommitment
from oracle.p2p.auth import Authenticator
from oracle.p2p.errors import MessageRejected, PeerUnavailable
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import Envelope, Header, MsgType
from oracle.reporting import rounds
from oracle.reporting.context import (
    EpochContext,
    FeedPolicy,
    OutputSource,
    Pending,
    ProtocolConfig,
    Refusal,
    RoundMetrics,
)
from oracle.reporting.messages import (
    Observation,
    encode_refusal,
)
from oracle.reporting.report import FeedUpdate
from oracle.reporting.store import RoundStore
from oracle.reporting.transmit import OnChainValue, ReportTransmitter

log = structlog.get_logger(__name__)
_K = TypeVar("_K")


class RoundCore:
    """The state every part of a member's round protocol shares, and what all of them use:
    the clock's rounds, the chain view (and so the due test), message headers and replies,
    nonces, asking peers, and naming offenders."""

    def __init__(
        self,
        ctx: EpochContext,
        transport: Transport,
        outputs: OutputSource,
        policies: Mapping[bytes, FeedPolicy],
        transmitter: ReportTransmitter,
        store: RoundStore,
        metrics: RoundMetrics,
        config: ProtocolConfig | None = None,
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.auth: Authenticator = transport.auth
        self.outputs = outputs
        self.policies = dict(policies)
        self.transmitter = transmitter
        self.store = store
        self.metrics = metrics
        self.config = config or ProtocolConfig()
        self._nonces: dict[tuple[int, int], SigningCommitment] = {}
        self._pending: dict[bytes, Pending] = {}
        self._onchain: dict[bytes, OnChainValue] = {}
        self._transmitting: dict[bytes, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._suspects: dict[int, float] = {}
        self.offences: dict[int, dict[str, int]] = {}  # member index → offence → count
        self.last_report_round: int | None = None
        self.reports_led = 0
        self._running = False
        self._main: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._register_handlers()

    def _register_handlers(self) -> None:
        """Each role registers the requests it answers (and calls on up the chain)."""

    @property
    def period_ms(self) -> int:
        return rounds.period_ms(self.config.round_period_s)

    def now_round(self) -> int:
        return rounds.current_round(self.period_ms)

    def leader_of(self, round_: int) -> int:
        return rounds.slot_of(round_, self.period_ms) % self.ctx.n

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll_chain(self) -> None:
        failures = 0
        while self._running:
            try:
                # the feeds of now: a model registered on-chain joins (or leaves) the
                # policies while the epoch runs (oracle.node.registered)
                self._onchain.update(await self.transmitter.latest(list(self.policies)))
                if failures:
                    log.info("chain.recovered", after_failures=failures)
                failures = 0
            except Exception as exc:
                failures += 1
                self.metrics.chain_errors.inc()
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("chain.read_failed", failures=failures, error=str(exc)[:200])
            await asyncio.sleep(self.config.chain_poll_s)

    def _reference(self, feed: bytes) -> tuple[int, int] | None:
        """(value, observed_at) a new report is compared with: the newest of the on-chain
        value and a report signed recently that may still be landing."""
        on = self._onchain.get(feed)
        pend = self._pending.get(feed)
        fresh = pend is not None and time.monotonic() - pend.seen < self.config.pending_ttl_s
        if pend is not None and fresh and (on is None or pend.round > on.round):
            return pend.value, pend.observed_at
        if on is not None and on.round > 0:
            return on.value, on.observed_at
        return None

    def is_newer(self, policy: FeedPolicy, update: FeedUpdate) -> bool:
        """Whether the contract would take ``update`` (registered, newer than what it
        holds or what is landing), due or not."""
        on = self._onchain.get(policy.feed_id)
        if on is None or not on.registered:
            # not read from the chain yet, or not registered: the contract would skip it
            # (UpdateSkipped UnregisteredFeed)
            return False
        ref = self._reference(policy.feed_id)
        return ref is None or update.observed_at > ref[1]  # else skipped as stale

    def is_due(self, policy: FeedPolicy, update: FeedUpdate) -> bool:
        if not self.is_newer(policy, update):
            return False
        ref = self._reference(policy.feed_id)
        if ref is None:
            return True
        value, observed_at = ref
        # the model runner's rule for its own outputs (oracle.config.publish), on the
        # reference the chain holds (or the report in flight)
        return is_due(
            value,
            observed_at,
            update.value,
            update.observed_at,
            deviation_bps=policy.deviation_bps,
            heartbeat=policy.heartbeat_s,
            deviation_abs=policy.deviation_abs,
        )

    def _header(self, msg_type: MsgType, round_: int, attempt: int = 0) -> Header:
        return Header(
            msg_type,
            self.ctx.chain_id,
            self.ctx.oracle,
            self.ctx.epoch,
            round_,
            attempt,
            self.ctx.self_index,
        )

    def _reply(self, request: Envelope, msg_type: MsgType, payload: bytes) -> bytes:
        h = request.header
        return self.transport.seal(self._header(msg_type, h.round, h.attempt), payload)

    def _refuse(self, request: Envelope, refusal: Refusal) -> bytes:
        self.metrics.refusals.labels(refusal.reason).inc()
        # a part past a member's outputs is routine (the leader asks as many parts as its
        # own feeds fill): counted, not a warning per part per round
        (log.debug if refusal.reason == "no_such_part" else log.warning)(
            "round.refused",
            reason=refusal.reason,
            detail=refusal.detail,
            round=request.header.round,
            type=request.header.type.name,
            leader=request.header.sender,
        )
        return self._reply(
            request, MsgType.REFUSE, encode_refusal(f"{refusal.reason}: {refusal.detail}")
        )

    def _issue_nonce(self, round_: int, attempt: int) -> SigningCommitment:
        """A fresh nonce commitment for (round, attempt); drops this node's unused old ones
        (their secrets are erased, so they can never be used).

        At most one per (round, attempt), whichever request asks (OBSERVE or NONCE_REQUEST):
        every pair in the signer's pool is then one of ``self._nonces``, so the pruning
        below erases it in time and the pool stays bounded by the rounds a leader may ask
        about times the attempts."""
        if (round_, attempt) in self._nonces:
            raise Refusal("nonce", f"a nonce for {round_}.{attempt} was already issued")
        floor = self.now_round() - 16 * self.period_ms
        for key in [k for k in self._nonces if k[0] < floor]:
            stale = self._nonces.pop(key)
            with contextlib.suppress(CryptoError):  # already consumed by a signature
                self.ctx.signer.pool.take(stale).erase()
        com = self.ctx.signer.commit()
        self._nonces[(round_, attempt)] = com
        return com

    async def _observation(self, round_: int, attempt: int) -> Observation:
        await self.outputs.make_durable()  # never send what a crash could take back
        # Only what a push report can carry: the feeds the oracle has registered (as this
        # node last read it), each asked for alone. A pull root's outputs travel in their
        # own observation, in parts (oracle.reporting.pull_round), so thousands of
        # pull-only feeds cost the push round nothing, not even their latest updates.
        policies, latest = self.policies, self.outputs.latest_output
        registered = sorted(f for f, on in self._onchain.items() if on.registered and f in policies)
        updates = tuple(u for f in registered if (u := latest(f)) is not None)
        return Observation(updates, self._issue_nonce(round_, attempt))

    async def _ask(
        self,
        peer: Peer,
        msg_type: MsgType,
        round_: int,
        attempt: int,
        payload: bytes,
        expect: frozenset[MsgType],
        timeout: float,
    ) -> Envelope | None:
        try:
            return await self.transport.send(
                peer,
                self._header(msg_type, round_, attempt),
                payload,
                timeout=timeout,
                expect=expect,
            )
        except (PeerUnavailable, MessageRejected) as exc:
            log.debug("round.peer_failed", peer=peer.index, type=msg_type.name, error=str(exc))
            return None

    async def _gather(
        self, asks: dict[_K, asyncio.Task[Envelope | None]], timeout: float
    ) -> dict[_K, Envelope]:
        if not asks:
            return {}
        done, pending = await asyncio.wait(asks.values(), timeout=timeout)
        for t in pending:
            t.cancel()
        out = {}
        for who, t in asks.items():
            if t in done and not t.cancelled() and t.exception() is None:
                env = t.result()
                if env is not None:
                    out[who] = env
        return out

    def _name_offender(self, r: int, attempt: int, who: int, offence: str) -> None:
        """Name a member for misbehaviour only it can have committed, because the evidence
        is signed by it: an invalid share (it did not verify against the member's public
        verification share), a forged nonce identifier (in its signed observation or
        nonce), a proposal whose report is not the median of its own embedded observations
        (``LEADER_OFFENCES``). It is passed over for ``suspect_s`` while enough others
        agree."""
        counts = self.offences.setdefault(who, {})
        counts[offence] = counts.get(offence, 0) + 1
        self._suspects[who] = time.monotonic() + self.config.suspect_s
        if offence == "invalid_shares":
            self.metrics.invalid_shares.labels(str(who)).inc()
        self.metrics.offences.labels(str(who), offence).inc()
        log.error(
            "round.offence",
            offence=offence,
            round=r,
            attempt=attempt,
            member=who,
            operator=self.ctx.operators[who],
        )

    @property
    def bad_signers(self) -> dict[int, int]:
        """Members named for invalid signature shares → how many."""
        return {
            who: c["invalid_shares"] for who, c in self.offences.items() if "invalid_shares" in c
        }
