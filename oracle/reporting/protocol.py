"""The reporting round: observe → median report → follower checks → FROST shares →
aggregate → rotating transmission.

Rounds are numbered by the clock: a round is the start of its slot in unix milliseconds
(``oracle.reporting.rounds``), so every member agrees on the round and its leader
``members[slot mod n]`` without a consensus step, a restarted node never reuses a round
number, changing the period never moves rounds backwards, and a dead leader costs one
round, not a view change.

One round, as the leader L runs it:

1. L asks every member for an OBSERVATION: its latest output per feed (value, observation
   time, model commitment) and a fresh FROST nonce commitment (pre-published, so signing
   needs no extra round trip). Each observation is signed by its author.
2. With observations from at least 2f+1 members, L takes for each feed the lower median
   of the observed values (an actual observation, so its time and model commitment come
   with it; with at most f liars among ≥ 2f+1 values the median lies within the honest
   range). Feeds that are due — deviation from the last reported value ≥ the feed's
   ``deviation_bps``, or its heartbeat elapsed — go into one report.
3. L chooses t signers among the members whose own observations agree with the report
   within each feed's tolerance, and sends them a PROPOSAL: the report, every signed
   observation it was computed from, and the signers' nonce commitments.
4. A follower signs only if (cheapest checks first, so a flood of proposals costs little):
   the proposal comes from the round's leader, for an attempt ≤ ``max_attempts``; its
   nonce commitment is the one it issued for this (round, attempt); each observation (at
   most n, no author twice) is authentic, of this round, and the report is exactly their
   median; *its own output* for the same observation time (or, if it has none for that
   second, its latest, whose time must then lie within the feed's ``max_skew_s``) is
   within ``tolerance_bps`` of every value — a replayed or fast-moving feed may have moved
   on by one row between the leader's OBSERVE and its PROPOSAL; the model commitment is
   its own for that very observation (a model is deterministic; without that output it
   cannot check and refuses) or, for feeds without a model, the static one — the median's
   author alone must not choose what goes on-chain; and it has not signed a different
   report for this round (durably recorded). The nonce pair is marked used in the
   database before the share is computed (oracle.crypto.frost.Signer).
5. L verifies every share. A bad one names its signer (log, metric, API); L retries with
   fresh nonces from the honest members, up to ``max_attempts``. A member whose nonce
   commitment carries another identifier than its own is named the same way and left out
   (it would make the signing set invalid for everyone). L applies the followers' checks
   to each median first and leaves out an observation whose time or model commitment
   they would refuse.
6. L broadcasts the signed report. Transmitters rotate: ``members[(r+1+k) mod n]`` sends
   after ``k · transmit_timeout_s`` unless the report is on-chain by then, so no single
   node can stall a feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from oracle.chain.oracle_calls import signature_struct
from oracle.crypto.errors import CryptoError
from oracle.crypto.frost import (
    PublicKeyPackage,
    SignatureShare,
    Signer,
    SigningRound,
    aggregate,
    verify_signature_share,
)
from oracle.crypto.nonces import SigningCommitment
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.auth import Authenticator
from oracle.p2p.errors import MessageRejected, PeerUnavailable
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import (
    Envelope,
    Header,
    MsgType,
    Observation,
    Proposal,
    SignedReport,
    decode_commitment,
    decode_refusal,
    decode_share,
    encode_commitment,
    encode_refusal,
    encode_share,
    peek_header,
    unseal,
)
from oracle.reporting import rounds
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.report import FeedUpdate, Report, decode, digest, encode
from oracle.reporting.store import RoundStore, report_hash
from oracle.reporting.transmit import Fate, OnChainValue, ReportTransmitter

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FeedPolicy:
    """What the protocol needs to know about one feed."""

    feed_id: bytes
    name: str
    deviation_bps: int
    heartbeat_s: int
    tolerance_bps: int
    static_commitment: bytes | None  # feeds without a model: every honest node has this one
    # How far a proposed observedAt may lie from this node's own latest output when it has
    # no output of that very second: two honest members' latest outputs differ by about one
    # poll interval, and a liar gains no more than this (it goes on-chain as the time).
    max_skew_s: int = 10


class OutputSource(Protocol):
    """A node's own latest outputs (observed_at in unix seconds)."""

    def latest_outputs(self) -> dict[bytes, FeedUpdate]: ...

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        """This node's own recent output of ``feed_id`` observed at that second, if any."""
        ...

    def make_durable(self) -> None:
        """Store everything an observation sent to a peer is based on."""
        ...


