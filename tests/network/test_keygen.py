"""The DKG over the p2p transport (oracle.node.keygen): four members, each with its own
aiohttp server on 127.0.0.1, in one event loop. A member misbehaves by rewriting what
its transport sends."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from oracle.crypto.dkg import DKGConfig, DKGOutput, DKGParticipant
from oracle.crypto.envelope import IdentityKey, seal_share
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.group import N as GROUP_ORDER
from oracle.crypto.group import serialize_scalar
from oracle.crypto.suites import MIRA_EVM
from oracle.node.keygen import DKGInbox, NetworkDKG, PendingCommittee, dkg_session_id
from oracle.node.keygen_messages import (
    encode_dkg_relay,
    encode_dkg_round1,
    encode_dkg_share,
)
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.errors import PeerUnavailable
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import (
    MAX_MESSAGE_BYTES,
    Header,
    MsgType,
)

pytestmark = pytest.mark.timeout(60)

CHAIN_ID = 31337
COMMITTEE = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
EPOCH, PROPOSAL, T, N = 2, 7, 3, 4
DIGEST = bytes(range(32))  # the EVM suite signs a 32-byte report digest

Rewrite = Callable[[Peer, Header, bytes], bytes]


class RewritingTransport(Transport):
    """A transport whose outgoing payloads pass through ``rewrite`` (a cheating member)."""

    rewrite: Rewrite | None = None
    drop: Callable[[Peer, Header], bool] | None = None  # True: this message never leaves

    async def send(self, peer, header, payload, *, timeout, expect=None):  # type: ignore[no-untyped-def]
        if self.drop is not None and self.drop(peer, header):
            raise PeerUnavailable(f"dropped {header.type.name} to {peer.index}")
        if self.rewrite is not None:
            payload = self.rewrite(peer, header, payload)
        return await super().send(peer, header, payload, timeout=timeout, expect=expect)


@dataclass
class Member:
    index: int
    identity: IdentityKey
    transport: RewritingTransport
    inbox: DKGInbox
    dkg: NetworkDKG | None = None


def _auth(keys_by_epoch: dict[int, tuple[bytes, ...]], **limits: float) -> Authenticator:
    auth = Authenticator(
        chain_id=CHAIN_ID,
        committee=COMMITTEE,
        metrics=P2PMetrics(CollectorRegistry()),
        max_bytes=MAX_MESSAGE_BYTES,
        **limits,  # type: ignore[arg-type]
    )
    auth.serve_epochs([EpochMembers(e, k) for e, k in sorted(keys_by_epoch.items())])
    return auth


def expect(m: Member, pending: PendingCommittee) -> None:
    """What the node does when it reads the proposal on-chain: the inbox now takes the
    pending committee's messages."""
    m.inbox.expect(pending.epoch, pending.proposal, tuple(p.identity_key for p in pending.peers))


@asynccontextmanager
async def committee(
    tmp_path: Path,
    *,
    n: int = N,
    t: int = T,
    active: tuple[bytes, ...] | None = None,
    phase_timeout: float = 3.0,
    **limits: float,
) -> AsyncIterator[list[Member]]:
    """``n`` members of pending epoch EPOCH; ``active``: the identity keys of the active
    epoch EPOCH - 1, which the members serve too (its members are other keys)."""
    identities = [IdentityKey() for _ in range(n)]
    keys = tuple(k.public_bytes for k in identities)
    epochs = {EPOCH: keys} | ({EPOCH - 1: active} if active is not None else {})
    members = []
    for i, identity in enumerate(identities):
        auth = _auth(epochs, **limits)
        transport = RewritingTransport(identity.secret_bytes(), auth, host="127.0.0.1", port=0)
        inbox = DKGInbox()
        inbox.attach(transport)
        await transport.start()
        members.append(Member(i, identity, transport, inbox))
    peers = tuple(Peer(m.index, m.transport.url, keys[m.index]) for m in members)
    pending = PendingCommittee(EPOCH, PROPOSAL, t, peers, tuple(f"0x{i:040x}" for i in range(n)))
    for m in members:
        expect(m, pending)
        m.dkg = dkg_for(m, pending, tmp_path, phase_timeout)
    try:
        yield members
    finally:
        for m in members:
            if m.dkg is not None:
                await m.dkg.close()
            await m.transport.stop()


