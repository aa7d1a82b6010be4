"""Byzantine members against the round protocol, through real transports on 127.0.0.1
(the harness of test_round_protocol): a member forging the leader's nonce identifier, a
leader flooding proposals, a median author lying about the model commitment or the time,
and a leader asking for nonces in a way that leaked them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from eth_utils.crypto import keccak

from oracle.crypto.nonces import SigningCommitment
from oracle.p2p.errors import PeerUnavailable
from oracle.p2p.transport import MESSAGE_PATH
from oracle.p2p.wire import MsgType
from oracle.reporting.messages import Observation, Proposal
from oracle.reporting.protocol import FeedPolicy, Refusal, RoundProtocol
from oracle.reporting.report import FeedUpdate, Report, encode
from tests.reporting.test_round_protocol import (
    COMMITMENT,
    EPOCH,
    FEED,
    Net,
    Outputs,
    _network,
    _until,
)


def _offences(node: RoundProtocol, offence: str) -> float:
    return sum(
        float(s.value)
        for m in node.metrics.offences.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["offence"] == offence
    )


def _recent_round_led_by(node: RoundProtocol, member: int) -> int:
    """The latest of the last seven rounds (ms, one period apart) that ``member`` leads."""
    now, period = node.now_round(), node.period_ms
    return max(r for r in range(now - 6 * period, now + 1, period) if node.leader_of(r) == member)


def _refusals(node: RoundProtocol, reason: str) -> float:
    return float(node.metrics.refusals.labels(reason)._value.get())


async def _move_until(net: Net, done, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Move every honest output by 2 % (always due) until ``done()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        for out in net.outputs:
            out.value += 20
        await asyncio.sleep(0.3)
    raise AssertionError("condition not reached in time")


# -- 4: a forged nonce identifier -----------------------------------------------------------


class ForgesLeaderNonce(RoundProtocol):
    """Puts the round leader's identifier into its observation's nonce commitment."""

    async def _observation(self, round_: int, attempt: int) -> Observation:
        obs = await super()._observation(round_, attempt)
        assert obs.nonce is not None
        forged = SigningCommitment(self.leader_of(round_) + 1, obs.nonce.hiding, obs.nonce.binding)
        return Observation(obs.outputs, forged)


async def test_a_forged_nonce_identifier_is_named_and_rounds_still_report(
    tmp_path: Path,
) -> None:
    async with _network(tmp_path, [1000] * 4, protocols={3: ForgesLeaderNonce}) as net:
        honest = net.nodes[:3]
        # every honest leader gets reports out, although the forger would be in the signing
        # set of two of them (the two members after each leader are chosen first)
        await _move_until(net, lambda: all(n.reports_led >= 1 for n in honest))
        named = {who for n in honest for who in n.offences}
        assert named == {3}
        assert any(_offences(n, "forged_nonce") >= 1 for n in honest)
        status = next(n.status() for n in honest if 3 in n.offences)
        assert status["bad_signers"]["3"]["forged_nonce"] >= 1  # type: ignore[index]
        assert status["bad_signers"]["3"]["operator"] == "op3"  # type: ignore[index]
        assert all(n.metrics.rounds.labels("error")._value.get() == 0 for n in honest)


# -- 5: a leader flooding proposals ----------------------------------------------------------


async def test_a_flood_of_proposals_spends_neither_authors_rate_nor_their_traffic(
    tmp_path: Path,
) -> None:
    """Leader 0 sends follower 1 proposals with distinct attempts embedding the members'
    genuine observations: the observations' authors keep their rate at follower 1 and
    their own messages are still served."""
    limits = {"peer_rate": 20.0, "peer_burst": 300.0}
    async with _network(tmp_path, [1000] * 4, auth_kw=limits) as net:
        await _until(lambda: FEED in net.chain.values)
        leader, follower = net.nodes[0], net.nodes[1]
        r = _recent_round_led_by(follower, 0)
        now = int(time.time())
        upd = FeedUpdate(FEED, 1000, now, COMMITMENT)
        observations = tuple(
            n.transport.seal(n._header(MsgType.OBSERVATION, r), Observation((upd,), None).encode())
            for n in net.nodes
        )
        payload = Proposal(encode(Report(EPOCH, r, (upd,))), observations, ()).encode()
        peer = net.nodes[0].ctx.peers[1]

        async def propose(round_: int, attempt: int) -> None:
            header = leader._header(MsgType.PROPOSE, round_, attempt)
            with contextlib.suppress(PeerUnavailable):  # refused: what it should do
                await leader.transport.send(peer, header, payload, timeout=2.0)

        sent = 0
        for batch in range(0, 256, 32):
            await asyncio.gather(*(propose(r, a) for a in range(batch, batch + 32)))
            sent += 32
        assert sent == 256
        for author in (2, 3):
            key = net.nodes[author].transport.identity_key
            assert follower.auth.tokens_of(key) >= 290  # untouched by the flood
        # Checking embedded observations takes no tokens either when a proposal gets
        # that far (a leader asking within its attempts).
        key2 = net.nodes[2].transport.identity_key
        before = follower.auth.tokens_of(key2)
        for _ in range(50):
            follower.verify_proposal(r, Proposal.decode(payload))
        assert follower.auth.tokens_of(key2) >= before - 1
        # member 2's own traffic is served at follower 1: an OBSERVE for a round it leads
        r2 = _recent_round_led_by(follower, 2)
        reply = await net.nodes[2].transport.send(
            net.nodes[2].ctx.peers[1],
            net.nodes[2]._header(MsgType.OBSERVE, r2, 3),
            b"",
            timeout=2.0,
        )
        assert reply is not None and reply.header.type == MsgType.OBSERVATION
        # the flood was refused before any observation was looked at
        assert _refusals(follower, "attempt") + _refusals(follower, "nonce") >= 200


# -- 6: the median's author lying about the model commitment or the time ---------------------

LIE = b"\xee" * 32


def _commitment_at(second: int) -> bytes:
    return bytes(keccak(b"model-state" + second.to_bytes(8, "big")))


class ModelOutputs(Outputs):
    """A deterministic model feed: every honest node's output of a second carries the same
    commitment, and the last 30 seconds are kept."""

    def _at(self, second: int) -> FeedUpdate:
        return FeedUpdate(FEED, self.value, second, _commitment_at(second))

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        return {FEED: self._at(int(time.time()))}

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        now = int(time.time())
        return self._at(observed_at) if now - 30 <= observed_at <= now else None


class LiesAboutCommitment(ModelOutputs):
    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        return {FEED: FeedUpdate(FEED, self.value, int(time.time()), LIE)}


class LiesAboutTime(Outputs):
    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        return {FEED: FeedUpdate(FEED, self.value, int(time.time()) + 25, COMMITMENT)}


class ProposesAnything(RoundProtocol):
    """A liar as leader: proposes its own median without checking it."""

    def check_update(self, policy, update, mine) -> None:  # type: ignore[no-untyped-def]
        return None


MODEL_POLICY = FeedPolicy(FEED, "MODEL/1", 50, 3600, 100, None, max_skew_s=10)


async def test_a_median_author_lying_about_the_model_commitment_never_lands(
    tmp_path: Path,
) -> None:
    # all values equal: the lower median is member 1's observation (ties by index)
    sources = [
        ModelOutputs(1000),
        LiesAboutCommitment(1000),
        ModelOutputs(1000),
        ModelOutputs(1000),
    ]
    async with _network(
        tmp_path,
        [],
        sources=sources,
        policies={FEED: MODEL_POLICY},
        protocols={1: ProposesAnything},
    ) as net:
        honest = [net.nodes[i] for i in (0, 2, 3)]
        lied = lambda: any(u.model_commitment == LIE for u in net.chain.updates)  # noqa: E731
        await _move_until(net, lambda: len(net.chain.updates) >= 3 or lied())
        assert not lied()
        # honest leaders leave the lying observation out: their reports carry the model's
        # commitment; the liar's own proposals are refused by the followers, counted
        await _move_until(net, lambda: any(_refusals(n, "model_commitment") for n in honest))
        assert not lied()
        assert all(u.model_commitment == _commitment_at(u.observed_at) for u in net.chain.updates)
        assert any(
            n.metrics.dropped_observations.labels("model_commitment")._value.get() for n in honest
        )


async def test_a_median_author_lying_about_the_time_never_lands(tmp_path: Path) -> None:
    sources = [Outputs(1000), LiesAboutTime(1000), Outputs(1000), Outputs(1000)]
    async with _network(tmp_path, [], sources=sources, protocols={1: ProposesAnything}) as net:
        honest = [net.nodes[i] for i in (0, 2, 3)]
        lied = lambda: any(u.observed_at > time.time() + 1 for u in net.chain.updates)  # noqa: E731
        await _move_until(net, lambda: len(net.chain.updates) >= 3 or lied())
        assert not lied()
        await _move_until(net, lambda: any(_refusals(n, "observed_at_skew") for n in honest))
        assert all(u.observed_at <= time.time() + 1 for u in net.chain.updates)


async def test_follower_checks_commitment_and_time_against_its_own_output(
    tmp_path: Path,
) -> None:
    sources = [ModelOutputs(1000) for _ in range(4)]
    async with _network(tmp_path, [], sources=sources, policies={FEED: MODEL_POLICY}) as net:
        follower = net.nodes[1]
        r = follower.now_round()
        now = int(time.time())

        def proposal(at: int, commitment: bytes) -> Proposal:
            upd = FeedUpdate(FEED, 1000, at, commitment)
            obs = [
                n.transport.seal(
                    n._header(MsgType.OBSERVATION, r), Observation((upd,), None).encode()
                )
                for n in net.nodes
            ]
            return Proposal(encode(Report(EPOCH, r, (upd,))), tuple(obs), ())

        follower.verify_proposal(r, proposal(now - 3, _commitment_at(now - 3)))  # its own
        cases = [
            (proposal(now - 3, LIE), "model_commitment"),
            (proposal(now - 3, _commitment_at(now - 4)), "model_commitment"),
            (proposal(now + 5, _commitment_at(now + 5)), "unverifiable_commitment"),
            (proposal(now + 20, _commitment_at(now + 20)), "observed_at_skew"),
            (proposal(now - 100, _commitment_at(now - 100)), "observed_at_skew"),
        ]
        for prop, reason in cases:
            with pytest.raises(Refusal) as exc:
                follower.verify_proposal(r, prop)
            assert exc.value.reason == reason


# -- 7: OBSERVE after NONCE_REQUEST ------------------------------------------------------------


async def test_observe_after_nonce_request_leaks_no_nonce(tmp_path: Path) -> None:
    """Leader 0 asks follower 1 for a nonce and then observes the same (round, attempt),
    round after round: the follower's nonce pool stays the set it tracks (and erases when
    the round is old), bounded, and reports still land."""
    async with _network(tmp_path, [1000] * 4) as net:
        leader, follower = net.nodes[0], net.nodes[1]
        peer = leader.ctx.peers[1]

        async def ask(msg_type: MsgType, round_: int, attempt: int) -> None:
            with contextlib.suppress(PeerUnavailable):
                await leader.transport.send(
                    peer, leader._header(msg_type, round_, attempt), b"", timeout=2.0
                )

        asked: set[int] = set()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            now, period = follower.now_round(), follower.period_ms
            for r in range(now - 6 * period, now + 3 * period, period):
                if follower.leader_of(r) == 0 and r not in asked:
                    asked.add(r)
                    for attempt in (1, 2, 3):
                        await ask(MsgType.NONCE_REQUEST, r, attempt)
                        await ask(MsgType.OBSERVE, r, attempt)
            await asyncio.sleep(0.1)
        assert len(asked) >= 4
        pool = follower.ctx.signer.pool
        # every unused pair is one the follower tracks, so pruning erases it
        assert len(pool) == len(follower._nonces)
        # the rounds a follower keeps nonces for, times the attempts a leader may use
        assert len(pool) <= 19 * (follower.config.max_attempts + 1)
        for out in net.outputs:
            out.value += 20
        await _until(lambda: net.chain.values[FEED].value == net.outputs[0].value)


# -- 7: unauthenticated bytes from many sources, while rounds run -----------------------------


async def test_rounds_go_on_under_a_flood_of_unauthenticated_bytes(tmp_path: Path) -> None:
    """30 loopback addresses send members 0 and 1 messages with valid headers and random
    signatures, enough to drain the node-wide bucket: members' requests and the replies to
    a leader's own requests are still served, so every member keeps leading reports."""
    from tests.p2p.test_floods import garbage

    async with _network(tmp_path, [1000] * 4, auth_kw={"global_rate": 100.0}) as net:
        await _until(lambda: FEED in net.chain.values)
        stop = asyncio.Event()
        sent = 0

        async def flood(source: str) -> None:
            nonlocal sent
            connector = aiohttp.TCPConnector(local_addr=(source, 0))
            async with aiohttp.ClientSession(connector=connector) as session:
                while not stop.is_set():
                    for target in net.nodes[:2]:
                        body = garbage(os.urandom(64), epoch=EPOCH)
                        async with session.post(target.transport.url + MESSAGE_PATH, data=body):
                            sent += 1
                    await asyncio.sleep(0.02)  # the flood shares the nodes' event loop

        floods = [asyncio.create_task(flood(f"127.0.0.{i}")) for i in range(2, 32)]
        try:
            await asyncio.sleep(1.0)  # the node-wide bucket is drained by now
            led = [n.reports_led for n in net.nodes]
            await _move_until(
                net, lambda: all(n.reports_led > c for n, c in zip(net.nodes, led, strict=True))
            )
        finally:
            stop.set()
            await asyncio.gather(*floods, return_exceptions=True)
        assert sent > 500
        for node in net.nodes[:2]:
            assert node.auth.metrics.rejected.labels("rate_limited")._value.get() > 0
            assert len(node.auth.sources) <= 2 * 4096


