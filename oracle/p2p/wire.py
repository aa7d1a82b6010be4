"""The one codec of Mira's p2p messages: a versioned, length-checked, signed envelope.

::

    message = header ‖ payload ‖ signature
    header  = magic "MP" ‖ version u8 (=1) ‖ type u8 ‖ chain_id u64 ‖ committee address[20]
              ‖ epoch u64 ‖ round u64 ‖ attempt u8 ‖ sender u8 ‖ payload_len u32      (54 bytes)
    signature = ECDSA-secp256k1 over keccak256("MIRA-P2P-v1\\0" ‖ header ‖ payload),
                r ‖ s ‖ recovery id                                                  (65 bytes)

Integers are big-endian. ``sender`` is the sender's index in the epoch's member list
(the committee contract's ``members(epoch)``), so the verifier knows which identity key
must have signed without trusting anything the sender says about itself.

Why each field is under the signature: ``chain_id`` and the committee address stop a
message of one deployment being replayed into another; ``epoch`` stops a message signed
under an old committee being replayed into a new one; ``round``, ``type`` and ``attempt``
make every message of an honest sender unique, which is what the replay guard keys on
(oracle.p2p.auth). ``payload_len`` is signed with the rest, so the total length is fixed by
the header: a message with trailing or missing bytes never parses.

Payloads (one dataclass each, strict lengths, no optional trailing data) are below.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import coincurve
from eth_utils.crypto import keccak

from oracle.crypto.dkg import Complaint, Justification, Round1Message
from oracle.crypto.envelope import EncryptedShare
from oracle.crypto.errors import CryptoError
from oracle.crypto.group import ELEMENT_LEN, SCALAR_LEN, N, Point
from oracle.crypto.nonces import SigningCommitment
from oracle.p2p.errors import MessageRejected
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.report import UPDATE_SIZE, FeedUpdate, Report, decode, encode

MAGIC = b"MP"
VERSION = 1
DOMAIN = b"MIRA-P2P-v1\x00"
_HEADER = struct.Struct(">2sBBQ20sQQBBI")
HEADER_LEN = _HEADER.size  # 54
SIGNATURE_LEN = 65
MAX_MESSAGE_BYTES = 64 * 1024
COMMITMENT_LEN = 98  # SigningCommitment.to_bytes()
EVM_SIGNATURE_LEN = 52  # address(R) ‖ z
_HALF_N = N // 2


class MsgType(IntEnum):
    """What a message is; part of the signed header and of the replay key."""

    OBSERVE = 1  # leader → member: send your outputs and a nonce commitment for this round
    OBSERVATION = 2  # member → leader (reply): outputs + fresh nonce commitment
    PROPOSE = 3  # leader → signer: report, the observations behind it, the signing set
    SHARE = 4  # signer → leader (reply): FROST signature share
    REFUSE = 5  # member → leader (reply): why it will not sign / observe
    NONCE_REQUEST = 6  # leader → signer: a fresh nonce commitment for a new attempt
    NONCE = 7  # signer → leader (reply)
    REPORT = 8  # leader → all: the aggregated, signed report to transmit
    DKG_ROUND1 = 9  # broadcast: coefficient commitments + proof of knowledge
    DKG_SHARE = 10  # point to point: an encrypted, dealer-signed share
    DKG_COMPLAINTS = 11  # broadcast: complaints (possibly none)
    PING = 12  # liveness, for `mira committee status`
    ACK = 13  # reply: received, nothing to say
    DKG_JUSTIFY = 14  # broadcast by an accused dealer: the accusers' shares in clear
    DKG_RELAY = 15  # echo: another member's signed DKG broadcast message, forwarded whole


#: Types a node accepts as an unsolicited request; the others only as replies.
REQUEST_TYPES = frozenset(
    {
        MsgType.OBSERVE,
        MsgType.PROPOSE,
        MsgType.NONCE_REQUEST,
        MsgType.REPORT,
        MsgType.DKG_ROUND1,
        MsgType.DKG_SHARE,
        MsgType.DKG_COMPLAINTS,
        MsgType.DKG_JUSTIFY,
        MsgType.DKG_RELAY,
        MsgType.PING,
    }
)


@dataclass(frozen=True, slots=True)
class Header:
    type: MsgType
    chain_id: int
    committee: bytes  # 20-byte contract address
    epoch: int
    round: int
    attempt: int
    sender: int

    def pack(self, payload_len: int) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            int(self.type),
            self.chain_id,
            self.committee,
            self.epoch,
            self.round,
            self.attempt,
            self.sender,
            payload_len,
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed message. ``signer_key`` is recovered from the signature, not yet trusted:
    oracle.p2p.auth compares it with the member key the header's sender index names."""

    header: Header
    payload: bytes
    signer_key: bytes
    raw: bytes


