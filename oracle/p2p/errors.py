"""Why a p2p message was refused. ``reason`` is the metric label (low cardinality)."""

from __future__ import annotations

from oracle.errors import MiraError


class P2PError(MiraError):
    """Base of every p2p failure."""


class MessageRejected(P2PError):
    """A message that is malformed, unauthentic, replayed, out of epoch or over a limit."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class PeerUnavailable(P2PError):
    """A peer did not answer, or answered with an error."""
