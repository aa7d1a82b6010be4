"""Key generation over the network: one member's side of the DKG for a pending committee.

The owner proposes a committee on-chain (``ICommittee.proposeCommittee``). Each member it
names runs the Pedersen DKG of :mod:`oracle.crypto.dkg` with the others over the p2p
transport, then proposes the resulting group key on-chain (``proposeGroupKey``) for the
owner to activate. Messages are the transport's signed envelopes, bound to the chain, the
committee contract, the pending epoch (header ``epoch``), the proposal (header ``round``)
and the DKG attempt (header ``attempt``); their payloads carry the session id, which
binds the same things again inside the proofs of knowledge and the share encryption:

    session(a) = keccak256("MIRA-DKG-v1" ‖ chainid ‖ committee ‖ epoch ‖ proposal ‖ a)

Delivery. Every member pushes each of its messages to each peer and retries until the
peer has it (a 2xx, or a "replay" refusal: the peer recorded it already). What reaches a
node goes into its :class:`DKGInbox`, which lives as long as the node — whatever phase,
attempt or proposal its own DKG is at, even before it has seen the proposal — since a
message the replay guard recorded can never be delivered a second time. A phase ends
when every expected message is in:

1. DKG_ROUND1 (broadcast) from every member. Without all n no one proceeds: a member that
   is offline holds the DKG up, and the status names it (the owner can propose a committee
   without it).
2. DKG_SHARE (one per recipient) from every dealer still qualified. After ``phase_timeout``
   a missing share becomes a complaint against its dealer.
3. DKG_COMPLAINTS (broadcast, possibly empty) from every qualified member, with the
   digest of each member's round-1 message as it accepted it. A dealer whose digests
   differ showed members different commitments: it is disqualified like an accused one.
   A member whose complaints message is missing after ``phase_timeout``, or malformed, is
   disqualified as a dealer (it gets no share).
4. DKG_JUSTIFY (broadcast) from every dealer someone complained about: the accusers'
   shares in clear. A share that matches the dealer's commitments voids the complaint
   (a member cannot exclude an honest dealer by lying); no answer within
   ``phase_timeout``, or a wrong one, disqualifies the dealer.

Attempts. An abandoned attempt, and a group key the EVM cannot use (Px ≥ N), move to the
next attempt with a new session; so does seeing a peer's message for a higher attempt
(a restarted member begins one attempt above the last it recorded, so the others follow
it instead of waiting for messages it no longer has the secrets for).

Trust: the on-chain activation needs t members proposing the same key, and a node signs
only for an epoch whose on-chain key equals its own share's group key. Messages are not
echo-broadcast: a malicious member that sends different complaints (or answers) to
different members can make honest members derive different keys. That costs liveness,
not safety (no key reaches t proposals, so none is activated); the members' logs name
the complaints, and the owner proposes a committee without the member.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from eth_utils.crypto import keccak

from oracle.crypto.dkg import (
    Complaint,
    DKGConfig,
    DKGOutput,
    DKGParticipant,
    GroupKeyUnusableError,
    Round1Message,
)
from oracle.crypto.envelope import EncryptedShare, IdentityKey
from oracle.crypto.errors import CryptoError
from oracle.crypto.suites import MIRA_EVM
from oracle.errors import MiraError
from oracle.p2p.errors import MessageRejected, PeerUnavailable
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import (
    Envelope,
    Header,
    MsgType,
    decode_dkg_complaints,
    decode_dkg_justifications,
    decode_dkg_round1,
    decode_dkg_share,
    encode_dkg_complaints,
    encode_dkg_justifications,
    encode_dkg_round1,
    encode_dkg_share,
)

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 16
_DKG_TYPES = (
    MsgType.DKG_ROUND1,
    MsgType.DKG_SHARE,
    MsgType.DKG_COMPLAINTS,
    MsgType.DKG_JUSTIFY,
)


class KeygenError(MiraError):
    """This member cannot obtain a key share for the pending committee."""


@dataclass(frozen=True)
class PendingCommittee:
    """ICommittee.pendingCommittee(): what the owner proposed."""

    epoch: int
    proposal: int
    threshold: int
    peers: tuple[Peer, ...]  # index = position in the proposal's member list
    operators: tuple[str, ...]


def dkg_session_id(
    chain_id: int, committee: bytes, epoch: int, proposal: int, attempt: int
) -> bytes:
    return bytes(
        keccak(
            b"MIRA-DKG-v1"
            + chain_id.to_bytes(32, "big")
            + committee
            + epoch.to_bytes(8, "big")
            + proposal.to_bytes(8, "big")
            + attempt.to_bytes(4, "big")
        )
    )


class _Restart(Exception):
    def __init__(self, attempt: int) -> None:
        self.attempt = attempt


class _Abandon(Exception):
    """This attempt cannot finish consistently; the next one starts."""


class DKGInbox:
    """Every DKG message this node accepted, by (proposal, attempt, type, sender).

    Attached to the transport once, for the life of the node, so a message of a proposal
    this node has not started yet (a peer saw a re-proposal first, or polled the chain
    earlier) is kept for the DKG that will start, not refused: the replay guard has
    already recorded it, so a refused message could never be delivered again. The
    session in the payload must be the one the signed header names (chain, contract,
    epoch, proposal, attempt).
    """

    MAX_ENTRIES = 8192  # ~255 members × 4 types × a few attempts; beyond, a peer is flooding

    def __init__(self) -> None:
        self._messages: dict[tuple[int, int, MsgType, int], bytes] = {}
        self._highest: dict[int, int] = {}  # proposal → highest attempt seen
        self.arrived = asyncio.Event()

    def attach(self, transport: Transport) -> None:
        for t in _DKG_TYPES:
            transport.on(t, self._on_message)

    async def _on_message(self, env: Envelope) -> bytes | None:
        h = env.header
        session = dkg_session_id(h.chain_id, h.committee, h.epoch, h.round, h.attempt)
        if len(env.payload) < 32 or env.payload[:32] != session:
            raise MessageRejected("bad_session", f"DKG {h.type.name}: session id mismatch")
        if len(self._messages) >= self.MAX_ENTRIES:
            raise MessageRejected("dkg_inbox_full", "too many DKG messages held")
        self._messages[(h.round, h.attempt, h.type, h.sender)] = env.payload
        if h.attempt > self._highest.get(h.round, 0):
            self._highest[h.round] = h.attempt
        self.arrived.set()
        return None

    def get(self, proposal: int, attempt: int, msg_type: MsgType, sender: int) -> bytes | None:
        return self._messages.get((proposal, attempt, msg_type, sender))

    def highest_attempt(self, proposal: int) -> int:
        return self._highest.get(proposal, 0)

    def forget_before(self, proposal: int) -> None:
        """Drop the messages of proposals older than ``proposal`` (they can never run)."""
        self._messages = {k: v for k, v in self._messages.items() if k[0] >= proposal}
        self._highest = {p: a for p, a in self._highest.items() if p >= proposal}


class NetworkDKG:
    """Runs the DKG of one pending committee for member ``me`` over ``transport``.

    ``attempt_file`` records the last attempt this member started, so a restart begins
    above it. Keep the object until the epoch is activated: it goes on delivering this
    member's messages to peers that are still finishing.
    """

    def __init__(
        self,
        transport: Transport,
        inbox: DKGInbox,
        chain_id: int,
        committee: bytes,
        pending: PendingCommittee,
        me: int,
        identity: IdentityKey,
        *,
        attempt_file: Path,
        phase_timeout: float = 30.0,
        send_timeout: float = 3.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.chain_id = chain_id
        self.committee = committee
        self.pending = pending
        self.me = me
        self.identity = identity
        self.attempt_file = attempt_file
        self.phase_timeout = phase_timeout
        self.send_timeout = send_timeout
        self._on_status = on_status or (lambda s: None)
        self.inbox = inbox
        self._pushes: set[asyncio.Task[None]] = set()
        self.attempt = 0

    @property
    def n(self) -> int:
        return len(self.pending.peers)

    def session(self, attempt: int) -> bytes:
        p = self.pending
        return dkg_session_id(self.chain_id, self.committee, p.epoch, p.proposal, attempt)

    # -- inbound ----------------------------------------------------------------------------

    async def _collect(
        self, attempt: int, msg_type: MsgType, expected: set[int], timeout: float | None
    ) -> dict[int, bytes]:
        """The payloads of ``expected`` senders; after ``timeout`` (None: never) the ones
        that arrived."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        proposal = self.pending.proposal
        while True:
            self.inbox.arrived.clear()  # before looking: an arrival after it wakes the wait
            if self.inbox.highest_attempt(proposal) > attempt:
                raise _Restart(self.inbox.highest_attempt(proposal))
            got = {}
            for sender in expected:
                payload = self.inbox.get(proposal, attempt, msg_type, sender)
                if payload is not None:
                    got[sender] = payload
            if len(got) == len(expected):
                return got
            missing = sorted(expected - set(got))
            self._on_status(
                f"DKG attempt {attempt}: waiting for {msg_type.name} from members {missing}"
            )
            wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if wait <= 0:
                return got
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inbox.arrived.wait(), wait)

    # -- outbound ---------------------------------------------------------------------------

    def _push(self, peer_index: int, msg_type: MsgType, attempt: int, payload: bytes) -> None:
        header = Header(
            msg_type,
            self.chain_id,
            self.committee,
            self.pending.epoch,
            self.pending.proposal,
            attempt,
            self.me,
        )
        task = asyncio.create_task(
            self._deliver(self.pending.peers[peer_index], header, payload),
            name=f"dkg-push-{msg_type.name}-{peer_index}",
        )
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def _deliver(self, peer: Peer, header: Header, payload: bytes) -> None:
        delay = 0.1
        for _ in range(10_000):  # bounded; ~hours at the 2 s backoff cap
            if self.attempt > header.attempt:
                return  # the attempt is over for everyone
            try:
                await self.transport.send(peer, header, payload, timeout=self.send_timeout)
                return
            except PeerUnavailable as exc:
                if "replay" in str(exc):  # the peer has it from an earlier try
                    return
            except MessageRejected:  # a reply we cannot use; the peer did get the message
                return
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.5)

    def _broadcast(self, msg_type: MsgType, attempt: int, payload: bytes) -> None:
        for i in range(self.n):
            if i != self.me:
                self._push(i, msg_type, attempt, payload)

    async def close(self) -> None:
        for t in list(self._pushes):
            t.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)

    # -- the protocol -----------------------------------------------------------------------

    def _load_attempt(self) -> int:
        try:
            doc = json.loads(self.attempt_file.read_text())
            if (
                doc.get("epoch") == self.pending.epoch
                and doc.get("proposal") == self.pending.proposal
            ):
                return int(doc["attempt"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return 0

    def _record_attempt(self, attempt: int) -> None:
        doc = {"epoch": self.pending.epoch, "proposal": self.pending.proposal, "attempt": attempt}
        self.attempt_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.attempt_file.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.attempt_file)

    async def run(self) -> DKGOutput:
        attempt = max(
            self._load_attempt() + 1, self.inbox.highest_attempt(self.pending.proposal), 1
        )
        while attempt <= MAX_ATTEMPTS:
            self.attempt = attempt
            self._record_attempt(attempt)  # before any message of it leaves this node
            try:
                out = await self._run_attempt(attempt)
            except _Restart as r:
                log.info("dkg.follow_attempt", attempt=r.attempt, abandoned=attempt)
                attempt = r.attempt
            except (_Abandon, GroupKeyUnusableError) as exc:
                log.warning("dkg.attempt_abandoned", attempt=attempt, reason=str(exc))
                attempt = max(attempt + 1, self.inbox.highest_attempt(self.pending.proposal))
            else:
                log.info(
                    "dkg.done",
                    epoch=self.pending.epoch,
                    attempt=attempt,
                    group_key=out.public.group_key.serialize().hex(),
                    disqualified=dict(out.disqualified),
                )
                return out
        raise KeygenError(f"no group key after {MAX_ATTEMPTS} DKG attempts")

    async def _run_attempt(self, a: int) -> DKGOutput:
        session = self.session(a)
        ids = {i + 1: p.identity_key for i, p in enumerate(self.pending.peers)}
        config = DKGConfig(MIRA_EVM, session, self.pending.threshold, ids)
        me = DKGParticipant(config, self.me + 1, self.identity)
        others = set(range(self.n)) - {self.me}

        # Round 1: everyone's commitments and proof of knowledge.
        own_r1 = me.round1()
        own_payload = encode_dkg_round1(session, own_r1)
        self._broadcast(MsgType.DKG_ROUND1, a, own_payload)
        got = await self._collect(a, MsgType.DKG_ROUND1, others, None)
        round1: list[Round1Message] = [own_r1]
        for sender, payload in got.items():
            try:
                _, msg = decode_dkg_round1(payload, sender + 1)
            except MessageRejected as exc:
                log.warning("dkg.bad_round1", sender=sender, error=exc.detail)
                continue  # no valid round-1 message: the DKG disqualifies the dealer
            round1.append(msg)
        me.receive_round1(round1)
        # What everyone must have seen alike: each member's round-1 payload.
        digests = [bytes(keccak(own_payload if s == self.me else got[s])) for s in range(self.n)]

        # Round 2: shares, point to point.
        for env in me.round2():
            self._push(env.recipient - 1, MsgType.DKG_SHARE, a, encode_dkg_share(session, env))
        qualified = {d - 1 for d in me.commitments} - {self.me}
        got = await self._collect(a, MsgType.DKG_SHARE, qualified, self.phase_timeout)
        envelopes: list[EncryptedShare] = []
        for sender, payload in got.items():
            try:
                _, env = decode_dkg_share(payload, sender + 1)
            except MessageRejected as exc:
                log.warning("dkg.bad_share_message", sender=sender, error=exc.detail)
                continue  # missing share: receive_round2 complains about the dealer
            envelopes.append(env)
        try:
            complaints = me.receive_round2(envelopes)
        except CryptoError as exc:
            raise _Abandon(f"round 2: {exc}") from exc
        for c in complaints:
            log.warning("dkg.complaint", dealer=c.dealer - 1, reason=c.reason)

        # Complaints, with the digests of the round-1 messages this member accepted.
        self._broadcast(
            MsgType.DKG_COMPLAINTS, a, encode_dkg_complaints(session, digests, complaints)
        )
        got = await self._collect(a, MsgType.DKG_COMPLAINTS, qualified, self.phase_timeout)
        everyone = list(complaints)

        def silent(member: int, why: str) -> None:
            # A member whose complaints we cannot know is out as a dealer: with what it
            # sent (or did not send) the same to everyone, every member decides alike.
            log.warning("dkg.member_out", member=member, reason=why)
            everyone.append(Complaint(self.me + 1, member + 1, why, answerable=False))

        for missing in sorted(qualified - set(got)):
            silent(missing, "no complaints message")
        for sender, payload in sorted(got.items()):
            try:
                _, theirs, listed = decode_dkg_complaints(payload, sender + 1)
            except MessageRejected as exc:
                silent(sender, f"malformed complaints message: {exc.detail}")
                continue
            if len(theirs) != self.n:
                silent(sender, f"{len(theirs)} round-1 digests, not {self.n}")
                continue
            everyone += listed
            # A dealer whose round-1 message differs between members equivocated: every
            # member that sees both digests disqualifies it (a complaint on its behalf).
            for dealer in range(self.n):
                if theirs[dealer] != digests[dealer]:
                    everyone.append(
                        Complaint(
                            sender + 1, dealer + 1, "equivocated in round 1", answerable=False
                        )
                    )

        # Justifications: every accused dealer answers with the accusers' shares in clear.
        accused = {c.dealer - 1 for c in everyone if c.answerable} & (qualified | {self.me})
        if self.me in accused:
            answers = me.justify(everyone)
            self._broadcast(MsgType.DKG_JUSTIFY, a, encode_dkg_justifications(session, answers))
        else:
            answers = []
        expected = accused - {self.me}
        got = await self._collect(a, MsgType.DKG_JUSTIFY, expected, self.phase_timeout)
        for sender, payload in sorted(got.items()):
            try:
                _, answered = decode_dkg_justifications(payload, sender + 1)
            except MessageRejected as exc:
                log.warning("dkg.bad_justification", sender=sender, error=exc.detail)
                continue  # unanswered: the dealer is disqualified
            answers += answered
        try:
            return me.finalize(everyone, answers)
        except GroupKeyUnusableError:
            raise
        except CryptoError as exc:
            raise KeygenError(f"DKG attempt {a}: {exc}") from exc
