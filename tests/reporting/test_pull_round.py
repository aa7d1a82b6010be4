"""Pull roots signed by the round protocol (oracle.reporting.pull_round): four nodes, real
sockets, a real DKG and FROST shares; and what a follower refuses of a Byzantine leader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oracle.crypto.suites import MIRA_EVM
from oracle.reporting import pull
from oracle.reporting.protocol import FeedPolicy, Refusal
from oracle.reporting.pull_round import decode_proposal, encode_proposal
from oracle.reporting.report import FeedUpdate
from tests.reporting.test_round_protocol import CHAIN_ID, COMMITMENT, EPOCH, _network, _until

VERIFIER = bytes.fromhex("e7f1725e7734ce288f8367e1bb143e90bb3f0512")
FEEDS = [bytes([i]) * 32 for i in (0x21, 0x22, 0x23)]


class Outputs:
    """One output per feed: ``value + i`` for the i-th feed."""

    def __init__(self, value: int) -> None:
        self.value = value

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        now = int(time.time())
        return {f: FeedUpdate(f, self.value + i, now, COMMITMENT) for i, f in enumerate(FEEDS)}

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        return None

    def make_durable(self) -> None:
        pass


POLICIES = {f: FeedPolicy(f, f"F{i}/USD", 50, 3600, 100, COMMITMENT) for i, f in enumerate(FEEDS)}
PULL = {"pull_verifier": VERIFIER}


async def test_every_member_keeps_the_signed_root_of_every_feed(tmp_path: Path) -> None:
    sources = [Outputs(v) for v in (1000, 1002, 1001, 1003)]
    async with _network(tmp_path, [], sources=sources, policies=POLICIES, config_kw=PULL) as net:
        await _until(lambda: all(len(n.pull_roots) >= 2 for n in net.nodes))
        for node in net.nodes:
            root = node.pull_roots.latest(FEEDS)
            assert root is not None and root.tree.leaf_count == 3
            # the lower median of each feed, all under one signature
            assert [u.value for u in root.tree.updates] == [1001, 1002, 1003]
            message = pull.digest(
                CHAIN_ID, VERIFIER, EPOCH, root.round, root.tree.root, root.tree.leaf_count
            )
            sig = root.signature
            encoded = sig.commitment + sig.z.to_bytes(32, "big")
            assert MIRA_EVM.verify(net.dkg.public.group_key, message, encoded)
            # a payload of two feeds round-trips and its multiproof leads to the root
            payload = pull.decode_payload(pull.encode_payload(root.payload(FEEDS[1:])))
            leaves = [pull.leaf_hash(u, payload.round) for u in payload.proof.updates]
            assert pull.process_multiproof(leaves, payload.proof.proof, payload.proof.flags) == (
                root.tree.root
            )
        # members led roots in turn, and the push path still lands its report
        assert sum(n.pull_roots_led for n in net.nodes) >= 2
        await _until(lambda: all(f in net.chain.values for f in FEEDS))


async def test_no_pull_verifier_no_roots(tmp_path: Path) -> None:
    async with _network(tmp_path, [1000, 1000, 1000, 1000]) as net:
        await _until(lambda: len(net.chain.landed) >= 1)
        assert all(len(n.pull_roots) == 0 for n in net.nodes)


async def test_a_follower_refuses_what_a_byzantine_leader_proposes(tmp_path: Path) -> None:
    sources = [Outputs(1000) for _ in range(4)]
    async with _network(tmp_path, [], sources=sources, policies=POLICIES, config_kw=PULL) as net:
        follower = net.nodes[1]
        now = int(time.time())
        good = [FeedUpdate(f, 1000 + i, now, COMMITMENT) for i, f in enumerate(FEEDS)]
        follower.check_pull_leaves(tuple(good))  # honest leaves pass
        follower.check_pull_leaves(tuple(good[:2]))  # a feed left out: still signed

        def refused(leaves: list[FeedUpdate]) -> str:
            with pytest.raises(Refusal) as exc:
                follower.check_pull_leaves(tuple(leaves))
            return exc.value.reason

        # 2 % off the follower's own output, tolerance 1 %
        off = FeedUpdate(FEEDS[0], 1020, now, COMMITMENT)
        assert refused([off, *good[1:]]) == "disagrees_with_own_output"
        unknown = FeedUpdate(b"\x30" * 32, 1000, now, COMMITMENT)
        assert refused([*good, unknown][1:]) == "unknown_feed"
        assert refused([good[0], good[0], good[1]]) == "duplicate_feed"
        assert refused([good[1], good[0], good[2]]) == "unsorted_leaves"
        assert refused([*good, unknown]) == "too_many_leaves"
        assert refused([]) == "no_leaves"
        wrong_model = FeedUpdate(FEEDS[0], 1000, now, b"\x08" * 32)
        assert refused([wrong_model]) == "model_commitment"


async def test_a_proposal_through_the_wire_is_refused_and_signs_nothing(tmp_path: Path) -> None:
    """The PULL_PROPOSE handler: a Byzantine leader's out-of-tolerance root gets REFUSE,
    and the follower's nonce for it is not spent on a share."""
    from oracle.p2p.wire import MsgType
    from oracle.reporting.pull_round import PULL_ATTEMPT_BASE

    sources = [Outputs(1000) for _ in range(4)]
    async with _network(
        tmp_path, [], sources=sources, policies=POLICIES, config_kw=PULL, period_ms=2000
    ) as net:
        r = net.nodes[0].now_round()
        leader = net.nodes[net.nodes[0].leader_of(r)]
        follower = next(n for n in net.nodes if n is not leader)
        peer = leader.ctx.peers[follower.ctx.self_index]
        # A round for which nobody has issued pull nonces yet: 2 s periods, a high attempt
        attempt = 2
        nonce = await leader._ask(
            peer,
            MsgType.PULL_NONCE_REQUEST,
            r,
            attempt,
            b"",
            frozenset({MsgType.NONCE, MsgType.REFUSE}),
            1.0,
        )
        assert nonce is not None and nonce.header.type == MsgType.NONCE
        from oracle.reporting.messages import decode_commitment

        com = decode_commitment(nonce.payload)
        now = int(time.time())
        bad = (FeedUpdate(FEEDS[0], 5000, now, COMMITMENT),)
        reply = await leader._ask(
            peer,
            MsgType.PULL_PROPOSE,
            r,
            attempt,
            encode_proposal(bad, (com,)),
            frozenset({MsgType.SHARE, MsgType.REFUSE}),
            1.0,
        )
        assert reply is not None and reply.header.type == MsgType.REFUSE
        assert b"disagrees_with_own_output" in reply.payload
        assert (r, PULL_ATTEMPT_BASE + attempt) in follower._nonces  # not consumed
        assert r not in follower._pull_signed


def test_proposal_codec_round_trips_and_refuses_trailing_bytes() -> None:
    from oracle.p2p.errors import MessageRejected

    leaves = tuple(FeedUpdate(f, 7, 1_700_000_000, COMMITMENT) for f in FEEDS)
    assert decode_proposal(encode_proposal(leaves, ())) == (leaves, ())
    with pytest.raises(MessageRejected):
        decode_proposal(encode_proposal(leaves, ()) + b"\x00")