def signing_digest(header_and_payload: bytes) -> bytes:
    return keccak(DOMAIN + header_and_payload)


def seal(header: Header, payload: bytes, key: coincurve.PrivateKey) -> bytes:
    """Serialize and sign one message."""
    if len(payload) > MAX_MESSAGE_BYTES - HEADER_LEN - SIGNATURE_LEN:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the message limit")
    body = header.pack(len(payload)) + payload
    signature = key.sign_recoverable(signing_digest(body), hasher=None)
    return body + bytes(signature)


def peek_header(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Header:
    """The header of a message, from its structure alone: no signature is recovered.

    Checks, in order: size limit, exact length, magic, version and known type. A node runs
    these (and its cheap binding checks on the result) before it spends a signature
    recovery on bytes from the network, so malformed floods cost almost nothing.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MessageRejected("malformed", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MessageRejected("oversized", f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    if len(data) < HEADER_LEN + SIGNATURE_LEN:
        raise MessageRejected("truncated", f"{len(data)} bytes is shorter than a header")
    magic, version, mtype, chain_id, committee, epoch, round_, attempt, sender, plen = (
        _HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise MessageRejected("malformed", f"bad magic {magic!r}")
    if version != VERSION:
        raise MessageRejected("bad_version", f"version {version}, this node speaks {VERSION}")
    if len(data) != HEADER_LEN + plen + SIGNATURE_LEN:
        raise MessageRejected(
            "truncated" if len(data) < HEADER_LEN + plen + SIGNATURE_LEN else "malformed",
            f"{len(data)} bytes, the header announces {HEADER_LEN + plen + SIGNATURE_LEN}",
        )
    try:
        msg_type = MsgType(mtype)
    except ValueError:
        raise MessageRejected("malformed", f"unknown message type {mtype}") from None
    return Header(msg_type, chain_id, bytes(committee), epoch, round_, attempt, sender)


def unseal(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Parse a message and recover its signer; raise MessageRejected saying what is wrong.

    Checks :func:`peek_header`'s structure, then a canonical (low-s) signature that
    recovers to some key. Membership, epoch and replay are the caller's (auth) business.
    """
    header = peek_header(data, max_bytes=max_bytes)
    data = bytes(data)
    plen = len(data) - HEADER_LEN - SIGNATURE_LEN
    body, signature = data[: HEADER_LEN + plen], data[HEADER_LEN + plen :]
    # Only low-s signatures: one valid encoding per signature, so no two byte strings of
    # the same message verify (the replay guard does not depend on it, logs do).
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < s <= _HALF_N or signature[64] > 3:
        raise MessageRejected("bad_signature", "non-canonical signature")
    try:
        signer = coincurve.PublicKey.from_signature_and_message(
            signature, signing_digest(body), hasher=None
        ).format(compressed=True)
    except (ValueError, TypeError) as exc:
        raise MessageRejected("bad_signature", f"signature does not recover: {exc}") from None
    return Envelope(header, data[HEADER_LEN : HEADER_LEN + plen], bytes(signer), data)


# -- payloads -------------------------------------------------------------------------------


class _Reader:
    """Strict cursor over a payload: every read is bounds-checked, and ``done`` requires
    that nothing is left over."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MessageRejected("malformed", f"{self.what}: truncated payload")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise MessageRejected(
                "malformed", f"{self.what}: {len(self.data) - self.pos} trailing bytes"
            )


def _guard(what: str, fn, *args):  # type: ignore[no-untyped-def]
    """Run a crypto or report decoder; turn its error into a MessageRejected."""
    try:
        return fn(*args)
    except (CryptoError, ReportFormatError, ValueError) as exc:
        raise MessageRejected("malformed", f"{what}: {exc}") from None


def _encode_updates(updates: tuple[FeedUpdate, ...]) -> bytes:
    parts = [len(updates).to_bytes(2, "big")]
    for u in updates:
        parts += [
            u.feed_id,
            u.value.to_bytes(16, "big", signed=True),
            u.observed_at.to_bytes(8, "big"),
            u.model_commitment,
        ]
    return b"".join(parts)


def _decode_updates(r: _Reader) -> tuple[FeedUpdate, ...]:
    count = r.u16()
    out = []
    seen: set[bytes] = set()
    for _ in range(count):
        raw = r.take(UPDATE_SIZE)
        u = _guard(
            "observation",
            FeedUpdate,
            raw[:32],
            int.from_bytes(raw[32:48], "big", signed=True),
            int.from_bytes(raw[48:56], "big"),
            raw[56:88],
        )
        if u.feed_id in seen:
            raise MessageRejected("malformed", f"feed 0x{u.feed_id.hex()} observed twice")
        seen.add(u.feed_id)
        out.append(u)
    return tuple(out)


@dataclass(frozen=True)
class Observation:
    """A member's latest output per feed, and a fresh nonce commitment for this round."""

    outputs: tuple[FeedUpdate, ...]
    nonce: SigningCommitment | None

    def encode(self) -> bytes:
        tail = b"\x01" + self.nonce.to_bytes() if self.nonce is not None else b"\x00"
        return _encode_updates(self.outputs) + tail

    @classmethod
    def decode(cls, data: bytes) -> Observation:
        r = _Reader(data, "observation")
        outputs = _decode_updates(r)
        flag = r.u8()
        nonce = None
        if flag == 1:
            nonce = _guard("nonce commitment", SigningCommitment.from_bytes, r.take(COMMITMENT_LEN))
        elif flag != 0:
            raise MessageRejected("malformed", f"observation: nonce flag {flag}")
        r.done()
        return cls(outputs, nonce)


@dataclass(frozen=True)
class Proposal:
    """The leader's report, the signed observations it is the median of, and the signing
    set's nonce commitments (sorted by identifier)."""

    report: bytes
    observations: tuple[bytes, ...]  # raw signed OBSERVATION messages
    commitments: tuple[SigningCommitment, ...]

    def encode(self) -> bytes:
        parts = [len(self.report).to_bytes(4, "big"), self.report]
        parts.append(len(self.observations).to_bytes(1, "big"))
        for obs in self.observations:
            parts += [len(obs).to_bytes(4, "big"), obs]
        parts.append(len(self.commitments).to_bytes(1, "big"))
        parts += [c.to_bytes() for c in self.commitments]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        r = _Reader(data, "proposal")
        report = r.take(r.u32())
        _guard("proposal report", decode, report)
        observations = tuple(r.take(r.u32()) for _ in range(r.u8()))
        commitments = tuple(
            _guard("nonce commitment", SigningCommitment.from_bytes, r.take(COMMITMENT_LEN))
            for _ in range(r.u8())
        )
        r.done()
        return cls(report, observations, commitments)

    @property
    def decoded_report(self) -> Report:
        return decode(self.report)


def encode_share(z: int) -> bytes:
    return z.to_bytes(SCALAR_LEN, "big")


def decode_share(data: bytes) -> int:
    if len(data) != SCALAR_LEN:
        raise MessageRejected("malformed", f"share: {len(data)} bytes, expected {SCALAR_LEN}")
    return int.from_bytes(data, "big")  # range is checked by verify_signature_share


def encode_commitment(c: SigningCommitment) -> bytes:
    return c.to_bytes()


def decode_commitment(data: bytes) -> SigningCommitment:
    if len(data) != COMMITMENT_LEN:
        raise MessageRejected("malformed", f"nonce: {len(data)} bytes, expected {COMMITMENT_LEN}")
    result: SigningCommitment = _guard("nonce commitment", SigningCommitment.from_bytes, data)
    return result


def encode_refusal(reason: str) -> bytes:
    return reason.encode("utf-8", "replace")[:400]


def decode_refusal(data: bytes) -> str:
    if len(data) > 400:
        raise MessageRejected("malformed", "refusal reason over 400 bytes")
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class SignedReport:
    """An aggregated report: report bytes and the EVM-suite signature address(R) ‖ z."""

    report: bytes
    signature: bytes

    def encode(self) -> bytes:
        return len(self.report).to_bytes(4, "big") + self.report + self.signature

    @classmethod
    def decode(cls, data: bytes) -> SignedReport:
        r = _Reader(data, "signed report")
        report = r.take(r.u32())
        _guard("signed report", decode, report)
        signature = r.take(EVM_SIGNATURE_LEN)
        r.done()
        return cls(report, signature)


# -- DKG payloads ---------------------------------------------------------------------------


def encode_dkg_round1(session: bytes, msg: Round1Message) -> bytes:
    return (
        session
        + len(msg.commitments).to_bytes(1, "big")
        + b"".join(p.serialize() for p in msg.commitments)
        + msg.proof_R.serialize()
        + msg.proof_mu.to_bytes(SCALAR_LEN, "big")
    )


def decode_dkg_round1(data: bytes, sender_id: int) -> tuple[bytes, Round1Message]:
    r = _Reader(data, "dkg round 1")
    session = r.take(32)
    count = r.u8()
    points = tuple(
        _guard("dkg commitment", Point.deserialize, r.take(ELEMENT_LEN)) for _ in range(count)
    )
    proof_r = _guard("dkg proof", Point.deserialize, r.take(ELEMENT_LEN))
    mu = int.from_bytes(r.take(SCALAR_LEN), "big")
    r.done()
    return session, Round1Message(sender_id, points, proof_r, mu)


def encode_dkg_share(session: bytes, env: EncryptedShare) -> bytes:
    return (
        session
        + env.recipient.to_bytes(1, "big")
        + env.ephemeral
        + len(env.ciphertext).to_bytes(2, "big")
        + env.ciphertext
        + len(env.signature).to_bytes(1, "big")
        + env.signature
    )


def decode_dkg_share(data: bytes, sender_id: int) -> tuple[bytes, EncryptedShare]:
    r = _Reader(data, "dkg share")
    session = r.take(32)
    recipient = r.u8()
    ephemeral = r.take(ELEMENT_LEN)
    ciphertext = r.take(r.u16())
    signature = r.take(r.u8())
    r.done()
    return session, EncryptedShare(sender_id, recipient, ephemeral, ciphertext, signature)


def encode_dkg_complaints(
    session: bytes, round1_digests: list[bytes], complaints: list[Complaint]
) -> bytes:
    """``round1_digests[i]``: keccak256 of the round-1 payload the sender used for member
    i (32 zero bytes: none). A digest that differs from a receiver's own is not an
    accusation by itself: it tells the receiver to expect the evidence (a second round-1
    message signed by that dealer, which the sender relays), see oracle.node.keygen."""
    if any(len(d) != 32 for d in round1_digests) or len(round1_digests) > 255:
        raise ValueError("round-1 digests are at most 255 values of 32 bytes")
    parts = [session, len(round1_digests).to_bytes(1, "big"), *round1_digests]
    parts.append(len(complaints).to_bytes(1, "big"))
    for c in complaints:
        reason = c.reason.encode("utf-8", "replace")[:200]
        parts += [c.dealer.to_bytes(1, "big"), len(reason).to_bytes(1, "big"), reason]
    return b"".join(parts)


def decode_dkg_complaints(
    data: bytes, sender_id: int
) -> tuple[bytes, list[bytes], list[Complaint]]:
    r = _Reader(data, "dkg complaints")
    session = r.take(32)
    digests = [r.take(32) for _ in range(r.u8())]
    out = []
    dealers: set[int] = set()
    for _ in range(r.u8()):
        dealer = r.u8()
        if dealer in dealers:
            raise MessageRejected("malformed", f"dkg complaints: dealer {dealer} listed twice")
        dealers.add(dealer)
        reason = r.take(r.u8()).decode("utf-8", "replace")
        out.append(Complaint(sender_id, dealer, reason))
    r.done()
    return session, digests, out


def encode_dkg_justifications(session: bytes, answers: list[Justification]) -> bytes:
    parts = [session, len(answers).to_bytes(1, "big")]
    for a in answers:
        parts += [a.accuser.to_bytes(1, "big"), a.share.to_bytes(SCALAR_LEN, "big")]
    return b"".join(parts)


def decode_dkg_justifications(data: bytes, sender_id: int) -> tuple[bytes, list[Justification]]:
    """The sender is the dealer: it can only answer for its own polynomial."""
    r = _Reader(data, "dkg justifications")
    session = r.take(32)
    out = []
    for _ in range(r.u8()):
        accuser = r.u8()
        share = int.from_bytes(r.take(SCALAR_LEN), "big")
        if share >= N:
            raise MessageRejected("malformed", "dkg justifications: share out of range")
        out.append(Justification(sender_id, accuser, share))
    r.done()
    return session, out


def encode_dkg_relay(session: bytes, raw: bytes) -> bytes:
    """A relay (echo): the session, then another member's whole signed message."""
    return session + raw


def decode_dkg_relay(data: bytes) -> tuple[bytes, bytes]:
    """(session, the relayed message's bytes); the caller unseals and checks those."""
    if len(data) < 32 + HEADER_LEN + SIGNATURE_LEN:
        raise MessageRejected("malformed", f"dkg relay: {len(data)} bytes, no message inside")
    return data[:32], data[32:]


__all__ = [
    "HEADER_LEN",
    "MAX_MESSAGE_BYTES",
    "REQUEST_TYPES",
    "SIGNATURE_LEN",
    "Envelope",
    "Header",
    "MsgType",
    "Observation",
    "Proposal",
    "SignedReport",
    "encode",
    "peek_header",
    "seal",
    "unseal",
]
