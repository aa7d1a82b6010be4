"""The round protocol in one asyncio loop: four nodes, real aiohttp sockets, a real DKG,
real FROST shares, SQLite per node. The chain is a small in-memory stand-in that checks
the aggregate signature exactly as LibSchnorr does and applies updates like MiraOracle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
import pytest
from prometheus_client import CollectorRegistry

from oracle.chain.oracle_calls import SignatureStruct
from oracle.crypto.dkg import DKGResult, default_threshold, run_dkg_in_one_process
from oracle.crypto.frost import Signer
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import MAX_MESSAGE_BYTES
from oracle.reporting.protocol import (
    EpochContext,
    FeedPolicy,
    ProtocolConfig,
    RoundMetrics,
    RoundProtocol,
)
from oracle.reporting.report import FeedUpdate, decode, digest
from oracle.reporting.rounds import slot_of
from oracle.reporting.store import RoundStore
from oracle.reporting.transmit import Fate, OnChainValue, ReportTransmitter, Submission
from oracle.storage import SqlUsedNonceLog, make_engine, upgrade
from tests.harness.faults import FaultySigner

CHAIN_ID = 31337
ORACLE = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
FEED = b"\x11" * 32
COMMITMENT = b"\x07" * 32
EPOCH = 1
PERIOD_MS = 200


@dataclass
class FakeChain:
    """Verifies the Schnorr signature like LibSchnorr and applies updates like the ring."""

    group_key: object
    values: dict[bytes, OnChainValue] = field(default_factory=dict)
    landed: list[tuple[str, int]] = field(default_factory=list)
    updates: list[FeedUpdate] = field(default_factory=list)  # every applied update

    def apply(self, sender: str, report: bytes, sig: SignatureStruct) -> Fate:
        message = digest(CHAIN_ID, ORACLE, EPOCH, report)
        encoded = bytes.fromhex(sig.commitment[2:]) + sig.z.to_bytes(32, "big")
        assert MIRA_EVM.verify(self.group_key, message, encoded)  # type: ignore[arg-type]
        decoded = decode(report)
        applied = False
        for u in decoded.updates:
            cur = self.values.get(u.feed_id)
            if cur is None or decoded.round > cur.round:
                self.values[u.feed_id] = OnChainValue(decoded.round, u.value, u.observed_at)
                self.updates.append(u)
                applied = True
        if not applied:
            return Fate.ALREADY_APPLIED
        self.landed.append((sender, decoded.round))
        return Fate.LANDED


class ChainTransmitter:
    """Submits to the fake chain; like the transaction manager, a report submitted again
    is the same transmission (the fake chain applies a report once)."""

    def __init__(self, chain: FakeChain, sender: str) -> None:
        self.chain, self._sender = chain, sender

    @property
    def sender(self) -> str:
        return self._sender

    async def submit(
        self, report: bytes, signature: tuple[int, int, str, int], round_: int
    ) -> Submission:
        return Submission(self.chain.apply(self._sender, report, signature))

    async def latest(self, feed_ids: Sequence[bytes]) -> dict[bytes, OnChainValue]:
        return {f: self.chain.values.get(f, OnChainValue(0, 0, 0)) for f in feed_ids}


class Outputs:
    def __init__(self, value: int) -> None:
        self.value = value

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        return {FEED: FeedUpdate(FEED, self.value, int(time.time()), COMMITMENT)}

    def latest_output(self, feed_id: bytes) -> FeedUpdate | None:
        return self.latest_outputs().get(feed_id)  # whatever a subclass makes up

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        return None  # no history: followers compare with their latest output

    async def make_durable(self) -> None:
        pass


@dataclass
class Net:
    chain: FakeChain
    nodes: list[RoundProtocol]
    outputs: list[Any]
    dkg: DKGResult


@contextlib.asynccontextmanager
async def _network(
    tmp_path: Path,
    values: list[int],
    *,
    corrupt: int | None = None,
    sources: Sequence[Any] | None = None,
    policies: dict[bytes, FeedPolicy] | None = None,
    protocols: dict[int, type[RoundProtocol]] | None = None,
    auth_kw: dict[str, float] | None = None,
    period_ms: int = PERIOD_MS,
    chain: FakeChain | None = None,
    dkg: DKGResult | None = None,
    transmitters: Sequence[ReportTransmitter] | None = None,
    config_kw: dict[str, Any] | None = None,
) -> AsyncIterator[Net]:
    """``values``: each node's output of FEED; or ``sources`` (one per node, any
    OutputSource) with their ``policies``. ``protocols``: a RoundProtocol subclass for some
    nodes (a member that misbehaves); ``auth_kw``: every node's Authenticator limits.
    ``chain``/``dkg``: carry a chain and committee over from an earlier network (a restart);
    ``transmitters``: one per node, e.g. to anvil; ``config_kw``: ProtocolConfig fields."""
    n = len(values) if sources is None else len(sources)
    dkg = dkg or run_dkg_in_one_process(MIRA_EVM, default_threshold(n), n)
    chain = chain or FakeChain(dkg.public.group_key)
    idkeys = [coincurve.PrivateKey() for _ in range(n)]
    members = EpochMembers(EPOCH, tuple(k.public_key.format(compressed=True) for k in idkeys))
    transports = []
    for k in idkeys:
        auth = Authenticator(
            chain_id=CHAIN_ID,
            committee=ORACLE,
            metrics=P2PMetrics(CollectorRegistry()),
            max_bytes=MAX_MESSAGE_BYTES,
            round_span=period_ms,
            **(auth_kw or {}),  # type: ignore[arg-type]
        )
        auth.serve_epochs([members])
        t = Transport(k.secret, auth, host="127.0.0.1", port=0)
        await t.start()
        transports.append(t)
    peers = tuple(Peer(i, t.url, members.identity_keys[i]) for i, t in enumerate(transports))
    policy = FeedPolicy(FEED, "TEST/USD", 50, 3600, 100, COMMITMENT)
    nodes, outputs = [], []
    for i, t in enumerate(transports):
        engine = make_engine(f"sqlite:///{tmp_path / f'node{i}.sqlite'}")
        upgrade(engine)
        # a member sending invalid shares: its signer is faulty, the protocol code is not
        signer_class = FaultySigner if i == corrupt else Signer
        signer = signer_class(MIRA_EVM, dkg.keys[i + 1], dkg.public, SqlUsedNonceLog(engine))
        ctx = EpochContext(
            CHAIN_ID, ORACLE, EPOCH, peers, tuple(f"op{j}" for j in range(n)), i, dkg.public, signer
        )
        out = Outputs(values[i]) if sources is None else sources[i]
        cfg = ProtocolConfig(
            round_period_s=period_ms / 1000,
            transmit_timeout_s=0.5,
            **(config_kw or {}),
        )
        node = (protocols or {}).get(i, RoundProtocol)(
            ctx,
            t,
            out,
            {FEED: policy} if policies is None else policies,
            ChainTransmitter(chain, f"op{i}") if transmitters is None else transmitters[i],
            RoundStore(engine),
            RoundMetrics(CollectorRegistry()),
            cfg,
        )
        nodes.append(node)
        outputs.append(out)
    for node in nodes:
        await node.start()
    try:
        yield Net(chain, nodes, outputs, dkg)
    finally:
        for node in nodes:
            await node.stop()
        for t in transports:
            await t.stop()


async def _until(predicate, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_all_honest_report_lands_with_the_median(tmp_path: Path) -> None:
    async with _network(tmp_path, [1000, 1002, 1001, 1003]) as net:
        await _until(lambda: FEED in net.chain.values)
        assert net.chain.values[FEED].value == 1001  # lower median of 1000..1003
        # nothing changes → no further report (deviation 50 bps, heartbeat 1 h)
        landed = len(net.chain.landed)
        await asyncio.sleep(1.0)
        assert len(net.chain.landed) == landed
        # a 1 % move is due and lands, transmitted by the round's designated member
        for out in net.outputs:
            out.value += 10
        await _until(lambda: net.chain.values[FEED].value == 1011)
        sender, round_ = net.chain.landed[-1]
        assert sender == f"op{(slot_of(round_, PERIOD_MS) + 1) % 4}"


class EveryFeedIsTooMany(Outputs):
    """A node carrying thousands of pull-only feeds besides the registered one: making every
    feed's latest update is what a push round must not do (each poll changes them all)."""

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        raise AssertionError("a push round asked for every feed's latest output")

    def latest_output(self, feed_id: bytes) -> FeedUpdate | None:
        return super().latest_outputs().get(feed_id)


