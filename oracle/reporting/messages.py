"""The round protocol's p2p payloads (oracle.reporting.protocol): observations,
proposals, signature shares, nonce commitments, refusals and signed reports.

Each travels inside the signed envelope of :mod:`oracle.p2p.wire`; strict lengths, no
optional trailing data. Feed updates are written with the report's own update codec
(:func:`oracle.reporting.report.encode_update`), the one layout of an update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from oracle.crypto.group import SCALAR_LEN
from oracle.crypto.nonces import SigningCommitment
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import Reader, guarded
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.report import (
    UPDATE_SIZE,
    FeedUpdate,
    Report,
    decode,
    decode_update,
    encode_update,
)

COMMITMENT_LEN = 98  # SigningCommitment.to_bytes()
EVM_SIGNATURE_LEN = 52  # address(R) ‖ z
_T = TypeVar("_T")


def _guard(what: str, fn: Callable[..., _T], *args: Any) -> _T:
    return guarded(what, fn, *args, errors=(ReportFormatError,))


def _encode_updates(updates: tuple[FeedUpdate, ...]) -> bytes:
    return len(updates).to_bytes(2, "big") + b"".join(encode_update(u) for u in updates)


def _decode_updates(r: Reader) -> tuple[FeedUpdate, ...]:
    count = r.u16()
    out = []
    seen: set[bytes] = set()
    for _ in range(count):
        u = _guard("observation", decode_update, r.take(UPDATE_SIZE))
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
        r = Reader(data, "observation")
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
        r = Reader(data, "proposal")
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
    return _guard("nonce commitment", SigningCommitment.from_bytes, data)


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
        r = Reader(data, "signed report")
        report = r.take(r.u32())
        _guard("signed report", decode, report)
        signature = r.take(EVM_SIGNATURE_LEN)
        r.done()
        return cls(report, signature)