def dkg_for(
    m: Member, pending: PendingCommittee, tmp_path: Path, phase_timeout: float = 3.0
) -> NetworkDKG:
    return NetworkDKG(
        m.transport,
        m.inbox,
        CHAIN_ID,
        COMMITTEE,
        pending,
        m.index,
        m.identity,
        attempt_file=tmp_path / f"member{m.index}.attempt",
        phase_timeout=phase_timeout,
        send_timeout=1.0,
    )


async def run_all(members: list[Member]) -> list[DKGOutput | BaseException]:
    assert all(m.dkg is not None for m in members)
    return await asyncio.wait_for(
        asyncio.gather(*(m.dkg.run() for m in members if m.dkg), return_exceptions=True), 30
    )


def check_agree_and_sign(outputs: list[DKGOutput]) -> None:
    """Same public key package everywhere, and t of the holders produce a signature the
    EVM suite verifies under the group key."""
    public = outputs[0].public
    assert all(o.public == public for o in outputs)
    keys = {o.key.identifier: o.key for o in outputs}
    signers = make_signers(MIRA_EVM, public, keys)
    outcome = run_signing(MIRA_EVM, public, DIGEST, list(signers.values()))
    assert MIRA_EVM.verify(public.group_key, DIGEST, outcome.encoded)


async def test_four_honest_members_agree_on_a_key_that_signs(tmp_path: Path) -> None:
    async with committee(tmp_path) as members:
        outputs = await run_all(members)
        assert all(isinstance(o, DKGOutput) for o in outputs), outputs
        good = [o for o in outputs if isinstance(o, DKGOutput)]
        check_agree_and_sign(good)
        assert not good[0].disqualified
        assert sorted(o.key.identifier for o in good) == [1, 2, 3, 4]
        MIRA_EVM.check_group_key(good[0].public.group_key)  # Px < N: usable on-chain


def _flip_ciphertext(payload: bytes) -> bytes:
    return payload[:-70] + bytes([payload[-70] ^ 1]) + payload[-69:]


async def test_a_share_damaged_in_transit_is_answered_and_nobody_is_excluded(
    tmp_path: Path,
) -> None:
    async with committee(tmp_path) as members:

        def damage_share_to_member_0(peer: Peer, h: Header, payload: bytes) -> bytes:
            if h.type == MsgType.DKG_SHARE and peer.index == 0:
                return _flip_ciphertext(payload)
            return payload

        members[3].transport.rewrite = damage_share_to_member_0
        outputs = await run_all(members)
        good = [o for o in outputs if isinstance(o, DKGOutput)]
        assert len(good) == 4, outputs
        check_agree_and_sign(good)  # member 0's share uses dealer 4's public answer
        assert not good[0].disqualified


async def test_a_dealer_answering_with_a_wrong_share_is_disqualified_and_the_rest_agree(
    tmp_path: Path,
) -> None:
    async with committee(tmp_path) as members:

        def bad_share_and_lying_answer(peer: Peer, h: Header, payload: bytes) -> bytes:
            if h.type == MsgType.DKG_SHARE and peer.index == 0:
                return _flip_ciphertext(payload)
            if h.type == MsgType.DKG_JUSTIFY:  # session ‖ 1 ‖ accuser ‖ share: share + 1
                share = (int.from_bytes(payload[-32:], "big") + 1) % GROUP_ORDER
                return payload[:-32] + share.to_bytes(32, "big")
            return payload

        members[3].transport.rewrite = bad_share_and_lying_answer
        outputs = await run_all(members)
        honest = outputs[:3]
        good = [o for o in honest if isinstance(o, DKGOutput)]
        assert len(good) == 3, outputs
        check_agree_and_sign(good)
        assert set(good[0].disqualified) == {4}
        assert good[0].disqualified[4].endswith("(answered with a wrong share)")
        # The cheater saw its own (true) answer, so it derives some other key: it cannot
        # be among the t members proposing the honest one.
        cheat = outputs[3]
        assert not isinstance(cheat, DKGOutput) or cheat.public != good[0].public