async def test_a_push_round_asks_only_for_the_registered_feeds_outputs(tmp_path: Path) -> None:
    sources = [EveryFeedIsTooMany(v) for v in (1000, 1002, 1001, 1003)]
    async with _network(tmp_path, [], sources=sources, policies=None) as net:
        await _until(lambda: FEED in net.chain.values)
        assert net.chain.values[FEED].value == 1001


async def test_a_lying_node_cannot_move_the_value(tmp_path: Path) -> None:
    async with _network(tmp_path, [1000, 1000, 1000, 5000]) as net:
        await _until(lambda: FEED in net.chain.values)
        assert net.chain.values[FEED].value == 1000
        # leaders never pick the liar as a signer (its observation disagrees), so it
        # never used a nonce
        with net.nodes[3].store.engine.connect() as conn:
            from sqlalchemy import text

            used = conn.execute(text("SELECT count(*) FROM used_nonces")).scalar_one()
        assert used == 0  # not even as a leader: its own observation disagrees too


async def test_follower_refuses_a_proposal_that_disagrees_with_its_output(
    tmp_path: Path,
) -> None:
    from oracle.p2p.wire import MsgType
    from oracle.reporting.messages import Observation, Proposal
    from oracle.reporting.protocol import Refusal
    from oracle.reporting.report import Report, encode

    async with _network(tmp_path, [1000, 1000, 1000, 1000]) as net:
        follower = net.nodes[1]
        r = follower.now_round()
        now = int(time.time())

        def observations(value: int) -> tuple[bytes, ...]:
            out = []
            for node in net.nodes:
                obs = Observation((FeedUpdate(FEED, value, now, COMMITMENT),), None)
                out.append(node.transport.seal(node._header(MsgType.OBSERVATION, r), obs.encode()))
            return tuple(out)

        def proposal(value: int, obs_value: int) -> Proposal:
            upd = FeedUpdate(FEED, value, now, COMMITMENT)
            return Proposal(encode(Report(EPOCH, r, (upd,))), observations(obs_value), ())

        with pytest.raises(Refusal) as exc:  # every observation says 2000, the follower 1000
            follower.verify_proposal(r, proposal(2000, 2000))
        assert exc.value.reason == "disagrees_with_own_output"
        with pytest.raises(Refusal) as exc:  # not the median of its own observations
            follower.verify_proposal(r, proposal(1001, 1000))
        assert exc.value.reason == "not_median"
        with pytest.raises(Refusal) as exc:  # observations of another round
            follower.verify_proposal(r + 1, proposal(1000, 1000))
        assert exc.value.reason == "wrong_round"


