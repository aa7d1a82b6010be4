"""Key generation over the network: one member's side of the DKG for a pending committee.

The owner proposes a committee on-chain (``ICommittee.proposeCommittee``). Each member it
names runs the Pedersen DKG of :mod:`oracle.crypto.dkg` with the others over the p2p
transport, then proposes the resulting group key on-chain (``proposeGroupKey``) for the
owner to activate. Messages are the transport's signed envelopes, bound to the chain, the
committee contract, the pending epoch (header ``epoch``), the proposal (header ``round``)
and the DKG attempt (header ``attempt``); their payloads carry the session id, which
binds the same things again inside the proofs of knowledge and the share encryption:

    session(a) = keccak256("MIRA-DKG-v1" ‖ chainid ‖ committee ‖ epoch ‖ proposal ‖ a)

Inbox. What reaches a node goes into its :class:`DKGInbox`, which lives as long as the
node. It takes only the pending committee's messages, as this node read it on-chain
(epoch, proposal and the members' identity keys), for the attempt this node is at and the
next one; anything else is refused. A refusal is not a loss: the transport undoes the
replay guard's record of a refused message, so its sender's retry is delivered once this
node has caught up (read the proposal, moved to the attempt). What one member can have
stored is bounded by construction (2 attempts × 4 types × 2 copies), so a flooding member
cannot crowd out the others.

Reliable broadcast. Round-1, complaints and justification messages are broadcast, and every
member *relays* (DKG_RELAY) each such message it stores — the author's signed envelope,
whole — to every other member. So whatever one honest member holds, every honest member
holds one hop later; and a dealer that signed two different messages for one slot
(equivocation) is exposed by the two signatures, which reach everyone the same way. That
pair is the only evidence that disqualifies for equivocation: a member's say-so never does.

Phases:

1. DKG_ROUND1 from every member. After ``phase_timeout`` the DKG goes on with the members
   that answered, once at least t + f of them did (f = ⌊(n − 1)/3⌋); the others are left out
   and named in the status. Fewer than t + f: it keeps waiting (the status says for whom).
2. DKG_SHARE (one per recipient) from every dealer still qualified. After ``phase_timeout``
   a missing share becomes a complaint against its dealer.
3. DKG_COMPLAINTS from every qualified member, with the digest of each member's round-1
   message it used. A digest that differs from this member's own announces equivocation:
   the evidence (the dealer's second signed round-1 message, relayed by the member that
   used it) must follow within ``phase_timeout``. With it, the dealer is disqualified;
   without it, the claim was a lie and the *claimant* is disqualified. A missing complaints
   message means no complaints; a malformed one disqualifies its (signing) author.
4. DKG_JUSTIFY from every dealer someone complained about: the accusers' shares in clear.
   A share that matches the dealer's commitments voids the complaint; no answer within
   ``phase_timeout``, or a wrong one, disqualifies the dealer.

Attempts. A group key the EVM cannot use (Px ≥ N) moves everyone to the next attempt
with a new session. A member follows a higher attempt b only when f + 1 members sent
messages of attempt ≥ b (at least one of them honest, so b was reached honestly), or when
one member starts exactly the next attempt and has not moved anyone before (a restarted
member begins one above the last attempt it recorded, having lost that attempt's
secrets). So a Byzantine member can cost at most one extra attempt, never a jump.

Trust: the owner's tooling activates a key only when t + f members proposed it
(:mod:`oracle.chain.rotation`), so at least t honest members hold shares of it and the
epoch can sign whatever f members do. What the DKG does not guarantee (docs/cryptography.md):
agreement when a member times a message to arrive at one honest member's deadline and
after another's; then honest members can derive different keys, no key gets t + f
proposals, and the rotation fails — its liveness, never the new epoch's ability to sign.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from eth_utils.crypto import keccak

from oracle.crypto.dkg import (
    Complaint,
    DKGConfig,
    DKGOutput,
    DKGParticipant,
    GroupKeyUnusableError,
    Round1Message,
    agreement_quorum,
    max_faulty,
)
from oracle.crypto.envelope import EncryptedShare, IdentityKey
from oracle.crypto.errors import CryptoError
from oracle.crypto.suites import MIRA_EVM
from oracle.errors import MiraError
from oracle.node.keygen_messages import (
    decode_dkg_complaints,
    decode_dkg_justifications,
    decode_dkg_relay,
    decode_dkg_round1,
    decode_dkg_share,
    encode_dkg_complaints,
    encode_dkg_justifications,
    encode_dkg_relay,
    encode_dkg_round1,
    encode_dkg_share,
)
from oracle.p2p.errors import MessageRejected, PeerUnavailable
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import Envelope, Header, MsgType, unseal
from oracle.retry import Backoff, retry

log = structlog.get_logger(__name__)

MAX_FAILED_ATTEMPTS = 16  # attempts this member abandons itself (unusable key) before giving up
MAX_ATTEMPT = 255  # the header's attempt is one byte
_BROADCAST_TYPES = (MsgType.DKG_ROUND1, MsgType.DKG_COMPLAINTS, MsgType.DKG_JUSTIFY)
_INBOX_TYPES = (*_BROADCAST_TYPES, MsgType.DKG_SHARE, MsgType.DKG_RELAY)
# Two different signed messages of one author for one slot prove equivocation; a third adds
# nothing, so at most two are kept: with 2 attempts and 4 types, that is the per-member quota.
_COPIES = 2
# a message to a peer that is down: 0.1 s, then 1.5 times longer each time, at most 2 s
_DELIVERY_BACKOFF = Backoff(0.1, 1.5, cap_s=2.0)
_NO_DIGEST = bytes(32)  # in a complaints message: "no round-1 message of this member used"


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


@dataclass(frozen=True)
class _Copy:
    payload: bytes
    raw: bytes  # the author's whole signed message: what a relay forwards, and the evidence


@dataclass(frozen=True)
class _Expected:
    epoch: int
    proposal: int
    identity_keys: tuple[bytes, ...]


class DKGInbox:
    """The pending committee's DKG messages this node accepted, by (attempt, type, author).

    Attached to the transport once, for the life of the node. :meth:`expect` names the
    committee whose messages it takes (the node calls it when it reads the proposal
    on-chain); until then, and for any other epoch, proposal or signer, it refuses — and a
    refused message is resent by its author until accepted (the transport does not record
    it as seen). Messages of an attempt this node has not started yet are kept too, but
    only for the next attempt: a member can store at most 2 attempts × 4 types × 2 copies.
    """

    def __init__(self) -> None:
        self._expected: _Expected | None = None
        self._floor = 1  # the attempt this node runs (or will start at)
        self._messages: dict[tuple[int, MsgType, int], list[_Copy]] = {}
        self._asked: dict[int, int] = {}  # member → highest attempt it signed a message of
        self._bumped: set[int] = set()  # members whose one-step attempt change was followed
        self.arrived = asyncio.Event()

    def attach(self, transport: Transport) -> None:
        for t in _INBOX_TYPES:
            transport.on(t, self._on_message)

    def expect(self, epoch: int, proposal: int, identity_keys: tuple[bytes, ...]) -> None:
        """Take the messages of this pending committee (and drop another's)."""
        new = _Expected(epoch, proposal, tuple(identity_keys))
        if new != self._expected:
            self.clear()
            self._expected = new

    def clear(self) -> None:
        """No committee pending: refuse every DKG message."""
        self._expected = None
        self._floor = 1
        self._messages.clear()
        self._asked.clear()
        self._bumped.clear()

    def advance(self, attempt: int) -> None:
        """This node now runs ``attempt``: keep it and the next one, drop older ones."""
        self._floor = attempt
        self._messages = {k: v for k, v in self._messages.items() if k[0] >= attempt}

    async def _on_message(self, env: Envelope) -> bytes | None:
        self.accept(env)
        return None

    def accept(self, env: Envelope) -> None:
        """Store ``env`` (authenticated by the transport) or raise MessageRejected."""
        self._admit(env.header, env.signer_key, env.payload)
        if env.header.type == MsgType.DKG_RELAY:
            self._accept_relay(env)
        else:
            self._store(env)

    def _admit(self, h: Header, signer: bytes, payload: bytes) -> None:
        exp = self._expected
        if exp is None or h.epoch != exp.epoch:
            pending = "no committee is pending here" if exp is None else f"epoch {exp.epoch} is"
            raise MessageRejected(
                "dkg_not_pending", f"DKG {h.type.name} for epoch {h.epoch}: {pending} pending"
            )
        if h.round != exp.proposal:
            raise MessageRejected(
                "dkg_other_proposal",
                f"DKG {h.type.name} for proposal {h.round}; the pending one is {exp.proposal}",
            )
        # The transport checked the signer against the epoch it serves; the committee this
        # DKG runs for is the one read with the proposal: check against that one.
        if h.sender >= len(exp.identity_keys) or exp.identity_keys[h.sender] != signer:
            raise MessageRejected(
                "non_member", f"DKG {h.type.name}: not signed by pending member {h.sender}"
            )
        session = dkg_session_id(h.chain_id, h.committee, h.epoch, h.round, h.attempt)
        if len(payload) < 32 or payload[:32] != session:
            raise MessageRejected("bad_session", f"DKG {h.type.name}: session id mismatch")

    def _accept_relay(self, env: Envelope) -> None:
        """A member forwards another's broadcast message: store it as if it came from its
        author, whose signature on it is checked like any other."""
        _, raw = decode_dkg_relay(env.payload)
        inner = unseal(raw)
        ih, oh = inner.header, env.header
        if ih.type not in _BROADCAST_TYPES:
            raise MessageRejected("malformed", f"dkg relay of a {ih.type.name}")
        if (ih.chain_id, ih.committee, ih.attempt) != (oh.chain_id, oh.committee, oh.attempt):
            raise MessageRejected("malformed", "dkg relay: the message inside is of another DKG")
        self._admit(ih, inner.signer_key, inner.payload)
        self._store(inner)

    def _store(self, env: Envelope) -> None:
        h = env.header
        if h.attempt > self._asked.get(h.sender, 0):
            self._asked[h.sender] = h.attempt  # signed: this member is at that attempt
        if h.attempt < self._floor:
            return  # an attempt this node has left: nothing to keep, nothing to refuse
        if h.attempt > self._floor + 1:
            raise MessageRejected(
                "dkg_attempt_ahead",
                f"DKG {h.type.name} of attempt {h.attempt}; this member runs {self._floor}",
            )
        copies = self._messages.setdefault((h.attempt, h.type, h.sender), [])
        if len(copies) >= _COPIES or any(c.payload == env.payload for c in copies):
            return  # a repeat (relays bring each message several times), or evidence complete
        copies.append(_Copy(env.payload, env.raw))
        self.arrived.set()

    def get(self, attempt: int, msg_type: MsgType, sender: int) -> bytes | None:
        """The first message of ``sender`` for this slot (the one a member uses)."""
        copies = self._messages.get((attempt, msg_type, sender))
        return copies[0].payload if copies else None

    def copies(self, attempt: int, msg_type: MsgType, sender: int) -> list[_Copy]:
        return list(self._messages.get((attempt, msg_type, sender), ()))

    def broadcasts(self, attempt: int) -> list[tuple[int, _Copy]]:
        """(author, message) of every broadcast message held for ``attempt``: to relay."""
        return [
            (sender, c)
            for (a, t, sender), copies in self._messages.items()
            if a == attempt and t in _BROADCAST_TYPES
            for c in copies
        ]

    def wanted_attempt(self, current: int, f: int) -> int:
        """The attempt to run instead of ``current`` (or ``current``).

        * f + 1 members signed messages of attempt ≥ b: at least one of them is honest, and
          an honest member reaches b only through these same rules: follow it to b.
        * one member signed a message of exactly ``current + 1`` (a restarted member starts
          one above its last): follow it, once per member. A liar thus costs one attempt,
          never a jump (one message of attempt 200 used to end every member's DKG).
        """
        asked = sorted(self._asked.values(), reverse=True)
        if len(asked) > f and asked[f] > current:
            return asked[f]
        for a, _, sender in self._messages:
            if a == current + 1 and sender not in self._bumped:
                self._bumped.add(sender)
                log.info("dkg.attempt_moved_by", member=sender, attempt=a)
                return a
        return current


class NetworkDKG:
    """Runs the DKG of one pending committee for member ``me`` over ``transport``.

    ``attempt_file`` records the last attempt this member started, so a restart begins
    above it. Keep the object until the epoch is activated: it goes on delivering this
    member's messages (and relays) to peers that are still finishing. ``progress`` says
    where it is: attempt, phase, whom it waits for, whom it went on without.
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
        self._relayed: set[bytes] = set()
        self.attempt = 0
        self.progress: dict[str, Any] = {
            "attempt": 0,
            "phase": "starting",
            "waiting_for": [],
            "left_out": [],
        }

    @property
    def n(self) -> int:
        return len(self.pending.peers)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    def session(self, attempt: int) -> bytes:
        p = self.pending
        return dkg_session_id(self.chain_id, self.committee, p.epoch, p.proposal, attempt)

    def _report(self, attempt: int, phase: str, waiting_for: list[int]) -> None:
        self.progress.update(attempt=attempt, phase=phase, waiting_for=waiting_for)
        text = f"DKG attempt {attempt}: " + (
            f"waiting for {phase} from members {waiting_for}" if waiting_for else phase
        )
        if self.progress["left_out"]:
            text += f"; went on without members {self.progress['left_out']} (silent in round 1)"
        self._on_status(text)

    # -- inbound ----------------------------------------------------------------------------

    async def _until(self, attempt: int, done: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``done()`` (True) or ``timeout`` (None: never) passes (False),
        relaying what arrives and following a justified attempt change meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self.inbox.arrived.clear()  # before looking: an arrival after it wakes the wait
            self._relay_new(attempt)
            wanted = self.inbox.wanted_attempt(attempt, self.f)
            if wanted > attempt:
                raise _Restart(wanted)
            if done():
                return True
            wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if wait <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inbox.arrived.wait(), wait)

    async def _collect(
        self,
        attempt: int,
        msg_type: MsgType,
        expected: set[int],
        timeout: float | None,
        *,
        minimum: int = 0,
    ) -> dict[int, bytes]:
        """The payloads of ``expected`` senders; after ``timeout`` (None: never) the ones
        that arrived, once there are at least ``minimum``."""

        def got() -> dict[int, bytes]:
            out = {}
            for sender in expected:
                payload = self.inbox.get(attempt, msg_type, sender)
                if payload is not None:
                    out[sender] = payload
            return out

        def report() -> bool:
            have = got()
            self._report(attempt, msg_type.name, sorted(expected - set(have)))
            return len(have) == len(expected)

        if not await self._until(attempt, report, timeout):
            await self._until(attempt, lambda: report() or len(got()) >= minimum, None)
        return got()

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
        """Send until the peer has the message (or the attempt is over for everyone):
        bounded, ~hours at the 2 s backoff cap."""

        async def once() -> None:
            if self.attempt > header.attempt:
                return  # the attempt is over for everyone
            try:
                await self.transport.send(peer, header, payload, timeout=self.send_timeout)
            except PeerUnavailable as exc:
                # "replay": the peer accepted it before (a refused message is not recorded).
                if "replay" not in str(exc):
                    raise
            except MessageRejected:  # a reply we cannot use; the peer did get the message
                return

        with contextlib.suppress(PeerUnavailable):  # gave up after the last attempt
            await retry(
                once,
                backoff=_DELIVERY_BACKOFF,
                attempts=10_000,
                retryable=lambda exc: isinstance(exc, PeerUnavailable),
            )

    def _broadcast(self, msg_type: MsgType, attempt: int, payload: bytes) -> None:
        for i in range(self.n):
            if i != self.me:
                self._push(i, msg_type, attempt, payload)

    def _relay_new(self, attempt: int) -> None:
        """Forward every broadcast message not relayed yet to everyone but its author: what
        one honest member holds, every honest member holds one hop later (and so does a
        second, conflicting message: the evidence of equivocation)."""
        session = self.session(attempt)
        for author, copy in self.inbox.broadcasts(attempt):
            digest = bytes(keccak(copy.raw))
            if author == self.me or digest in self._relayed:
                continue
            self._relayed.add(digest)
            payload = encode_dkg_relay(session, copy.raw)
            for i in range(self.n):
                if i not in (self.me, author):
                    self._push(i, MsgType.DKG_RELAY, attempt, payload)

    def _keep_relaying(self, attempt: int) -> None:
        """Done here, but others may still be finishing: go on relaying what arrives (a
        late member's message must reach them through us too), until :meth:`close`."""

        async def relay_forever() -> None:
            while True:
                self.inbox.arrived.clear()
                self._relay_new(attempt)
                await self.inbox.arrived.wait()

        task = asyncio.create_task(relay_forever(), name="dkg-relay")
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

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
        attempt = self.inbox.wanted_attempt(max(self._load_attempt() + 1, 1), self.f)
        failures = 0
        while True:
            if attempt > MAX_ATTEMPT:
                raise KeygenError(f"DKG attempt {attempt} is beyond the last ({MAX_ATTEMPT})")
            self.attempt = attempt
            self.inbox.advance(attempt)
            self._record_attempt(attempt)  # before any message of it leaves this node
            try:
                out = await self._run_attempt(attempt)
            except _Restart as r:
                log.info("dkg.follow_attempt", attempt=r.attempt, abandoned=attempt)
                attempt = r.attempt
            except (_Abandon, GroupKeyUnusableError) as exc:
                log.warning("dkg.attempt_abandoned", attempt=attempt, reason=str(exc))
                failures += 1
                if failures >= MAX_FAILED_ATTEMPTS:
                    raise KeygenError(f"no group key after {failures} failed DKG attempts") from exc
                attempt += 1
            else:
                self._report(attempt, "done", [])
                self._keep_relaying(attempt)
                log.info(
                    "dkg.done",
                    epoch=self.pending.epoch,
                    attempt=attempt,
                    group_key=out.public.group_key.serialize().hex(),
                    disqualified=dict(out.disqualified),
                )
                return out

    async def _run_attempt(self, a: int) -> DKGOutput:
        session = self.session(a)
        ids = {i + 1: p.identity_key for i, p in enumerate(self.pending.peers)}
        config = DKGConfig(MIRA_EVM, session, self.pending.threshold, ids)
        me = DKGParticipant(config, self.me + 1, self.identity)
        others = set(range(self.n)) - {self.me}
        self.progress["left_out"] = []

        # Round 1: everyone's commitments and proof of knowledge; after the timeout, the
        # t + f (or more) that answered.
        own_r1 = me.round1()
        used = {self.me: encode_dkg_round1(session, own_r1)}
        self._broadcast(MsgType.DKG_ROUND1, a, used[self.me])
        quorum = agreement_quorum(self.n, self.pending.threshold)
        got = await self._collect(
            a, MsgType.DKG_ROUND1, others, self.phase_timeout, minimum=quorum - 1
        )
        self.progress["left_out"] = sorted(others - set(got))
        if self.progress["left_out"]:
            log.warning("dkg.left_out", attempt=a, members=self.progress["left_out"])
        used |= got
        round1: list[Round1Message] = [own_r1]
        for sender, payload in got.items():
            try:
                _, msg = decode_dkg_round1(payload, sender + 1)
            except MessageRejected as exc:
                log.warning("dkg.bad_round1", sender=sender, error=exc.detail)
                continue  # no valid round-1 message: the DKG disqualifies the dealer
            round1.append(msg)
        me.receive_round1(round1)
        digests = [bytes(keccak(used[s])) if s in used else _NO_DIGEST for s in range(self.n)]

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

        # Complaints, with the digests of the round-1 messages this member used.
        self._broadcast(
            MsgType.DKG_COMPLAINTS, a, encode_dkg_complaints(session, digests, complaints)
        )
        got = await self._collect(a, MsgType.DKG_COMPLAINTS, qualified, self.phase_timeout)
        out = await self._faults(a, got, digests)
        everyone = list(complaints)
        for sender, payload in sorted(got.items()):
            if sender not in out:  # an author found cheating accuses nobody
                everyone += decode_dkg_complaints(payload, sender + 1)[2]
        for member, why in sorted(out.items()):
            log.warning("dkg.member_out", member=member, reason=why)
            everyone.append(Complaint(self.me + 1, member + 1, why, answerable=False))

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
            if len(self.inbox.copies(a, MsgType.DKG_JUSTIFY, sender)) > 1:
                why = "signed two different justifications"
                everyone.append(Complaint(self.me + 1, sender + 1, why, answerable=False))
                continue
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

    async def _faults(
        self, a: int, complaints: dict[int, bytes], digests: list[bytes]
    ) -> dict[int, str]:
        """Members out as dealers for what they signed: two different messages for one slot
        (equivocation, proven by the two signatures), a malformed complaints message, or a
        round-1 digest that differs from ours with no evidence behind it.

        A differing digest is only an announcement: an honest member that used another
        round-1 message of dealer D than ours holds it signed by D, and relays it. So within
        ``phase_timeout`` the evidence is here (D is out) or the claim was a lie (the
        claimant is out). Everyone decides on the same signed messages, which the relays
        bring to every honest member alike.
        """
        out: dict[int, str] = {}
        claims: list[tuple[int, int]] = []  # (claimant, dealer)
        for sender, payload in sorted(complaints.items()):
            try:
                _, theirs, _ = decode_dkg_complaints(payload, sender + 1)
            except MessageRejected as exc:
                out[sender] = f"malformed complaints message: {exc.detail}"
                continue
            if len(theirs) != self.n:
                out[sender] = f"{len(theirs)} round-1 digests, not {self.n}"
                continue
            claims += [
                (sender, d)
                for d in range(self.n)
                if d != sender
                and _NO_DIGEST not in (theirs[d], digests[d])  # both used one: compare
                and theirs[d] != digests[d]
            ]

        def proven(dealer: int) -> bool:
            return len(self.inbox.copies(a, MsgType.DKG_ROUND1, dealer)) > 1

        if claims:
            await self._until(a, lambda: all(proven(d) for _, d in claims), self.phase_timeout)
        for claimant, dealer in claims:
            if not proven(dealer):
                out.setdefault(
                    claimant,
                    f"claimed member {dealer} sent other round-1 commitments, with no evidence",
                )
        for member in range(self.n):
            if member == self.me:
                continue
            if len(self.inbox.copies(a, MsgType.DKG_ROUND1, member)) > 1:
                out[member] = "equivocated in round 1"
            elif len(self.inbox.copies(a, MsgType.DKG_COMPLAINTS, member)) > 1:
                out[member] = "signed two different complaints messages"
        return out