async def test_an_equivocating_dealer_is_caught_by_the_round1_digests(tmp_path: Path) -> None:
    async with committee(tmp_path) as members:
        cheat = members[3]
        ids = {i + 1: m.identity.public_bytes for i, m in enumerate(members)}

        twins: dict[bytes, DKGParticipant] = {}

        def twin(session: bytes) -> DKGParticipant:
            if session not in twins:
                config = DKGConfig(MIRA_EVM, session, T, ids)
                twins[session] = DKGParticipant(config, 4, cheat.identity)
            return twins[session]

        def other_commitments_to_member_0(peer: Peer, h: Header, payload: bytes) -> bytes:
            """Member 0 sees a second, equally valid polynomial (own proof of knowledge)
            and a share that matches it: only comparing round-1 digests reveals it."""
            if peer.index != 0:
                return payload
            session = payload[:32]
            if h.type == MsgType.DKG_ROUND1:
                return encode_dkg_round1(session, twin(session).round1())
            if h.type == MsgType.DKG_SHARE:
                share = twin(session)._share_for(1)
                env = seal_share(session, 4, cheat.identity, 1, ids[1], serialize_scalar(share))
                return encode_dkg_share(session, env)
            return payload

        cheat.transport.rewrite = other_commitments_to_member_0
        outputs = await run_all(members)
        good = [o for o in outputs[:3] if isinstance(o, DKGOutput)]
        assert len(good) == 3, outputs
        check_agree_and_sign(good)
        assert good[0].disqualified[4].endswith("equivocated in round 1 (cannot be answered)")


async def test_a_restarted_member_starts_a_higher_attempt_and_the_others_follow(
    tmp_path: Path,
) -> None:
    async with committee(tmp_path) as members:
        late = members[3]
        assert late.dkg is not None
        first = asyncio.create_task(late.dkg.run())
        await asyncio.sleep(0.5)  # its round-1 message is out; the others have not started
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await late.dkg.close()
        pending = late.dkg.pending
        late.dkg = dkg_for(late, pending, tmp_path)  # "restarted": its secrets are gone

        others = [asyncio.create_task(m.dkg.run()) for m in members[:3] if m.dkg]
        await asyncio.sleep(1.0)  # they wait for member 3's attempt-1 shares... in vain
        outputs = await asyncio.wait_for(
            asyncio.gather(late.dkg.run(), *others, return_exceptions=True), 30
        )
        good = [o for o in outputs if isinstance(o, DKGOutput)]
        assert len(good) == 4, outputs
        check_agree_and_sign(good)
        assert all(m.dkg is not None and m.dkg.attempt == 2 for m in members)


async def test_a_wrong_session_is_refused_and_a_later_proposal_is_delivered_once_expected(
    tmp_path: Path,
) -> None:
    async with committee(tmp_path) as members:
        sender, receiver = members[0], members[1]
        assert receiver.dkg is not None
        peer = receiver.dkg.pending.peers[1]
        session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 1)

        def header(round_: int, attempt: int = 1) -> Header:
            return Header(MsgType.DKG_ROUND1, CHAIN_ID, COMMITTEE, EPOCH, round_, attempt, 0)

        # the session must be the one the signed header names
        with pytest.raises(PeerUnavailable, match="bad_session"):
            await sender.transport.send(peer, header(PROPOSAL, 2), session, timeout=2)
        with pytest.raises(PeerUnavailable, match="bad_session"):
            await sender.transport.send(peer, header(PROPOSAL, 1), b"short", timeout=2)
        rejected = receiver.transport.auth.metrics.rejected
        assert rejected.labels("bad_session")._value.get() == 2
        # a proposal the receiver has not read on-chain yet: refused, and not recorded as
        # seen, so the sender's retry is delivered once the receiver expects it
        later = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL + 1, 1)
        with pytest.raises(PeerUnavailable, match="dkg_other_proposal"):
            await sender.transport.send(peer, header(PROPOSAL + 1), later + b"x", timeout=2)
        assert rejected.labels("dkg_other_proposal")._value.get() == 1
        keys = tuple(p.identity_key for p in receiver.dkg.pending.peers)
        receiver.inbox.expect(EPOCH, PROPOSAL + 1, keys)
        await sender.transport.send(peer, header(PROPOSAL + 1), later + b"x", timeout=2)
        assert receiver.inbox.get(1, MsgType.DKG_ROUND1, 0) == later + b"x"


