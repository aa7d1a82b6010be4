"""The root of every error Mira raises on purpose.

Each subsystem has its own subclass, and leaves carry the data a user needs to act on
them. Where an error is also a builtin's kind (a bad value, a missing file), the leaf
inherits from that builtin too, so ``except ValueError`` keeps working for callers.
"""


class MiraError(Exception):
    """Base class for every error Mira raises deliberately."""


class ToolchainError(MiraError):
    """The pinned Solidity toolchain or the contract build is missing or broken."""


class ChainError(MiraError):
    """Talking to an EVM node failed or returned something unexpected."""


class Rejected(MiraError, ValueError):
    """An observation a feed refuses; ``reason`` is a short machine-readable code.

    Raised by the sources (a reading that is not a finite number, a bad body) and by the
    model (a record out of its declared ranges), so it lives below both."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
