"""Encrypted, sender-signed transport of DKG round-2 shares.

Each share fᵢ(j) travels from dealer i to recipient j as an :class:`EncryptedShare`:

1. ephemeral–static ECDH on secp256k1: the dealer draws a fresh key a, computes
   S = a·J (J = j's identity key) — libsecp256k1 returns SHA-256(compressed S);
2. HKDF-SHA-256 of that secret into a 32-byte ChaCha20-Poly1305 key, with ``info`` the
   associated data below, so the key is bound to the session, both ends and the ephemeral;
3. AEAD-encrypt the 32-byte share with associated data
   AD = "MIRA-DKG-share-v1" ‖ H(session id) ‖ i ‖ j ‖ ephemeral ‖ J. The key is used for one
   message only (fresh ephemeral), so the all-zero AEAD nonce is safe;
4. the dealer signs SHA-256(AD ‖ ciphertext) with its identity key (ECDSA, RFC 6979).

Why a signature rather than static–static ECDH. Static–static ECDH also authenticates
the sender to the recipient, but the recipient could have produced the same ciphertext
itself, so a complaint ("dealer i sent me a bad share") would rest on the complainer's
word alone. A signed envelope is attributable to the dealer: it can be shown to third
parties as evidence. The ephemeral key also gives forward secrecy against a later leak of
the dealer's identity key.

Any failure — a bad signature, another recipient or session, a flipped ciphertext bit —
raises :class:`UndecryptableShareError`; nothing is returned for a tampered envelope.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oracle.crypto.errors import ScalarOutOfRangeError, UndecryptableShareError, WrongLengthError
from oracle.crypto.group import ELEMENT_LEN, serialize_scalar

_DOMAIN = b"MIRA-DKG-share-v1"
_ZERO_NONCE = bytes(12)


class IdentityKey:
    """A node's p2p identity key (secp256k1): signs envelopes, receives ECDH. Redacted repr."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is not None and len(secret) != 32:
            raise WrongLengthError("identity secret key", 32, len(secret))
        try:
            self._key = coincurve.PrivateKey(secret)
        except ValueError as exc:
            raise ScalarOutOfRangeError("identity secret key is zero or not below N") from exc

    @property
    def public_bytes(self) -> bytes:
        """Compressed SEC1 public key (33 bytes): what peers know this node by."""
        return bytes(self._key.public_key.format(compressed=True))

    def secret_bytes(self) -> bytes:
        """The raw secret, for the keystore only."""
        return bytes(self._key.secret)

    def _ecdh(self, peer_public: bytes) -> bytes:
        return bytes(self._key.ecdh(peer_public))

    def _sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message))

    def __repr__(self) -> str:
        return f"IdentityKey(public={self.public_bytes.hex()}, secret=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True)
class EncryptedShare:
    """One dealer → recipient share on the wire: all fields public."""

    sender: int
    recipient: int
    ephemeral: bytes
    ciphertext: bytes
    signature: bytes


def _associated_data(
    session_id: bytes, sender: int, recipient: int, ephemeral: bytes, recipient_key: bytes
) -> bytes:
    return (
        _DOMAIN
        + hashlib.sha256(session_id).digest()
        + serialize_scalar(sender)
        + serialize_scalar(recipient)
        + ephemeral
        + recipient_key
    )


def _aead_key(shared_secret: bytes, ad: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ad).derive(shared_secret)
    return ChaCha20Poly1305(key)


def seal_share(
    session_id: bytes,
    sender: int,
    sender_key: IdentityKey,
    recipient: int,
    recipient_key: bytes,
    share: bytes,
) -> EncryptedShare:
    """Encrypt ``share`` to ``recipient_key`` and sign the envelope with ``sender_key``."""
    if len(recipient_key) != ELEMENT_LEN:
        raise WrongLengthError("recipient identity key", ELEMENT_LEN, len(recipient_key))
    ephemeral = IdentityKey()
    eph_pub = ephemeral.public_bytes
    ad = _associated_data(session_id, sender, recipient, eph_pub, recipient_key)
    ciphertext = _aead_key(ephemeral._ecdh(recipient_key), ad).encrypt(_ZERO_NONCE, share, ad)
    signature = sender_key._sign(ad + ciphertext)
    return EncryptedShare(sender, recipient, eph_pub, ciphertext, signature)


def open_share(
    session_id: bytes,
    envelope: EncryptedShare,
    recipient: int,
    recipient_key: IdentityKey,
    sender_public: bytes,
) -> bytes:
    """Check the dealer's signature, then decrypt; raise on any inconsistency."""

    def fail(reason: str) -> UndecryptableShareError:
        return UndecryptableShareError(envelope.sender, envelope.recipient, reason)

    if envelope.recipient != recipient:
        raise fail(f"addressed to {envelope.recipient}, not to {recipient}")
    if len(envelope.ephemeral) != ELEMENT_LEN:
        raise fail("malformed ephemeral key")
    ad = _associated_data(
        session_id, envelope.sender, recipient, envelope.ephemeral, recipient_key.public_bytes
    )
    try:
        signed = coincurve.PublicKey(sender_public).verify(
            envelope.signature, ad + envelope.ciphertext
        )
    except (ValueError, TypeError):
        signed = False
    if not signed:
        raise fail("not signed by the sender's identity key")
    try:
        shared = recipient_key._ecdh(envelope.ephemeral)
        return _aead_key(shared, ad).decrypt(_ZERO_NONCE, envelope.ciphertext, ad)
    except (InvalidTag, ValueError) as exc:
        raise fail("ciphertext does not authenticate") from exc