async def test_a_member_that_starts_late_gets_what_was_sent_before(tmp_path: Path) -> None:
    """Peers push round 1 before member 3 has even created its DKG (it polls the chain
    later): the node-lifetime inbox keeps those messages — the replay guard would refuse
    them a second time — and member 3's DKG completes."""
    async with committee(tmp_path) as members:
        late = members[3]
        assert late.dkg is not None
        others = [asyncio.create_task(m.dkg.run()) for m in members[:3] if m.dkg]
        await asyncio.sleep(1.0)  # their round-1 messages reached member 3's inbox
        assert all(late.inbox.get(1, MsgType.DKG_ROUND1, i) is not None for i in range(3))
        outputs = await asyncio.wait_for(
            asyncio.gather(late.dkg.run(), *others, return_exceptions=True), 30
        )
        good = [o for o in outputs if isinstance(o, DKGOutput)]
        assert len(good) == 4, outputs
        check_agree_and_sign(good)


def test_session_ids_bind_chain_contract_epoch_proposal_and_attempt() -> None:
    base = (CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 1)
    variants = [
        (CHAIN_ID + 1, COMMITTEE, EPOCH, PROPOSAL, 1),
        (CHAIN_ID, bytes(20), EPOCH, PROPOSAL, 1),
        (CHAIN_ID, COMMITTEE, EPOCH + 1, PROPOSAL, 1),
        (CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL + 1, 1),
        (CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 2),
    ]
    ids = {dkg_session_id(*v) for v in [base, *variants]}
    assert len(ids) == 6


@pytest.mark.parametrize(
    "garbled",
    [MsgType.DKG_ROUND1, MsgType.DKG_SHARE, MsgType.DKG_COMPLAINTS, MsgType.DKG_JUSTIFY],
)
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_member_sending_garbage_is_out_and_the_rest_agree(
    tmp_path: Path, garbled: MsgType, seed: int
) -> None:
    """Member 3 sends correctly signed messages of the right session whose payload is
    random bytes (for DKG_JUSTIFY it is first made to answer, by a share damaged in
    transit): no crash, the honest three agree on a key without it — except for garbled
    shares, which the complaints make it reveal in clear: then all four agree."""
    rng = random.Random(seed)
    async with committee(tmp_path) as members:

        def garble(peer: Peer, h: Header, payload: bytes) -> bytes:
            if garbled == MsgType.DKG_JUSTIFY and h.type == MsgType.DKG_SHARE:
                return _flip_ciphertext(payload) if peer.index == 0 else payload
            if h.type == garbled:
                return payload[:32] + rng.randbytes(rng.randrange(0, 300))
            return payload

        members[3].transport.rewrite = garble
        outputs = await run_all(members)
        if garbled == MsgType.DKG_SHARE:
            good = [o for o in outputs if isinstance(o, DKGOutput)]
            assert len(good) == 4, outputs
            check_agree_and_sign(good)
            assert not good[0].disqualified
            return
        good = [o for o in outputs[:3] if isinstance(o, DKGOutput)]
        assert len(good) == 3, outputs
        check_agree_and_sign(good)
        assert set(good[0].disqualified) == {4}


