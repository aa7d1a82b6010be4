"""The network service serving an epoch: the round protocol over this node's feed outputs
(oracle.node.network)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine

from oracle.chain.oracle_calls import MemberInfo
from oracle.crypto.frost import Signer
from oracle.crypto.group import Point
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.auth import EpochMembers
from oracle.reporting.protocol import (
    EpochContext,
    FeedPolicy,
    ProtocolConfig,
    RoundProtocol,
)
from oracle.reporting.report import FeedUpdate
from oracle.reporting.store import RoundStore
from oracle.storage import SqlUsedNonceLog

if TYPE_CHECKING:
    from oracle.node.feeds import FeedRunner
from oracle.node.network_state import NetworkState
from oracle.node.pipeline import FeedPipeline, flush_unstored, wait_off_loop_write

log = structlog.get_logger(__name__)


class NodeOutputs:
    """The round protocol's view of this node's feed pipelines: the reporting ones of the
    live mapping (models registered on-chain come and go while the node runs,
    oracle.node.registered)."""

    def __init__(self, runners: Mapping[str, FeedRunner], engine: Engine) -> None:
        self._runners = runners
        self._engine = engine  # the node's database: its feeds' rows go there
        # feed id → its runner: a follower looks one up per leaf of a 10,000-leaf root
        self._by_feed: dict[bytes, tuple[str, FeedRunner]] = {}
        # the last answer of latest_outputs, and what it was made from (every output and
        # the runners then): a round asks for it several times, mostly unchanged
        self._latest: tuple[int, list[FeedRunner], dict[bytes, FeedUpdate]] | None = None

    @property
    def runners(self) -> list[FeedRunner]:
        return [r for r in self._runners.values() if r.reporting]

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        """Every reporting feed's latest output (one per arm for a policy feed). The same
        answer while no output changed anywhere and the reporting runners are the same
        ones (a registered model comes or goes, a version retires): a read-only dict."""
        runners = self.runners
        changed = FeedPipeline.outputs_changed
        cached = self._latest
        if cached is not None and cached[0] == changed and cached[1] == runners:
            return cached[2]
        out = {}
        for r in runners:
            for update in r.latest_updates():
                out[update.feed_id] = update
        self._latest = (changed, runners, out)
        return out

    def _runner_of(self, feed_id: bytes) -> FeedRunner | None:
        hit = self._by_feed.get(feed_id)
        if hit is None or self._runners.get(hit[0]) is not hit[1] or not hit[1].reporting:
            # a miss, or the mapping changed under the index: rebuild it once
            self._by_feed = {
                o.id_bytes32: (key, r)
                for key, r in self._runners.items()
                if r.reporting
                for o in r.spec.outputs
            }
            hit = self._by_feed.get(feed_id)
        return None if hit is None else hit[1]

    def latest_output(self, feed_id: bytes) -> FeedUpdate | None:
        runner = self._runner_of(feed_id)
        if runner is None:
            return None
        for update in runner.latest_updates():
            if update.feed_id == feed_id:
                return update
        return None

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        runner = self._runner_of(feed_id)
        if runner is None:
            return None
        for update in runner.updates_at(observed_at):
            if update.feed_id == feed_id:
                return update
        return None

    async def make_durable(self) -> None:
        # the outputs a group poll's write in flight holds are sent too: once it has
        # landed (awaited: the loop serves the round's other messages meanwhile), and
        # then everything else buffered, in the same step as the caller's read of them
        await wait_off_loop_write()
        flush_unstored(self._engine)


class EpochServing(NetworkState):
    """Entering the current epoch this node holds a share of (its round protocol, on the
    epoch's members and key), and leaving the one before."""

    async def _enter_epoch(self, chain_id: int, epoch: int) -> None:
        oracle = self.transmitter.contract
        px, parity = await oracle.functions.groupKey(epoch).call()
        members = [MemberInfo.from_chain(m) for m in await oracle.functions.members(epoch).call()]
        chain_key = Point.deserialize(bytes([2 + int(parity)]) + int(px).to_bytes(32, "big"))
        identity_keys = tuple(m.identity_key for m in members)
        if self.identity.public_bytes not in identity_keys:
            await self._leave_epoch()
            self.epoch = epoch
            self._state = f"idle: not a member of epoch {epoch}"
            return
        me = identity_keys.index(self.identity.public_bytes)
        found = self._find_share(epoch, chain_key)
        if found is None:
            if self.protocol is None:
                self._state = f"waiting: no key share for epoch {epoch}'s group key"
            return  # keep serving the old epoch (in its grace period) until one appears
        key, public = found
        if me + 1 != key.identifier:
            raise RuntimeError(f"member index {me} does not match key share {key.identifier}")
        await self._leave_epoch()
        self._active_members = EpochMembers(epoch, identity_keys)
        self._serve()
        signer = Signer(MIRA_EVM, key, public, SqlUsedNonceLog(self.engine))
        ctx = EpochContext(
            chain_id,
            bytes.fromhex(self.config.oracle[2:]),
            epoch,
            self._peers(members),
            tuple(m.operator for m in members),
            me,
            public,
            signer,
        )
        self.protocol = self._round_protocol(ctx)
        await self.protocol.start()
        self.epoch = epoch
        self.members = [
            {
                "index": i,
                "operator": m.operator,
                "identity_key": "0x" + m.identity_key.hex(),
                "p2p_url": m.p2p_url,
            }
            for i, m in enumerate(members)
        ]
        self._state = "active"
        log.info(
            "network.joined", epoch=epoch, index=me, n=len(members), threshold=public.threshold
        )

    def _round_protocol(self, ctx: EpochContext) -> RoundProtocol:
        """The epoch's round protocol over this node's feed outputs."""
        verifier = self.config.pull_verifier
        cfg = ProtocolConfig(
            round_period_s=self.config.round_period_s,
            observe_timeout_s=self.config.observe_timeout_s,
            transmit_timeout_s=self.config.transmit_timeout_s,
            pull_verifier=None if verifier is None else bytes.fromhex(verifier[2:]),
            pull_retention=self.config.pull_retention,
            pull_transfer_timeout_s=self.config.pull_transfer_timeout_s,
        )
        assert self.transport is not None
        return RoundProtocol(
            ctx,
            self.transport,
            NodeOutputs(self.runners, self.engine),
            self._feed_policies(),
            self.transmitter,
            RoundStore(self.engine),
            self.round_metrics,
            cfg,
            pull_roots=self.pull_roots,
        )

    def _feed_policies(self) -> dict[bytes, FeedPolicy]:
        """What the rounds need of each on-chain feed this node publishes (one per arm of a
        policy feed), from its spec."""
        policies = {}
        for runner in self.runners.values():
            if not runner.reporting:
                continue
            spec = runner.spec
            static = runner.pipeline.model.commitment() if spec.model is None else None
            for output in spec.outputs:
                policies[output.id_bytes32] = FeedPolicy(
                    output.id_bytes32,
                    output.id,
                    spec.deviation_bps,
                    spec.heartbeat_s,
                    spec.tolerance_bps,
                    static,
                    # two honest members' latest outputs are about a poll interval apart
                    max_skew_s=math.ceil(2 * spec.poll_interval_s) + 2,
                    deviation_abs=spec.deviation_abs,
                    group=spec.id if spec.published_together else "",
                )
        return policies

    def feeds_changed(self) -> None:
        """A feed started, stopped or switched version (oracle.node.registered): the rounds
        report the feeds of the reporting runners from now on."""
        if self.protocol is not None:
            self.protocol.policies = self._feed_policies()

    async def _leave_epoch(self) -> None:
        if self.protocol is not None:
            await self.protocol.stop()
            self.protocol = None
        self._active_members = None
        if self.auth is not None:
            self._serve()
