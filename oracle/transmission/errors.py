"""Errors raised by the transaction manager.

Leaves carry what an operator needs to act: the RPC that misbehaved and how, the
idempotency key that clashed, the value that was refused.
"""

from __future__ import annotations

from oracle.errors import ChainError, MiraError


class TransmissionError(MiraError):
    """The transaction manager refused a request or cannot make progress."""


class InvalidTransmission(TransmissionError, ValueError):
    """An enqueued call is malformed (bad address, negative value, oversized data, ...)."""


class IdempotencyConflict(TransmissionError):
    """The idempotency key is already stored for a different call on this chain."""

    def __init__(self, chain_id: int, key: bytes, existing_id: int) -> None:
        self.chain_id = chain_id
        self.key = key
        self.existing_id = existing_id
        super().__init__(
            f"idempotency key {key.hex()} on chain {chain_id} already belongs to "
            f"transmission {existing_id} with a different target, data or value"
        )


class QueueFull(TransmissionError):
    """Too many unfinished transmissions: accepting more would only build a backlog."""

    def __init__(self, pending: int, limit: int) -> None:
        self.pending = pending
        self.limit = limit
        super().__init__(
            f"{pending} transmissions are still unfinished (limit {limit}); "
            "refusing to queue more until some confirm"
        )


class UnknownTransmission(TransmissionError, KeyError):
    """No transmission has this id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class RpcError(TransmissionError, ChainError):
    """Talking to an RPC endpoint failed."""


class RpcUnavailable(RpcError):
    """No endpoint of the pool could serve the request."""


class BadRpcResponse(RpcError):
    """An endpoint answered something that cannot be right; it gets demoted.

    ``reason`` is a short machine-readable tag (``malformed-json``, ``wrong-chain-id``,
    ``wrong-receipt``, ``absurd-fee``, ...), also used as the metric label.
    """

    def __init__(self, url: str, reason: str, detail: str) -> None:
        self.url = url
        self.reason = reason
        self.detail = detail
        super().__init__(f"RPC {url} answered badly ({reason}): {detail}")


class JsonRpcError(RpcError):
    """A well-formed JSON-RPC error answer (e.g. a revert, "nonce too low").

    This is the node speaking, not a broken endpoint: no demotion.
    """

    def __init__(self, url: str, method: str, code: int, message: str, data: object) -> None:
        self.url = url
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{method} on {url} returned error {code}: {message}")
