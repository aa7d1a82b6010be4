"""The codec of the envelope of every Mira p2p message: versioned, length-checked, signed.

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

This module is the envelope only. Each payload's codec lives beside the protocol that
owns it: the round's in :mod:`oracle.reporting.messages`, the DKG's in
:mod:`oracle.node.keygen_messages`. Both decode with :class:`Reader` and
:func:`guarded`, so every payload is length-checked the same way and every malformed
one is a :class:`MessageRejected` ("malformed").
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import coincurve

from oracle.crypto.errors import CryptoError
from oracle.crypto.group import N
from oracle.crypto.keccak import keccak
from oracle.p2p.errors import MessageRejected

MAGIC = b"MP"
VERSION = 1
DOMAIN = b"MIRA-P2P-v1\x00"
_HEADER = struct.Struct(">2sBBQ20sQQBBI")
HEADER_LEN = _HEADER.size  # 54
SIGNATURE_LEN = 65
MAX_MESSAGE_BYTES = 64 * 1024
#: A list too long for one message (a pull round's leaves or outputs) travels in at most
#: this many, the part index in ``attempt`` (oracle.reporting.pull_parts).
MAX_PARTS = 32
_HALF_N = N // 2
_T = TypeVar("_T")


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
    PULL_NONCE_REQUEST = 16  # leader → signer: a nonce commitment for the round's pull root
    PULL_PROPOSE = 17  # leader → signer: the pull root's leaves and the signing set
    PULL_ROOT = 18  # leader → all: the signed pull root (its leaves came as PULL_LEAVES)
    PULL_OBSERVE = 19  # leader → member: one part of your outputs (attempt = part index)
    PULL_OBSERVATION = 20  # member → leader (reply): that part of its outputs
    PULL_LEAVES = 21  # leader → member: one part of the round's pull leaves (attempt = index)
    # The pull root's own replies: a round signs its push report and its pull root under the
    # same (round, attempt) numbers, and a reply's type is part of the replay key, so the
    # two rounds' nonces and shares must not share a type (one would be refused as a
    # replay of the other, and the round would lose its report or its root).
    PULL_NONCE = 22  # signer → leader (reply to PULL_NONCE_REQUEST)
    PULL_SHARE = 23  # signer → leader (reply to PULL_PROPOSE): FROST share of the root


#: Types a node accepts as an unsolicited request; the others only as replies.
REQUEST_TYPES = frozenset(
    {
        MsgType.OBSERVE,
        MsgType.PROPOSE,
        MsgType.NONCE_REQUEST,
        MsgType.REPORT,
        MsgType.PULL_NONCE_REQUEST,
        MsgType.PULL_PROPOSE,
        MsgType.PULL_ROOT,
        MsgType.PULL_OBSERVE,
        MsgType.PULL_LEAVES,
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


# -- payload decoding ----------------------------------------------------------------------


class Reader:
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


def guarded(
    what: str, fn: Callable[..., _T], *args: Any, errors: tuple[type[Exception], ...] = ()
) -> _T:
    """Run a decoder of a payload's part (a point, a commitment, a report); turn its error
    (a CryptoError, a ValueError, or one of ``errors``) into a MessageRejected."""
    caught: tuple[type[Exception], ...] = (CryptoError, ValueError, *errors)
    try:
        return fn(*args)
    except caught as exc:
        raise MessageRejected("malformed", f"{what}: {exc}") from None


__all__ = [
    "HEADER_LEN",
    "MAX_MESSAGE_BYTES",
    "MAX_PARTS",
    "REQUEST_TYPES",
    "SIGNATURE_LEN",
    "Envelope",
    "Header",
    "MsgType",
    "Reader",
    "guarded",
    "peek_header",
    "seal",
    "unseal",
]
