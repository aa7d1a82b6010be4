"""Signing nonces: hedged, single use, generated ahead in batches, logged before use.

Reusing a nonce pair for two different signature shares reveals the signer's secret
share (two linear equations in one unknown), so:

* nonces are *hedged* (RFC 9591 §4.1): k = H3(random_bytes(32) ‖ SerializeScalar(sᵢ)).
  A broken RNG alone does not repeat k across keys, and a leaked RNG state alone does not
  reveal k. They are never derived from the message.
* a :class:`NoncePool` hands each pair out at most once (it is removed when taken);
* before any share computed from a pair leaves the node, the signer records the pair's
  commitment digest in a durable :class:`UsedNonceLog`, which refuses a second record.
  A crash after the record and before the share is sent only burns the pair; a node can
  therefore never release two shares for one pair, even across restarts.

Python cannot zeroize memory: "erasing" a nonce drops every reference to it so it is
garbage; secrets are never logged and never appear in ``repr``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from oracle.crypto.errors import (
    IdentityPointError,
    NonceReuseError,
    UnknownParticipantError,
    WrongLengthError,
)
from oracle.crypto.group import (
    ELEMENT_LEN,
    SCALAR_LEN,
    Point,
    base_mul,
    deserialize_scalar,
    serialize_scalar,
)
from oracle.crypto.suites import Ciphersuite


def nonce_generate(suite: Ciphersuite, secret: int, random_bytes: bytes | None = None) -> int:
    """RFC 9591 §4.1 nonce_generate: H3(random_bytes(32) ‖ SerializeScalar(secret))."""
    if random_bytes is None:
        random_bytes = secrets.token_bytes(32)
    if len(random_bytes) != 32:
        raise WrongLengthError("nonce randomness", 32, len(random_bytes))
    return suite.H3(random_bytes + serialize_scalar(secret))


def commitment_digest(hiding: Point, binding: Point) -> bytes:
    """SHA-256 of (hiding ‖ binding) commitments, domain-separated: the nonce log's key."""
    return hashlib.sha256(
        b"MIRA-nonce-commitment-v1" + hiding.serialize() + binding.serialize()
    ).digest()


@dataclass(frozen=True)
class SigningCommitment:
    """A signer's round-one output (D, E) = (d·G, e·G), public."""

    identifier: int
    hiding: Point
    binding: Point

    def __post_init__(self) -> None:
        if self.hiding.is_identity or self.binding.is_identity:
            raise IdentityPointError(f"signer {self.identifier}: nonce commitment is the identity")

    @property
    def digest(self) -> bytes:
        return commitment_digest(self.hiding, self.binding)

    def to_bytes(self) -> bytes:
        """SerializeScalar(id) ‖ SerializeElement(D) ‖ SerializeElement(E) (98 bytes)."""
        return (
            serialize_scalar(self.identifier) + self.hiding.serialize() + self.binding.serialize()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningCommitment:
        expected = SCALAR_LEN + 2 * ELEMENT_LEN
        if len(data) != expected:
            raise WrongLengthError("signing commitment", expected, len(data))
        identifier = deserialize_scalar(data[:SCALAR_LEN], what="participant identifier")
        hiding = Point.deserialize(data[SCALAR_LEN : SCALAR_LEN + ELEMENT_LEN])
        binding = Point.deserialize(data[SCALAR_LEN + ELEMENT_LEN :])
        return cls(identifier, hiding, binding)


class SigningNonces:
    """A secret nonce pair (d, e) and its public commitment. Single use; redacted repr."""

    __slots__ = ("_binding", "_hiding", "commitment")

    def __init__(self, hiding: int, binding: int, commitment: SigningCommitment) -> None:
        self._hiding: int | None = hiding
        self._binding: int | None = binding
        self.commitment = commitment

    @classmethod
    def generate(
        cls,
        suite: Ciphersuite,
        identifier: int,
        secret: int,
        *,
        hiding_randomness: bytes | None = None,
        binding_randomness: bytes | None = None,
    ) -> SigningNonces:
        """RFC 9591 §5.1 commit(): two hedged nonces and their commitments."""
        d = nonce_generate(suite, secret, hiding_randomness)
        e = nonce_generate(suite, secret, binding_randomness)
        return cls(d, e, SigningCommitment(identifier, base_mul(d), base_mul(e)))

    def secrets(self) -> tuple[int, int]:
        if self._hiding is None or self._binding is None:
            raise NonceReuseError(b"", self.commitment.digest)
        return self._hiding, self._binding

    def erase(self) -> None:
        self._hiding = None
        self._binding = None

    @property
    def erased(self) -> bool:
        return self._hiding is None

    def __repr__(self) -> str:
        state = "erased" if self.erased else "<redacted>"
        return f"SigningNonces(signer={self.commitment.identifier}, {state})"

    __str__ = __repr__


class UsedNonceLog(Protocol):
    """Durable record of consumed nonce pairs, keyed by (key id, commitment digest)."""

    def mark_used(self, key_id: bytes, commitment_digest: bytes) -> None:
        """Durably record that the nonce pair with this commitment digest was consumed under key_id.
        Raises NonceReuseError if it was already recorded. Must be durable (committed) when it returns."""  # noqa: E501
        ...

    def is_used(self, key_id: bytes, commitment_digest: bytes) -> bool: ...


class InMemoryUsedNonceLog:
    """A :class:`UsedNonceLog` in a set: for tests and benchmarks only (not durable)."""

    def __init__(self) -> None:
        self._used: set[tuple[bytes, bytes]] = set()

    def mark_used(self, key_id: bytes, commitment_digest: bytes) -> None:
        entry = (bytes(key_id), bytes(commitment_digest))
        if entry in self._used:
            raise NonceReuseError(key_id, commitment_digest)
        self._used.add(entry)

    def is_used(self, key_id: bytes, commitment_digest: bytes) -> bool:
        return (bytes(key_id), bytes(commitment_digest)) in self._used

    def __len__(self) -> int:
        return len(self._used)


class NoncePool:
    """Nonce pairs of one signer under one key, generated ahead; each handed out once."""

    def __init__(self, suite: Ciphersuite, identifier: int, secret: int) -> None:
        self._suite = suite
        self._identifier = identifier
        self._secret = secret
        self._pairs: dict[bytes, SigningNonces] = {}

    def generate(self, count: int) -> list[SigningCommitment]:
        """Make ``count`` fresh pairs; return their public commitments."""
        out = []
        for _ in range(count):
            nonces = SigningNonces.generate(self._suite, self._identifier, self._secret)
            self._pairs[nonces.commitment.digest] = nonces
            out.append(nonces.commitment)
        return out

    def peek(self, commitment: SigningCommitment) -> SigningNonces:
        """The pair behind ``commitment`` without consuming it (for validation)."""
        nonces = self._pairs.get(commitment.digest)
        if nonces is None or commitment.identifier != self._identifier:
            raise UnknownParticipantError(
                commitment.identifier, "commitment is not one of this signer's unused nonces"
            )
        return nonces

    def take(self, commitment: SigningCommitment) -> SigningNonces:
        """Remove and return the pair behind ``commitment``; it can never be taken again."""
        nonces = self.peek(commitment)
        del self._pairs[commitment.digest]
        return nonces

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"NoncePool(signer={self._identifier}, available={len(self._pairs)})"