@dataclass(frozen=True)
class EpochContext:
    chain_id: int
    oracle: bytes  # 20-byte contract address
    epoch: int
    peers: tuple[Peer, ...]  # every member, by index (this node included)
    operators: tuple[str, ...]
    self_index: int
    public: PublicKeyPackage
    signer: Signer

    @property
    def n(self) -> int:
        return len(self.peers)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        return 2 * self.f + 1

    @property
    def threshold(self) -> int:
        return self.public.threshold


@dataclass(frozen=True)
class ProtocolConfig:
    round_period_s: float = 0.25
    observe_timeout_s: float = 0.2
    sign_timeout_s: float = 0.4
    transmit_timeout_s: float = 3.0
    max_attempts: int = 3
    reobserve_after_s: float = 0.15
    pending_ttl_s: float = 8.0
    report_max_age_s: float = 60.0
    chain_poll_s: float = 0.5
    suspect_s: float = 60.0


class RoundMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "mira_rounds", "Rounds led by this node, by outcome", ["outcome"], registry=registry
        )
        self.refusals = Counter(
            "mira_round_refusals",
            "Proposals or requests this node refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.invalid_shares = Counter(
            "mira_invalid_signature_shares",
            "Invalid FROST signature shares received, by signer index",
            ["signer"],
            registry=registry,
        )
        self.offences = Counter(
            "mira_round_offences",
            "Provable misbehaviour by a member (it is excluded from the round), by kind",
            ["member", "offence"],
            registry=registry,
        )
        self.dropped_observations = Counter(
            "mira_round_dropped_observations",
            "Leader: observations left out of a report because this node would refuse "
            "their median, by reason",
            ["reason"],
            registry=registry,
        )
        self.transmissions = Counter(
            "mira_transmissions", "Transmission attempts by fate", ["fate"], registry=registry
        )
        self.chain_errors = Counter(
            "mira_chain_read_errors", "Failed chain reads", registry=registry
        )
        self.round_seconds = Histogram(
            "mira_round_seconds",
            "Leader: round start to aggregated signature",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
        )