# -- attacks on the DKG (issue 12) ----------------------------------------------------------


def _header(
    msg_type: MsgType,
    sender: int,
    *,
    epoch: int = EPOCH,
    proposal: int = PROPOSAL,
    attempt: int = 1,
) -> Header:
    return Header(msg_type, CHAIN_ID, COMMITTEE, epoch, proposal, attempt, sender)


async def _send_to(
    transport: Transport, members: list[Member], header: Header, payload: bytes
) -> None:
    """Push one signed message to each of ``members`` (a refusal is fine: that is the point)."""
    for m in members:
        peer = Peer(m.index, m.transport.url, m.identity.public_bytes)
        with contextlib.suppress(PeerUnavailable):
            await transport.send(peer, header, payload, timeout=2)


def _all_agree(outputs: list[DKGOutput | BaseException], count: int) -> list[DKGOutput]:
    good = [o for o in outputs if isinstance(o, DKGOutput)]
    assert len(good) == count, outputs
    check_agree_and_sign(good)
    return good


async def test_a_member_flipping_round1_digests_cannot_exclude_an_honest_dealer(
    tmp_path: Path,
) -> None:
    """M (member 3) tells everyone that honest C (member 2) showed it other round-1
    commitments, without any evidence. C must keep its share of the one key everybody
    else holds: otherwise A, B and M hold a key that M alone can stop from ever signing."""
    async with committee(tmp_path) as members:

        def flip_digest_of_member_2(peer: Peer, h: Header, payload: bytes) -> bytes:
            if h.type == MsgType.DKG_COMPLAINTS and len(payload) > 33 + 32 * N and payload[32] == N:
                at = 33 + 32 * 2  # the digest M reports for member 2's round-1 message
                return payload[:at] + bytes([payload[at] ^ 1]) + payload[at + 1 :]
            return payload

        members[3].transport.rewrite = flip_digest_of_member_2
        outputs = await run_all(members)
        good = _all_agree(outputs[:3], 3)
        assert 3 not in good[0].disqualified  # honest C keeps its place and its share
        # the accusation carried no evidence: it costs the accuser
        assert "no evidence" in good[0].disqualified[4]


async def test_a_member_withholding_its_complaints_from_one_member_splits_nothing(
    tmp_path: Path,
) -> None:
    async with committee(tmp_path) as members:
        members[3].transport.drop = lambda peer, h: (
            h.type == MsgType.DKG_COMPLAINTS and peer.index == 2
        )
        good = _all_agree(await run_all(members), 4)
        assert not good[0].disqualified


async def test_a_member_of_the_active_epoch_cannot_speak_for_a_pending_member(
    tmp_path: Path,
) -> None:
    """The active epoch's member 3 (another key) sends a round-1 message — with a valid
    proof of knowledge for the pending session — as member 3 of the pending committee,
    before the real member 3 has started."""
    active = [IdentityKey() for _ in range(N)]
    impostor_key = active[3]
    async with committee(tmp_path, active=tuple(k.public_bytes for k in active)) as members:
        impostor = Transport(
            impostor_key.secret_bytes(),
            _auth({EPOCH - 1: tuple(k.public_bytes for k in active)}),
            host="127.0.0.1",
            port=0,
        )
        await impostor.start()
        try:
            pending_session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 1)
            ids = {i + 1: m.identity.public_bytes for i, m in enumerate(members)}
            ids[4] = impostor_key.public_bytes
            forged = DKGParticipant(DKGConfig(MIRA_EVM, pending_session, T, ids), 4, impostor_key)
            active_session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH - 1, PROPOSAL, 1)
            payload = encode_dkg_round1(active_session, forged.round1())
            header = _header(MsgType.DKG_ROUND1, 3, epoch=EPOCH - 1)
            await _send_to(impostor, members[:3], header, payload)
        finally:
            await impostor.stop()
        late = members[3]
        assert late.dkg is not None
        others = [asyncio.create_task(m.dkg.run()) for m in members[:3] if m.dkg]
        await asyncio.sleep(1.0)
        outputs = await asyncio.wait_for(
            asyncio.gather(late.dkg.run(), *others, return_exceptions=True), 30
        )
        good = _all_agree(outputs, 4)
        assert not good[0].disqualified


