"""A small committee of identity keys and authenticators for p2p tests."""

from __future__ import annotations

import coincurve
from prometheus_client import CollectorRegistry

from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.wire import MAX_MESSAGE_BYTES, Header, MsgType

CHAIN_ID = 31337
COMMITTEE = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
EPOCH = 3


def keys(n: int = 4) -> list[coincurve.PrivateKey]:
    return [coincurve.PrivateKey(bytes([i + 1]) * 32) for i in range(n)]


def authenticator(members: list[coincurve.PrivateKey], **kw: float) -> Authenticator:
    auth = Authenticator(
        chain_id=CHAIN_ID,
        committee=COMMITTEE,
        metrics=P2PMetrics(CollectorRegistry()),
        max_bytes=MAX_MESSAGE_BYTES,
        **kw,  # type: ignore[arg-type]
    )
    auth.serve_epochs(
        [EpochMembers(EPOCH, tuple(k.public_key.format(compressed=True) for k in members))]
    )
    return auth


def header(
    msg_type: MsgType = MsgType.PING,
    *,
    sender: int = 0,
    round_: int = 100,
    attempt: int = 0,
    epoch: int = EPOCH,
    chain_id: int = CHAIN_ID,
    committee: bytes = COMMITTEE,
) -> Header:
    return Header(msg_type, chain_id, committee, epoch, round_, attempt, sender)


def rejected(auth: Authenticator, reason: str) -> float:
    value = auth.metrics.rejected.labels(reason)._value.get()
    return float(value)