class Refusal(Exception):
    """A follower will not contribute; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class _Pending:
    round: int
    value: int
    observed_at: int
    seen: float  # monotonic


@dataclass
class _Collected:
    raw: bytes
    observation: Observation
    by_feed: dict[bytes, FeedUpdate] = field(default_factory=dict)


#: Refusals of what the median's author alone chose (not the value, which the median
#: bounds by the honest observations).
_AUTHOR_CHOICES = frozenset(
    {"observed_at_skew", "unverifiable_commitment", "model_commitment", "future_observation"}
)


#: Refusals only the proposing leader can have caused, so they name it: the report is not
#: the lower median of the observations the leader itself embedded, each signed by its
#: author and checked here; anyone holding the proposal recomputes that median, so the
#: evidence is the leader's own message (a liar proposing its own value is caught here).
_LEADER_OFFENCES = frozenset({"not_median"})


def _within_bps(a: int, b: int, bps: int) -> bool:
    """|a − b| ≤ bps/10⁴ · |b| in exact integer arithmetic."""
    return abs(a - b) * 10_000 <= bps * abs(b)


def lower_median(values: list[tuple[int, int, FeedUpdate]]) -> FeedUpdate:
    """The lower median of (value, member index, update), ties broken by member index."""
    ordered = sorted(values, key=lambda v: (v[0], v[1]))
    return ordered[(len(ordered) - 1) // 2][2]


class RoundProtocol:
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
        self._pending: dict[bytes, _Pending] = {}
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
        transport.on(MsgType.OBSERVE, self._on_observe)
        transport.on(MsgType.PROPOSE, self._on_propose)
        transport.on(MsgType.NONCE_REQUEST, self._on_nonce_request)
        transport.on(MsgType.REPORT, self._on_report)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._resume_transmissions()
        self._poller = asyncio.create_task(self._poll_chain(), name="chain-poll")
        self._main = asyncio.create_task(self._run(), name="rounds")

    async def stop(self) -> None:
        self._running = False
        tasks = [t for t in (self._main, self._poller) if t is not None]
        tasks += list(self._tasks) + list(self._transmitting.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    async def _run(self) -> None:
        period = self.period_ms
        next_round = self.now_round() + period
        while self._running:
            await asyncio.sleep(max(0.0, next_round / 1000 - time.time()))
            r = next_round
            next_round = max(r + period, self.now_round() + period)
            if self.leader_of(r) == self.ctx.self_index:
                self._spawn(self._lead_safely(r), f"lead-{r}")

    async def _lead_safely(self, r: int) -> None:
        try:
            await self.lead(r)
        except Exception as exc:
            self.metrics.rounds.labels("error").inc()
            log.exception("round.failed", round=r, error=str(exc))

    # -- chain view -----------------------------------------------------------------------

    async def _poll_chain(self) -> None:
        feeds = list(self.policies)
        failures = 0
        while self._running:
            try:
                self._onchain.update(await self.transmitter.latest(feeds))
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

    def is_due(self, policy: FeedPolicy, update: FeedUpdate) -> bool:
        on = self._onchain.get(policy.feed_id)
        if on is None or not on.registered:
            # not read from the chain yet, or not registered: the contract would skip it
            # (UpdateSkipped UnregisteredFeed)
            return False
        ref = self._reference(policy.feed_id)
        if ref is None:
            return True
        value, observed_at = ref
        if update.observed_at <= observed_at:
            return False  # the contract would skip it as stale
        if update.observed_at - observed_at >= policy.heartbeat_s:
            return True
        if update.value == value:
            return False
        if value == 0:
            return True
        return abs(update.value - value) * 10_000 >= policy.deviation_bps * abs(value)

    # -- messages -------------------------------------------------------------------------

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
        log.warning(
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

    def _check_leader(self, env: Envelope) -> None:
        h = env.header
        if h.epoch != self.ctx.epoch:
            raise Refusal("wrong_epoch", f"epoch {h.epoch}, active epoch is {self.ctx.epoch}")
        if h.sender != self.leader_of(h.round):
            raise Refusal("not_leader", f"member {h.sender} is not the leader of round {h.round}")
        # An honest leader's attempts are 0 (1 when it observes again) up to max_attempts
        # (see lead): more would only let a leader make this node issue nonces and check
        # proposals for attempts no round uses.
        if h.attempt > self.config.max_attempts:
            raise Refusal("attempt", f"attempt {h.attempt} > {self.config.max_attempts}")
        now, period = self.now_round(), self.period_ms
        if not now - 8 * period <= h.round <= now + 2 * period:
            raise Refusal("stale_round", f"round {h.round}, current round is {now}")

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

    def _observation(self, round_: int, attempt: int) -> Observation:
        self.outputs.make_durable()  # never send what a crash could take back
        outs = self.outputs.latest_outputs()
        updates = tuple(outs[f] for f in sorted(outs) if f in self.policies)
        return Observation(updates, self._issue_nonce(round_, attempt))

    async def _on_observe(self, env: Envelope) -> bytes:
        try:
            self._check_leader(env)
            obs = self._observation(env.header.round, env.header.attempt)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.OBSERVATION, obs.encode())

    async def _on_nonce_request(self, env: Envelope) -> bytes:
        try:
            self._check_leader(env)
            com = self._issue_nonce(env.header.round, env.header.attempt)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.NONCE, encode_commitment(com))

    async def _on_propose(self, env: Envelope) -> bytes:
        try:
            self._check_leader(env)
            share = self._check_and_sign(env)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.SHARE, encode_share(share))

    def _decode_report(self, round_: int, proposal: Proposal) -> Report:
        try:
            report = decode(proposal.report)
        except ReportFormatError as exc:
            raise Refusal("malformed", str(exc)) from None
        if report.epoch != self.ctx.epoch or report.round != round_:
            raise Refusal(
                "wrong_round",
                f"report for epoch {report.epoch} round {report.round}, "
                f"message for {self.ctx.epoch}/{round_}",
            )
        return report

    def _embedded_observations(
        self, round_: int, proposal: Proposal
    ) -> dict[int, dict[bytes, FeedUpdate]]:
        """The signed observations a proposal carries, by author.

        Their authors did not send them to this node, so checking them spends none of
        the authors' rate (and is no replay: the leader relays them). What they cost this
        node is one signature recovery each, so first, from the headers alone: at most n
        of them, each an OBSERVATION of this epoch and round, no author twice. A leader
        can then make this node recover at most n signatures per PROPOSE it sends, and
        its PROPOSEs spend its own rate."""
        if len(proposal.observations) > self.ctx.n:
            raise Refusal(
                "bad_observation",
                f"{len(proposal.observations)} observations, the committee has {self.ctx.n}",
            )
        authors: set[int] = set()
        for raw in proposal.observations:
            try:
                h = peek_header(raw, max_bytes=self.auth.max_bytes)
            except MessageRejected as exc:
                raise Refusal("bad_observation", f"{exc.reason}: {exc.detail}") from None
            if h.type != MsgType.OBSERVATION or (h.epoch, h.round) != (self.ctx.epoch, round_):
                raise Refusal(
                    "bad_observation", f"{h.type.name} of {h.epoch}/{h.round} in proposal"
                )
            if h.sender in authors:
                raise Refusal("bad_observation", f"two observations by member {h.sender}")
            authors.add(h.sender)
        collected: dict[int, dict[bytes, FeedUpdate]] = {}
        for raw in proposal.observations:
            try:
                obs_env = unseal(raw, max_bytes=self.auth.max_bytes)
                self.auth.authenticate(obs_env)
                observation = Observation.decode(obs_env.payload)
            except MessageRejected as exc:
                raise Refusal("bad_observation", f"{exc.reason}: {exc.detail}") from None
            collected[obs_env.header.sender] = {u.feed_id: u for u in observation.outputs}
        if len(collected) < self.ctx.quorum:
            raise Refusal(
                "too_few_observations", f"{len(collected)} observations, need {self.ctx.quorum}"
            )
        return collected

    def check_update(
        self, policy: FeedPolicy, update: FeedUpdate, mine: Mapping[bytes, FeedUpdate]
    ) -> None:
        """Would this node put ``update`` on-chain as ``policy``'s value? Raise a Refusal
        if not. The median's author alone chose the update's time and model commitment, so
        both are checked against this node's own output, not only the value:

        * With an output of that very second, the value is within tolerance of it and the
          commitment is its commitment (a model feed is deterministic: every honest node
          that consumed the same observations holds the same state).
        * Without one (the feed moved on past its recent outputs, or this node is behind),
          the time must lie within ``max_skew_s`` of its latest output and the value within
          tolerance of that; a model's commitment cannot be checked then, so it refuses.
        * A feed without a model has one commitment everywhere, the static one.
        """
        own = self.outputs.output_at(update.feed_id, update.observed_at)
        if own is None:
            own = mine.get(update.feed_id)
            if own is None:
                raise Refusal("no_own_output", f"{policy.name}: this node has no output yet")
            if abs(update.observed_at - own.observed_at) > policy.max_skew_s:
                raise Refusal(
                    "observed_at_skew",
                    f"{policy.name}: observedAt {update.observed_at}, own latest "
                    f"{own.observed_at}, bound {policy.max_skew_s} s",
                )
        if not _within_bps(update.value, own.value, policy.tolerance_bps):
            raise Refusal(
                "disagrees_with_own_output",
                f"{policy.name}: proposed {update.value}, own output {own.value}, "
                f"tolerance {policy.tolerance_bps} bps",
            )
        if policy.static_commitment is not None:
            expected = policy.static_commitment
        elif own.observed_at == update.observed_at:
            expected = own.model_commitment
        else:
            raise Refusal(
                "unverifiable_commitment",
                f"{policy.name}: no own output observed at {update.observed_at} to check "
                "the model commitment against",
            )
        if update.model_commitment != expected:
            raise Refusal(
                "model_commitment",
                f"{policy.name}: commitment 0x{update.model_commitment.hex()[:16]}…, own "
                f"0x{expected.hex()[:16]}…",
            )
        if update.observed_at > time.time() + 30:
            raise Refusal("future_observation", f"{policy.name}: observedAt in the future")

    def verify_proposal(self, round_: int, proposal: Proposal) -> Report:
        """Everything a follower checks about the report (see the module docstring)."""
        report = self._decode_report(round_, proposal)
        collected = self._embedded_observations(round_, proposal)
        mine = self.outputs.latest_outputs()
        for update in report.updates:
            policy = self.policies.get(update.feed_id)
            if policy is None:
                raise Refusal("unknown_feed", f"feed 0x{update.feed_id.hex()} is not served here")
            values = [
                (obs[update.feed_id].value, who, obs[update.feed_id])
                for who, obs in collected.items()
                if update.feed_id in obs
            ]
            if len(values) < self.ctx.quorum:
                raise Refusal("too_few_observations", f"{policy.name}: {len(values)} observations")
            if lower_median(values) != update:
                raise Refusal(
                    "not_median",
                    f"{policy.name}: {update.value} is not the median of the observations",
                )
            self.check_update(policy, update, mine)
        return report

    def _check_and_sign(self, env: Envelope) -> int:
        h = env.header
        try:
            proposal = Proposal.decode(env.payload)
        except MessageRejected as exc:
            raise Refusal("malformed", exc.detail) from None
        # Cheap checks first: a proposal for an attempt this node issued no nonce for is
        # refused before any of its observations' signatures is recovered.
        self._decode_report(h.round, proposal)
        issued = self._nonces.get((h.round, h.attempt))
        me = self.ctx.self_index + 1
        mine = [c for c in proposal.commitments if c.identifier == me]
        if issued is None or mine != [issued]:
            raise Refusal("nonce", f"no commitment issued by this node for {h.round}.{h.attempt}")
        try:
            self.verify_proposal(h.round, proposal)
        except Refusal as refusal:
            if refusal.reason in _LEADER_OFFENCES:
                self._name_offender(h.round, h.attempt, h.sender, refusal.reason)
            raise
        message = digest(self.ctx.chain_id, self.ctx.oracle, self.ctx.epoch, proposal.report)
        try:
            round_ = SigningRound.build(MIRA_EVM, self.ctx.public, message, proposal.commitments)
        except CryptoError as exc:
            raise Refusal("signing_set", str(exc)) from None
        # One report per round, durably: a leader cannot get shares for two reports.
        if not self.store.commit_to_report(self.ctx.epoch, h.round, proposal.report):
            raise Refusal("equivocation", f"already signed another report for round {h.round}")
        try:
            share = self.ctx.signer.sign(round_)  # marks the nonce used before computing
        except CryptoError as exc:
            raise Refusal("nonce", str(exc)) from None
        finally:
            self._nonces.pop((h.round, h.attempt), None)
        self.store.set_round_state(self.ctx.epoch, h.round, str(h.sender), "signed")
        return share.z

    # -- leader ---------------------------------------------------------------------------

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
        self, asks: dict[int, asyncio.Task[Envelope | None]], timeout: float
    ) -> dict[int, Envelope]:
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

    async def _observe_round(
        self, r: int, attempt: int
    ) -> tuple[dict[int, _Collected], tuple[FeedUpdate, ...], list[int]] | None:
        """Collect observations; return them, the due medians and the agreeing members."""
        ctx, cfg = self.ctx, self.config
        me = ctx.self_index
        own = self._observation(r, attempt)
        collected: dict[int, _Collected] = {
            me: _Collected(
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
            collected[who] = _Collected(env.raw, obs)
        for c in collected.values():
            c.by_feed = {u.feed_id: u for u in c.observation.outputs}
        if len(collected) < ctx.quorum:
            self.metrics.rounds.labels("no_quorum").inc()
            log.info("round.no_quorum", round=r, observations=len(collected), need=ctx.quorum)
            return None

        updates = self._due_medians(r, collected)
        if not updates:
            self.metrics.rounds.labels("nothing_due").inc()
            return None

        def agrees(who: int) -> bool:
            feeds = collected[who].by_feed
            return all(
                u.feed_id in feeds
                and _within_bps(
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
        candidates = trusted if len(trusted) >= ctx.threshold else agreeing
        return collected, tuple(updates), candidates

    def _due_medians(self, r: int, collected: dict[int, _Collected]) -> list[FeedUpdate]:
        """The due feeds' medians, none with a time or model commitment this node refuses.

        A median whose time or commitment this node refuses (check_update) would be refused
        by the honest followers too — that is the median's author choosing what goes
        on-chain — so its author's observation is left out of the round and the medians
        computed again; when no observation can be spared (quorum), only that feed waits.
        Each pass removes one observation or one feed, so this ends after at most
        n + feeds passes. (A leader whose own feed is stale by more than ``max_skew_s``
        thus reports nothing for it: the other leaders' rounds do.)"""
        ctx = self.ctx
        mine = self.outputs.latest_outputs()
        skipped: set[bytes] = set()
        while True:
            updates, refused = [], None
            for feed_id in sorted(set(self.policies) - skipped):
                policy = self.policies[feed_id]
                values = [
                    (c.by_feed[feed_id].value, who, c.by_feed[feed_id])
                    for who, c in collected.items()
                    if feed_id in c.by_feed
                ]
                if len(values) < ctx.quorum:
                    continue
                median = lower_median(values)
                if not self.is_due(policy, median):
                    continue
                try:
                    self.check_update(policy, median, mine)
                except Refusal as exc:
                    if exc.reason not in _AUTHOR_CHOICES:
                        # A value off this node's own output (or no output here): this
                        # node may be the outlier, so the followers decide, as always.
                        updates.append(median)
                        continue
                    author = next(who for _, who, u in values if u is median)
                    refused = (feed_id, author, exc)
                    break
                updates.append(median)
            if refused is None:
                return updates
            feed_id, author, why = refused
            self.metrics.dropped_observations.labels(why.reason).inc()
            log.warning(
                "round.median_refused", round=r, member=author, reason=why.reason, detail=why.detail
            )
            if len(collected) > ctx.quorum and author != ctx.self_index:
                del collected[author]
            else:
                skipped.add(feed_id)

    async def lead(self, r: int) -> Report | None:
        """Run round ``r`` as its leader; return the aggregated report, if any."""
        started = time.perf_counter()
        ctx, cfg = self.ctx, self.config
        me = ctx.self_index
        observed = await self._observe_round(r, 0)
        if observed is None:
            return None
        first = 0
        if len(observed[2]) < ctx.threshold and cfg.reobserve_after_s > 0:
            # Right after a source moves, some members have not polled it yet and disagree
            # with the new median: look again once instead of wasting the round.
            await asyncio.sleep(cfg.reobserve_after_s)
            again = await self._observe_round(r, 1)
            if again is None:
                return None
            observed, first = again, 1
        collected, updates, candidates = observed
        report = Report(ctx.epoch, r, updates)
        report_bytes = encode(report)
        message = digest(ctx.chain_id, ctx.oracle, ctx.epoch, report_bytes)
        self.store.set_round_state(ctx.epoch, r, str(me), "proposing")
        if not self.store.commit_to_report(ctx.epoch, r, report_bytes):
            log.error("round.equivocation_avoided", round=r)
            return None
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
                self.store.set_round_state(ctx.epoch, r, str(me), "failed")
                return None
            slot = rounds.slot_of(r, self.period_ms)
            others = sorted((w for w in ready if w != me), key=lambda w: (w - slot) % ctx.n)
            chosen = ([me] if me in ready else []) + others
            chosen = chosen[: ctx.threshold]
            signing_set = [com for w in chosen if (com := commitments[w]) is not None]
            round_ = SigningRound.build(MIRA_EVM, ctx.public, message, signing_set)
            proposal = Proposal(report_bytes, observations, round_.commitments).encode()
            shares: dict[int, int] = {}
            if me in chosen:
                shares[me] = self.ctx.signer.sign(round_).z
                self._nonces.pop((r, attempt), None)
            asks = {
                w: asyncio.create_task(
                    self._ask(
                        ctx.peers[w],
                        MsgType.PROPOSE,
                        r,
                        attempt,
                        proposal,
                        frozenset({MsgType.SHARE, MsgType.REFUSE}),
                        cfg.sign_timeout_s,
                    )
                )
                for w in chosen
                if w != me
            }
            for who, env in (await self._gather(asks, cfg.sign_timeout_s)).items():
                if env.header.type == MsgType.REFUSE:
                    log.warning(
                        "round.follower_refused",
                        round=r,
                        member=who,
                        reason=decode_refusal(env.payload),
                    )
                    continue
                try:
                    shares[who] = decode_share(env.payload)
                except MessageRejected as exc:
                    self.auth.reject(exc, f"member {who}")
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
            encoded = MIRA_EVM.encode_signature(signature)
            self.metrics.round_seconds.observe(time.perf_counter() - started)
            self.metrics.rounds.labels("signed").inc()
            self.reports_led += 1
            self.store.save_signed(ctx.epoch, r, report_bytes, encoded)
            self.store.set_round_state(ctx.epoch, r, str(me), "aggregated")
            log.info(
                "round.signed",
                round=r,
                feeds=len(updates),
                signers=chosen,
                attempt=attempt,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            payload = SignedReport(report_bytes, encoded).encode()
            for p in ctx.peers:
                if p.index != me:
                    self._spawn(
                        self._ask(
                            p,
                            MsgType.REPORT,
                            r,
                            0,
                            payload,
                            frozenset({MsgType.ACK}),
                            cfg.sign_timeout_s,
                        ),
                        f"report-{r}-{p.index}",
                    )
            self._accept_report(report, report_bytes, encoded)
            return report
        self.metrics.rounds.labels("failed").inc()
        self.store.set_round_state(ctx.epoch, r, str(me), "failed")
        return None

    def _name_offender(self, r: int, attempt: int, who: int, offence: str) -> None:
        """Name a member for misbehaviour only it can have committed, because the evidence
        is signed by it: an invalid share (it did not verify against the member's public
        verification share), a forged nonce identifier (in its signed observation or
        nonce), a proposal whose report is not the median of its own embedded observations
        (``_LEADER_OFFENCES``). It is passed over for ``suspect_s`` while enough others
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

    async def _fresh_nonces(
        self, r: int, attempt: int, pool: list[int]
    ) -> dict[int, SigningCommitment | None]:
        out: dict[int, SigningCommitment | None] = {}
        me = self.ctx.self_index
        if me in pool:
            out[me] = self._issue_nonce(r, attempt)
        asks = {
            w: asyncio.create_task(
                self._ask(
                    self.ctx.peers[w],
                    MsgType.NONCE_REQUEST,
                    r,
                    attempt,
                    b"",
                    frozenset({MsgType.NONCE, MsgType.REFUSE}),
                    self.config.observe_timeout_s,
                )
            )
            for w in pool
            if w != me
        }
        for who, env in (await self._gather(asks, self.config.observe_timeout_s)).items():
            if env.header.type != MsgType.NONCE:
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

    # -- reports and transmission -----------------------------------------------------------

    async def _on_report(self, env: Envelope) -> bytes:
        h = env.header
        try:
            if h.epoch != self.ctx.epoch or h.sender != self.leader_of(h.round):
                raise Refusal("not_leader", f"REPORT for round {h.round} from member {h.sender}")
            signed = SignedReport.decode(env.payload)
            report = decode(signed.report)
            if report.epoch != self.ctx.epoch or report.round != h.round:
                raise Refusal("wrong_round", "report does not match the message's round")
            message = digest(self.ctx.chain_id, self.ctx.oracle, self.ctx.epoch, signed.report)
            # Only a report the group key signed is worth gas; a leader cannot fake one.
            if not MIRA_EVM.verify(self.ctx.public.group_key, message, signed.signature):
                raise Refusal("bad_report_signature", f"round {h.round}")
        except MessageRejected as exc:
            return self._refuse(env, Refusal("malformed", exc.detail))
        except (Refusal, ReportFormatError) as exc:
            refusal = exc if isinstance(exc, Refusal) else Refusal("malformed", str(exc))
            return self._refuse(env, refusal)
        self.store.save_signed(self.ctx.epoch, h.round, signed.report, signed.signature)
        self._accept_report(report, signed.report, signed.signature)
        return self._reply(env, MsgType.ACK, b"")

    def _accept_report(self, report: Report, report_bytes: bytes, signature: bytes) -> None:
        now = time.monotonic()
        for u in report.updates:
            prev = self._pending.get(u.feed_id)
            if prev is None or prev.round < report.round:
                self._pending[u.feed_id] = _Pending(report.round, u.value, u.observed_at, now)
        self.last_report_round = max(self.last_report_round or 0, report.round)
        key = report_hash(report_bytes)
        if key in self._transmitting:
            return
        task = asyncio.create_task(
            self._transmit(report, report_bytes, signature, time.time()), name=f"tx-{report.round}"
        )
        self._transmitting[key] = task
        task.add_done_callback(lambda _: self._transmitting.pop(key, None))

    def _resume_transmissions(self) -> None:
        """After a restart: resume the duty for recent signed reports (each is checked
        on-chain first, and a report this node already sent is never sent again)."""
        since = int((time.time() - self.config.report_max_age_s) * 1000)
        for row in self.store.signed_reports_since(self.ctx.epoch, since):
            if row.signature is None:
                continue
            try:
                report = decode(row.payload)
            except ReportFormatError:
                continue
            self._accept_report(report, row.payload, row.signature)

    async def landed(self, report: Report) -> bool:
        latest = await self.transmitter.latest([u.feed_id for u in report.updates])
        # an unregistered feed never lands (the contract skips it): do not wait for it
        return all(
            not v.registered or v.round >= report.round
            for v in (latest[u.feed_id] for u in report.updates)
        )

    async def _transmit(
        self, report: Report, report_bytes: bytes, signature: bytes, created: float
    ) -> None:
        ctx, cfg = self.ctx, self.config
        slot = rounds.slot_of(report.round, self.period_ms)
        order = [(slot + 1 + k) % ctx.n for k in range(ctx.n)]
        position = order.index(ctx.self_index)
        # The designated transmitter sends at once; member k of the rotation waits k
        # timeouts, then sends only if the report is still not on-chain.
        await asyncio.sleep(position * cfg.transmit_timeout_s)
        message = digest(ctx.chain_id, ctx.oracle, ctx.epoch, report_bytes)
        sig = signature_struct(ctx.public.group_key, message, signature)
        while self._running and time.time() - created < cfg.report_max_age_s:
            try:
                if await self.landed(report):
                    return
            except Exception as exc:
                self.metrics.chain_errors.inc()
                log.debug("transmit.check_failed", round=report.round, error=str(exc)[:200])
                await asyncio.sleep(0.5)
                continue
            # The transmitter's durable queue is the record, keyed by the report hash:
            # submitting again returns the same transmission, never a second send.
            result = await self.transmitter.submit(report_bytes, sig, report.round)
            self.metrics.transmissions.labels(result.fate.value).inc()
            log.info(
                "transmit.result",
                round=report.round,
                fate=result.fate.value,
                position=position,
                gas=result.gas_used,
                detail=result.detail[:200],
            )
            if result.fate in (Fate.LANDED, Fate.ALREADY_APPLIED, Fate.REJECTED):
                return
            await asyncio.sleep(0.5)

    def status(self) -> dict[str, object]:
        return {
            "epoch": self.ctx.epoch,
            "self_index": self.ctx.self_index,
            "n": self.ctx.n,
            "threshold": self.ctx.threshold,
            "round": self.now_round(),
            "last_report_round": self.last_report_round,
            "reports_led": self.reports_led,
            # every member named for an offence, with counts by kind
            "bad_signers": {
                str(i): {**counts, "operator": self.ctx.operators[i]}
                for i, counts in sorted(self.offences.items())
            },
            "transmitting": len(self._transmitting),
        }
