"""The DKG's p2p payloads (oracle.node.keygen): round-1 commitments, encrypted shares,
complaints, justifications and relays.

Each travels inside the signed envelope of :mod:`oracle.p2p.wire` and starts with the
32-byte session id. They live beside the key generation that speaks them, not in
oracle.crypto: the codecs reject with p2p's MessageRejected, and crypto sits below p2p.
"""

from __future__ import annotations

from oracle.crypto.dkg import Complaint, Justification, Round1Message
from oracle.crypto.envelope import EncryptedShare
from oracle.crypto.group import ELEMENT_LEN, SCALAR_LEN, N, Point
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import HEADER_LEN, SIGNATURE_LEN, Reader, guarded

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
    r = Reader(data, "dkg round 1")
    session = r.take(32)
    count = r.u8()
    points = tuple(
        guarded("dkg commitment", Point.deserialize, r.take(ELEMENT_LEN)) for _ in range(count)
    )
    proof_r = guarded("dkg proof", Point.deserialize, r.take(ELEMENT_LEN))
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
    r = Reader(data, "dkg share")
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
    r = Reader(data, "dkg complaints")
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
    r = Reader(data, "dkg justifications")
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