class OutputsWithHistory(Outputs):
    """A node whose latest output has moved on since an earlier observation time."""

    def __init__(self, value: int, earlier: dict[int, int]) -> None:
        super().__init__(value)
        self.earlier = earlier  # observed_at → value

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        if feed_id != FEED or observed_at not in self.earlier:
            return None
        return FeedUpdate(FEED, self.earlier[observed_at], observed_at, COMMITMENT)


async def test_follower_checks_its_own_output_for_the_same_observation_time(
    tmp_path: Path,
) -> None:
    """A replayed feed moved on by a row between OBSERVE and PROPOSAL: the follower compares
    with its output for the report's observation time, not its latest."""
    from oracle.p2p.wire import MsgType
    from oracle.reporting.messages import Observation, Proposal
    from oracle.reporting.protocol import Refusal
    from oracle.reporting.report import Report, encode

    then = int(time.time()) - 1
    sources = [OutputsWithHistory(2000, {then: 1000}) for _ in range(4)]
    async with _network(tmp_path, [], sources=sources) as net:
        follower = net.nodes[1]
        r = follower.now_round()

        def proposal(value: int, at: int) -> Proposal:
            upd = FeedUpdate(FEED, value, at, COMMITMENT)
            obs = [
                node.transport.seal(
                    node._header(MsgType.OBSERVATION, r), Observation((upd,), None).encode()
                )
                for node in net.nodes
            ]
            return Proposal(encode(Report(EPOCH, r, (upd,))), tuple(obs), ())

        report = follower.verify_proposal(r, proposal(1000, then))  # its output back then
        assert report.updates[0].value == 1000
        with pytest.raises(Refusal) as exc:  # same value, but claimed for another second
            follower.verify_proposal(r, proposal(1000, then - 5))
        assert exc.value.reason == "disagrees_with_own_output"  # vs its latest, 2000
        with pytest.raises(Refusal) as exc:  # a value it never had at that time
            follower.verify_proposal(r, proposal(1500, then))
        assert exc.value.reason == "disagrees_with_own_output"


async def test_invalid_shares_name_the_signer_and_the_round_completes(tmp_path: Path) -> None:
    async with _network(tmp_path, [1000, 1000, 1000, 1000], corrupt=2) as net:
        # change the value until a round led by someone else included node 2 as a signer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(n.bad_signers for n in net.nodes):
            for out in net.outputs:
                out.value += 20
            await asyncio.sleep(0.5)
        named = {who for n in net.nodes for who in n.bad_signers}
        assert named == {2}
        target = net.outputs[0].value
        await _until(lambda: net.chain.values.get(FEED, OnChainValue(0, 0, 0)).value == target)


async def test_a_policy_feeds_arms_land_as_separate_feeds(tmp_path: Path) -> None:
    """Four nodes run the same policy feed; each arm's score is reported and lands as its
    own feed (keccak256("<feed>/<arm>")), with the bandit's commitment."""
    from oracle.config import load_feed_spec
    from oracle.node.feeds import FeedRunner
    from oracle.node.network import NodeOutputs
    from oracle.node.pipeline import FeedMetrics
    from oracle.storage import Store
    from tests.models.policy_specs import EXAMPLE

    spec = load_feed_spec(EXAMPLE)
    sources = []
    for i in range(4):
        engine = make_engine(f"sqlite:///{tmp_path / f'feeds{i}.sqlite'}")
        upgrade(engine)
        runner = FeedRunner(spec, Store(engine), FeedMetrics(CollectorRegistry()))
        runner.replay_batch = 200
        await runner.poll()
        sources.append(NodeOutputs({spec.id: runner}, engine))
    policies = {
        o.id_bytes32: FeedPolicy(o.id_bytes32, o.id, 50, 3600, 100, None) for o in spec.outputs
    }
    expected = sources[0].latest_outputs()
    assert len(expected) == 5
    async with _network(tmp_path, [], sources=sources, policies=policies) as net:
        await _until(lambda: all(f in net.chain.values for f in expected))
        for feed_id, update in expected.items():
            assert net.chain.values[feed_id].value == update.value
        assert len({v.value for v in net.chain.values.values()}) > 1
