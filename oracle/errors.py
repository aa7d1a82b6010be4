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
