"""The round's due test agrees with the model runner's publish rule
(oracle.config.publish.is_due): a median is due on-chain exactly when the runner would
have marked it for publication against the on-chain value, and never when the contract
would skip it (stale, or a feed the oracle does not register)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import coincurve
from prometheus_client import CollectorRegistry

from oracle.config.publish import is_due
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.frost import Signer
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import MAX_MESSAGE_BYTES
from oracle.reporting.protocol import EpochContext, FeedPolicy, RoundMetrics, RoundProtocol
from oracle.reporting.report import FeedUpdate
from oracle.reporting.store import RoundStore
from oracle.reporting.transmit import NOT_REGISTERED, OnChainValue
from oracle.storage import SqlUsedNonceLog, make_engine, upgrade
from tests.reporting.test_round_protocol import (
    CHAIN_ID,
    COMMITMENT,
    EPOCH,
    FEED,
    ORACLE,
    ChainTransmitter,
    FakeChain,
    Outputs,
)

HEARTBEAT_S = 60


def _protocol(tmp_path: Path) -> RoundProtocol:
    """One member's protocol, not started: only its due test is asked."""
    dkg = run_dkg_in_one_process(MIRA_EVM, 1, 1)
    key = coincurve.PrivateKey()
    members = EpochMembers(EPOCH, (key.public_key.format(compressed=True),))
    auth = Authenticator(
        chain_id=CHAIN_ID,
        committee=ORACLE,
        metrics=P2PMetrics(CollectorRegistry()),
        max_bytes=MAX_MESSAGE_BYTES,
        round_span=200,
    )
    auth.serve_epochs([members])
    transport = Transport(key.secret, auth, host="127.0.0.1", port=0)
    engine = make_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    upgrade(engine)
    signer = Signer(MIRA_EVM, dkg.keys[1], dkg.public, SqlUsedNonceLog(engine))
    peers = (Peer(0, "http://127.0.0.1:1", members.identity_keys[0]),)
    ctx = EpochContext(CHAIN_ID, ORACLE, EPOCH, peers, ("op0",), 0, dkg.public, signer)
    return RoundProtocol(
        ctx,
        transport,
        Outputs(0),
        {},
        ChainTransmitter(FakeChain(dkg.public.group_key), "op0"),
        RoundStore(engine),
        RoundMetrics(CollectorRegistry()),
    )


def test_due_test_is_the_publish_rule(tmp_path: Path) -> None:
    protocol = _protocol(tmp_path)
    at = 1_700_000_000
    on_values = [0, 1, -1, 10_000, -10_000]
    moves = [0, 1, -1, 49, 50, 51, -50, 10_000]
    for deviation_bps, on_value, move, dt in itertools.product(
        [0, 1, 50, 10_000], on_values, moves, [1, HEARTBEAT_S - 1, HEARTBEAT_S]
    ):
        policy = FeedPolicy(FEED, "TEST/USD", deviation_bps, HEARTBEAT_S, 100, COMMITMENT)
        protocol._onchain[FEED] = OnChainValue(5, on_value, at)
        update = FeedUpdate(FEED, on_value + move, at + dt, COMMITMENT)
        rule = is_due(
            on_value, at, update.value, update.observed_at,
            deviation_bps=deviation_bps, heartbeat=HEARTBEAT_S,
        )  # fmt: skip
        assert protocol.is_due(policy, update) == rule, (deviation_bps, on_value, move, dt)


def test_never_due_when_the_contract_would_skip_it(tmp_path: Path) -> None:
    protocol = _protocol(tmp_path)
    policy = FeedPolicy(FEED, "TEST/USD", 0, HEARTBEAT_S, 100, COMMITMENT)
    protocol._onchain[FEED] = OnChainValue(5, 100, 1_700_000_000)
    assert not protocol.is_due(policy, FeedUpdate(FEED, 200, 1_700_000_000, COMMITMENT))
    protocol._onchain[FEED] = NOT_REGISTERED
    assert not protocol.is_due(policy, FeedUpdate(FEED, 200, 1_700_000_100, COMMITMENT))
    # nothing on-chain yet (round 0): the first value is due
    protocol._onchain[FEED] = OnChainValue(0, 0, 0)
    assert protocol.is_due(policy, FeedUpdate(FEED, 0, 1_700_000_000, COMMITMENT))


def test_a_policys_feeds_go_into_a_report_all_or_none(tmp_path: Path) -> None:
    """One arm of a policy due is every arm due (an agent refuses a torn policy); an arm
    the contract would skip as stale holds the whole policy back; a feed of no group is
    decided on its own."""
    from oracle.reporting.context import Collected
    from oracle.reporting.messages import Observation

    protocol = _protocol(tmp_path)
    a, b, solo = b"\xa1" * 32, b"\xa2" * 32, b"\x50" * 32
    protocol.policies = {
        a: FeedPolicy(a, "P#a", 100, HEARTBEAT_S, 100, COMMITMENT, group="P"),
        b: FeedPolicy(b, "P#b", 100, HEARTBEAT_S, 100, COMMITMENT, group="P"),
        solo: FeedPolicy(solo, "S", 100, HEARTBEAT_S, 100, COMMITMENT),
    }
    at = int(time.time()) - 10
    for feed, value in ((a, 1000), (b, 2000), (solo, 500)):
        protocol._onchain[feed] = OnChainValue(5, value, at)

    def report(updates: list[FeedUpdate]) -> set[bytes]:
        obs = Observation(tuple(updates), None)
        collected = {0: Collected(b"", obs, {u.feed_id: u for u in updates})}
        return {u.feed_id for u in protocol._due_medians(7, collected)}

    moved_a = FeedUpdate(a, 1100, at + 1, COMMITMENT)  # 10 %: due
    same_b = FeedUpdate(b, 2000, at + 1, COMMITMENT)  # unchanged: not due alone
    same_solo = FeedUpdate(solo, 500, at + 1, COMMITMENT)
    assert report([moved_a, same_b, same_solo]) == {a, b}
    assert report([FeedUpdate(a, 1000, at + 1, COMMITMENT), same_b, same_solo]) == set()
    stale_b = FeedUpdate(b, 2000, at, COMMITMENT)  # the contract would skip it
    assert report([moved_a, stale_b, same_solo]) == set()
    assert report([moved_a, same_solo]) == set()  # an arm missing: no torn policy either
    moved_solo = FeedUpdate(solo, 600, at + 1, COMMITMENT)
    assert report([moved_a, stale_b, moved_solo]) == {solo}
