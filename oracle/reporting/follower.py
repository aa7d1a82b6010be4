"""The follower's side of a round: what a member answers, and what it signs."""

from __future__ import annotations

import time
from collections.abc import Mapping

from oracle.config.publish import within_bps
from oracle.crypto.errors import CryptoError
from oracle.crypto.frost import (
    SigningRound,
)
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import Envelope, MsgType, peek_header, unseal
from oracle.reporting.context import (
    LEADER_OFFENCES,
    FeedPolicy,
    Refusal,
    lower_median,
)
from oracle.reporting.core import RoundCore
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.messages import (
    Observation,
    Proposal,
    encode_commitment,
    encode_share,
)
from oracle.reporting.report import FeedUpdate, Report, decode, digest


class Follower(RoundCore):
    """A member answering the round's leader: observations, nonces, and a signature share
    only for a proposal that passes every check (see oracle.reporting.protocol, step 4)."""

    def _register_handlers(self) -> None:
        super()._register_handlers()
        self.transport.on(MsgType.OBSERVE, self._on_observe)
        self.transport.on(MsgType.PROPOSE, self._on_propose)
        self.transport.on(MsgType.NONCE_REQUEST, self._on_nonce_request)

    def _check_leader(
        self, env: Envelope, max_attempt: int | None = None, max_age_periods: int = 8
    ) -> None:
        """The request comes from the round's leader, for a recent round (at most
        ``max_age_periods`` back), with an attempt number an honest leader uses
        (``max_attempt``: where the attempt byte is a part index, oracle.reporting.pull_parts)."""
        h = env.header
        if h.epoch != self.ctx.epoch:
            raise Refusal("wrong_epoch", f"epoch {h.epoch}, active epoch is {self.ctx.epoch}")
        if h.sender != self.leader_of(h.round):
            raise Refusal("not_leader", f"member {h.sender} is not the leader of round {h.round}")
        # An honest leader's attempts are 0 (1 when it observes again) up to max_attempts
        # (see lead): more would only let a leader make this node issue nonces and check
        # proposals for attempts no round uses.
        most = self.config.max_attempts if max_attempt is None else max_attempt
        if h.attempt > most:
            raise Refusal("attempt", f"attempt {h.attempt} > {most}")
        now, period = self.now_round(), self.period_ms
        if not now - max_age_periods * period <= h.round <= now + 2 * period:
            raise Refusal("stale_round", f"round {h.round}, current round is {now}")

    async def _on_observe(self, env: Envelope) -> bytes:
        try:
            self._check_leader(env)
            obs = await self._observation(env.header.round, env.header.attempt)
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
        if not within_bps(update.value, own.value, policy.tolerance_bps):
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
        latest = self.outputs.latest_output  # the report's feeds only (see latest_output)
        mine = {u.feed_id: m for u in report.updates if (m := latest(u.feed_id)) is not None}
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
            if refusal.reason in LEADER_OFFENCES:
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