# -- a leader proposing its own value (#13 item 6) --------------------------------------------


class ProposesItsOwnValue(RoundProtocol):
    """A liar as leader: in its rounds it proposes its own output, not the median, to every
    member (its own tolerance accepts everyone, so it never runs short of signers)."""

    def __init__(self, ctx, transport, outputs, policies, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        tolerant = {f: replace(p, tolerance_bps=10_000) for f, p in policies.items()}
        super().__init__(ctx, transport, outputs, tolerant, *args, **kwargs)

    def _due_medians(self, r, collected):  # type: ignore[no-untyped-def]
        own = collected[self.ctx.self_index].by_feed
        return [u for u in own.values() if self.is_due(self.policies[u.feed_id], u)]


async def test_a_leader_proposing_its_own_value_is_refused_and_named(tmp_path: Path) -> None:
    liar = 3
    async with _network(
        tmp_path, [1000, 1000, 1000, 1300], protocols={liar: ProposesItsOwnValue}
    ) as net:
        honest = [n for i, n in enumerate(net.nodes) if i != liar]
        named = lambda: any(_offences(n, "not_median") for n in honest)  # noqa: E731
        # the other leaders' rounds land the honest value meanwhile
        await _until(lambda: named() and bool(net.chain.updates), timeout=15.0)
        # the followers it asked refused (the report is not the median of the signed
        # observations it embeds), counted it, and named the liar and no one else
        assert any(_refusals(n, "not_median") for n in honest)
        assert all(set(n.offences) <= {liar} for n in honest)
        assert net.chain.updates and all(u.value == 1000 for u in net.chain.updates)