async def test_a_planted_high_attempt_does_not_make_members_give_up(tmp_path: Path) -> None:
    async with committee(tmp_path) as members:
        cheat = members[3]
        session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 200)
        header = _header(MsgType.DKG_ROUND1, 3, attempt=200)
        await _send_to(cheat.transport, members[:3], header, session + b"\x00")
        good = _all_agree(await run_all(members), 4)
        assert not good[0].disqualified
        assert all(m.dkg is not None and m.dkg.attempt == 1 for m in members)


async def test_a_member_moving_everyone_up_costs_one_attempt_at_most(tmp_path: Path) -> None:
    """Member 3 signs messages of attempt 2 (followed: it could be a restarted member) and
    then of attempt 3 (not followed: it already moved everyone once, and f + 1 = 2 members
    would have to ask). The honest three finish at attempt 2."""
    async with committee(tmp_path) as members:
        cheat = members[3]
        for attempt in (2, 3):
            session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, attempt)
            header = _header(MsgType.DKG_ROUND1, 3, attempt=attempt)
            await _send_to(cheat.transport, members[:3], header, session + b"\x00")
        outputs = await run_all(members)
        _all_agree(outputs[:3], 3)
        assert [m.dkg.attempt for m in members[:3] if m.dkg] == [2, 2, 2]


async def test_messages_planted_for_a_future_proposal_do_not_speak_for_its_members(
    tmp_path: Path,
) -> None:
    """Member 3 of proposal 7 plants a round-1 message for proposal 8, in which the owner
    replaced it by X at index 3. The planted message must not count as X's."""
    async with committee(tmp_path) as members:
        cheat = members[3]
        nxt = PROPOSAL + 1
        x_identity = IdentityKey()
        keys = (*(m.identity.public_bytes for m in members[:3]), x_identity.public_bytes)
        session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, nxt, 1)
        ids = {i + 1: k for i, k in enumerate(keys)} | {4: cheat.identity.public_bytes}
        planted = DKGParticipant(DKGConfig(MIRA_EVM, session, T, ids), 4, cheat.identity)
        header = _header(MsgType.DKG_ROUND1, 3, proposal=nxt)
        await _send_to(
            cheat.transport, members[:3], header, encode_dkg_round1(session, planted.round1())
        )

        # the owner re-proposes: epoch EPOCH, proposal 8, member 3 is X now
        for m in members[:3]:
            m.transport.auth.serve_epochs([EpochMembers(EPOCH, keys)])
        x_transport = RewritingTransport(
            x_identity.secret_bytes(), _auth({EPOCH: keys}), host="127.0.0.1", port=0
        )
        x_inbox = DKGInbox()
        x_inbox.attach(x_transport)
        await x_transport.start()
        x = Member(3, x_identity, x_transport, x_inbox)
        try:
            group = [*members[:3], x]
            peers = tuple(Peer(m.index, m.transport.url, keys[m.index]) for m in group)
            pending = PendingCommittee(EPOCH, nxt, T, peers, tuple(f"0x{i:040x}" for i in range(N)))
            for m in group:
                if m.dkg is not None:
                    await m.dkg.close()
                expect(m, pending)
                m.dkg = dkg_for(m, pending, tmp_path / "next")
            others = [asyncio.create_task(m.dkg.run()) for m in members[:3] if m.dkg]
            await asyncio.sleep(1.0)  # X starts late: the planted message is there first
            assert x.dkg is not None
            outputs = await asyncio.wait_for(
                asyncio.gather(x.dkg.run(), *others, return_exceptions=True), 30
            )
            good = _all_agree(outputs, 4)
            assert not good[0].disqualified
        finally:
            if x.dkg is not None:
                await x.dkg.close()
            await x_transport.stop()


