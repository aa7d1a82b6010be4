"""Errors of the cryptography subsystem.

One subtree under :class:`CryptoError`; every leaf carries the data needed to act on it
(which participant, which length, which dealer) and never any secret. Leaves that are a
bad value are also :class:`ValueError`, the way web3.py's ``Web3ValueError`` is.
"""

from __future__ import annotations

from collections.abc import Iterable

from oracle.errors import MiraError


class CryptoError(MiraError):
    """Base class of every error raised by ``oracle.crypto``."""


# --- encodings and group elements --------------------------------------------------------


class InvalidPointError(CryptoError, ValueError):
    """Bytes that do not encode a point of secp256k1 (not on the curve, bad prefix)."""


class IdentityPointError(InvalidPointError):
    """The identity element where a non-identity element is required."""


class WrongLengthError(CryptoError, ValueError):
    """An encoding of the wrong length."""

    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(f"{what}: expected {expected} bytes, got {actual}")
        self.what = what
        self.expected = expected
        self.actual = actual


class ScalarOutOfRangeError(CryptoError, ValueError):
    """A scalar that is zero where zero is forbidden, or not below the group order N."""


# --- participants --------------------------------------------------------------------------


class DuplicateParticipantError(CryptoError, ValueError):
    """The same participant identifier appears twice."""

    def __init__(self, identifier: int) -> None:
        super().__init__(f"participant {identifier} appears more than once")
        self.identifier = identifier


class UnknownParticipantError(CryptoError, ValueError):
    """A participant identifier that is not a member of the group."""

    def __init__(self, identifier: int, context: str = "") -> None:
        where = f" ({context})" if context else ""
        super().__init__(f"participant {identifier} is not a member of the group{where}")
        self.identifier = identifier


class NonMemberCommitmentError(UnknownParticipantError):
    """A signing commitment (or DKG message) from an identifier outside the group."""


class TooFewParticipantsError(CryptoError, ValueError):
    """Fewer than the threshold t participants (commitments, shares or honest signers)."""

    def __init__(self, what: str, threshold: int, actual: int) -> None:
        super().__init__(f"{what}: need at least {threshold}, got {actual}")
        self.threshold = threshold
        self.actual = actual


# --- signing -----------------------------------------------------------------------------


class NonceReuseError(CryptoError):
    """A nonce pair that was already consumed (or is being consumed a second time)."""

    def __init__(self, key_id: bytes, commitment_digest: bytes) -> None:
        super().__init__(
            f"nonce with commitment digest {commitment_digest.hex()} already used "
            f"under key {key_id.hex()}"
        )
        self.key_id = key_id
        self.commitment_digest = commitment_digest


class InvalidSignatureShareError(CryptoError):
    """One or more signature shares fail verification; names every bad signer."""

    def __init__(self, signers: Iterable[int]) -> None:
        self.signers: tuple[int, ...] = tuple(sorted(signers))
        super().__init__(f"invalid signature share from signer(s) {list(self.signers)}")


class InvalidSignatureError(CryptoError):
    """An aggregate signature that does not verify."""


class DegenerateRoundError(CryptoError):
    """A round whose challenge or group commitment is degenerate (probability ~2⁻²⁵⁶).

    The round cannot be completed; start a new one with fresh nonces.
    """


# --- key generation and transport --------------------------------------------------------


class InvalidProofOfKnowledgeError(CryptoError):
    """A DKG dealer's proof of knowledge of its constant term does not verify."""

    def __init__(self, dealer: int) -> None:
        super().__init__(f"DKG dealer {dealer}: proof of knowledge does not verify")
        self.dealer = dealer


class InvalidDealerShareError(CryptoError):
    """A DKG share that does not match its dealer's polynomial commitments."""

    def __init__(self, dealer: int, recipient: int) -> None:
        super().__init__(
            f"DKG dealer {dealer}: share for participant {recipient} does not match the "
            "dealer's commitments"
        )
        self.dealer = dealer
        self.recipient = recipient


class UndecryptableShareError(CryptoError):
    """An encrypted share that is tampered, misaddressed or not signed by its sender."""

    def __init__(self, sender: int, recipient: int, reason: str) -> None:
        super().__init__(f"encrypted share {sender} → {recipient}: {reason}")
        self.sender = sender
        self.recipient = recipient


class DKGError(CryptoError):
    """The DKG cannot complete (too few qualified dealers, out-of-order use)."""


class KeystoreError(CryptoError):
    """A key file that is missing, malformed, or cannot be decrypted."""


class WrongPassphraseError(KeystoreError):
    """The passphrase does not decrypt the key file (or the file was tampered with)."""