FLOOD_LIMITS = {"peer_rate": 1e6, "peer_burst": 1e6, "global_rate": 1e6}


async def test_a_member_flooding_the_inbox_does_not_crowd_out_honest_messages(
    tmp_path: Path,
) -> None:
    """Member 3 sends member 0 over 8,192 well-formed DKG messages (other proposals, other
    attempts; rate limits opened wide so only the inbox stands in the way) before the DKG
    starts; every honest message must still be delivered."""
    async with committee(tmp_path, **FLOOD_LIMITS) as members:
        flooder, target = members[3], members[0]
        peer = Peer(0, target.transport.url, target.identity.public_bytes)
        gate = asyncio.Semaphore(32)

        async def one(proposal: int, attempt: int, msg_type: MsgType) -> None:
            session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, proposal, attempt)
            header = _header(msg_type, 3, proposal=proposal, attempt=attempt)
            async with gate:
                with contextlib.suppress(PeerUnavailable):
                    await flooder.transport.send(peer, header, session + b"\x00", timeout=5)

        kinds = (MsgType.DKG_ROUND1, MsgType.DKG_SHARE, MsgType.DKG_COMPLAINTS, MsgType.DKG_JUSTIFY)
        await asyncio.gather(
            *(
                one(p, a, k)
                for p in range(PROPOSAL + 1, PROPOSAL + 206)
                for a in range(1, 11)
                for k in kinds
            )
        )
        good = _all_agree(await run_all(members), 4)
        assert not good[0].disqualified
        rejected = target.transport.auth.metrics.rejected
        assert rejected.labels("dkg_other_proposal")._value.get() == 205 * 10 * 4  # counted


async def test_a_relay_carries_only_its_authors_signed_broadcast_messages(tmp_path: Path) -> None:
    """Member 3 relays a round-1 message it signed itself as member 2's, and a relayed
    share: both refused, and the DKG is unaffected."""
    async with committee(tmp_path) as members:
        cheat, target = members[3], members[0]
        session = dkg_session_id(CHAIN_ID, COMMITTEE, EPOCH, PROPOSAL, 1)
        ids = {i + 1: m.identity.public_bytes for i, m in enumerate(members)}
        ids[3] = cheat.identity.public_bytes
        ids[4] = members[2].identity.public_bytes
        forged = DKGParticipant(DKGConfig(MIRA_EVM, session, T, ids), 3, cheat.identity)
        as_member_2 = cheat.transport.seal(
            _header(MsgType.DKG_ROUND1, 2), encode_dkg_round1(session, forged.round1())
        )
        share = cheat.transport.seal(_header(MsgType.DKG_SHARE, 3), session + b"\x00")
        relay = _header(MsgType.DKG_RELAY, 3)
        peer = Peer(0, target.transport.url, target.identity.public_bytes)
        with pytest.raises(PeerUnavailable, match="non_member"):
            await cheat.transport.send(
                peer, relay, encode_dkg_relay(session, as_member_2), timeout=2
            )
        with pytest.raises(PeerUnavailable, match="malformed"):
            await cheat.transport.send(peer, relay, encode_dkg_relay(session, share), timeout=2)
        assert target.inbox.get(1, MsgType.DKG_ROUND1, 2) is None
        good = _all_agree(await run_all(members), 4)
        assert not good[0].disqualified


async def test_a_silent_member_is_left_out_after_the_timeout_and_named(tmp_path: Path) -> None:
    """n = 5, t = 3 (f = 1): member 4 never answers. After the phase timeout the four that
    did (t + f = 4) finish without it, and the status says whom the DKG went on without."""
    async with committee(tmp_path, n=5, t=3, phase_timeout=1.5) as members:
        running = members[:4]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(m.dkg.run() for m in running if m.dkg), return_exceptions=True), 30
        )
        good = _all_agree(outputs, 4)
        assert set(good[0].disqualified) == {5}
        for m in running:
            assert m.dkg is not None
            assert m.dkg.progress["left_out"] == [4], m.dkg.progress
