"""FROST ciphersuites: the hash functions H1…H5 and the signature format.

Two suites share every step of RFC 9591 except the challenge and the encoding:

``FROST_SECP256K1_SHA256``
    The standard FROST(secp256k1, SHA-256) of RFC 9591 §6.5, contextString
    ``FROST-secp256k1-SHA256-v1``. Pinned by the RFC's Appendix E.5 vectors.

``MIRA_EVM``
    Mira's suite, verified on-chain by ``LibSchnorr`` with one ``ecrecover``. contextString
    ``MIRA-FROST-secp256k1-KECCAK256-v1``. H1, H3, H4, H5 are the RFC's constructions
    (hash_to_field with expand_message_xmd over SHA-256, and prefixed SHA-256) under the
    Mira context string, so they are domain-separated from the standard suite. H2, the
    challenge, is LibSchnorr's:

        e = keccak256(Px ‖ parity(P) ‖ m ‖ address(R)) mod N   (32 ‖ 1 ‖ 32 ‖ 20 bytes)

    Messages are exactly 32 bytes (a ``bytes32`` on-chain), the group key must have
    Px < N (it is used as ecrecover's r), and a signature is (address(R), z): 52 bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from eth_utils.crypto import keccak

from oracle.crypto.errors import (
    DegenerateRoundError,
    IdentityPointError,
    InvalidPointError,
    ScalarOutOfRangeError,
    WrongLengthError,
)
from oracle.crypto.group import (
    ELEMENT_LEN,
    SCALAR_LEN,
    N,
    Point,
    base_mul,
    deserialize_scalar,
    serialize_scalar,
)

ADDRESS_LEN: Final = 20


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd with SHA-256 (b = 32, s = 64 bytes)."""
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    ell = -(-len_in_bytes // 32)
    if ell > 255:
        raise ValueError("expand_message_xmd: requested length too large")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(64) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    b0 = hashlib.sha256(msg_prime).digest()
    bi = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    out = [bi]
    for i in range(2, ell + 1):
        bi = hashlib.sha256(
            bytes(a ^ b for a, b in zip(b0, bi, strict=True)) + bytes([i]) + dst_prime
        ).digest()
        out.append(bi)
    return b"".join(out)[:len_in_bytes]


def hash_to_scalar(msg: bytes, dst: bytes) -> int:
    """hash_to_field(msg, 1) over Z_N: L = ceil((256 + 128) / 8) = 48 bytes, reduced mod N."""
    return int.from_bytes(expand_message_xmd(msg, dst, 48), "big") % N


@dataclass(frozen=True)
class Signature:
    """An aggregate Schnorr signature: the group commitment R and the response z."""

    R: Point
    z: int


class Ciphersuite:
    """The standard FROST(secp256k1, SHA-256) suite; subclasses change the challenge."""

    name: str = "FROST(secp256k1, SHA-256)"
    context: bytes = b"FROST-secp256k1-SHA256-v1"

    # RFC 9591 §6.5. H1: binding factors; H3: nonces (and DKG randomness); H4, H5: digests
    # of the message and of the encoded commitment list that enter every binding factor.
    def H1(self, m: bytes) -> int:
        return hash_to_scalar(m, self.context + b"rho")

    def H3(self, m: bytes) -> int:
        return hash_to_scalar(m, self.context + b"nonce")

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"com" + m).digest()

    def hash_to_scalar(self, tag: bytes, m: bytes) -> int:
        """A further domain-separated hash to Z_N (used by the DKG's proofs of knowledge)."""
        return hash_to_scalar(m, self.context + tag)

    # --- the challenge and the signature format -------------------------------------------

    def check_group_key(self, group_key: Point) -> None:
        """Refuse group keys the verifier cannot use."""
        if group_key.is_identity:
            raise IdentityPointError("the group public key is the identity")

    def check_message(self, message: bytes) -> None:
        """Refuse messages the suite cannot sign (any length is fine here)."""

    def challenge(self, R: Point, group_key: Point, message: bytes) -> int:
        """H2(SerializeElement(R) ‖ SerializeElement(PK) ‖ msg) (RFC 9591 §4.6)."""
        return hash_to_scalar(
            R.serialize() + group_key.serialize() + message, self.context + b"chal"
        )

    def encode_signature(self, sig: Signature) -> bytes:
        return sig.R.serialize() + serialize_scalar(sig.z)

    def verify(self, group_key: Point, message: bytes, encoded: bytes) -> bool:
        """RFC 9591 Appendix B: z·G == R + c·PK. False on any malformed input."""
        if len(encoded) != ELEMENT_LEN + SCALAR_LEN or group_key.is_identity:
            return False
        try:
            R = Point.deserialize(encoded[:ELEMENT_LEN])
            z = deserialize_scalar(encoded[ELEMENT_LEN:], allow_zero=True)
        except (InvalidPointError, WrongLengthError, ScalarOutOfRangeError):
            return False
        c = self.challenge(R, group_key, message)
        return base_mul(z) == R + group_key * c


class MiraEvmSuite(Ciphersuite):
    """Mira's on-chain suite: the LibSchnorr challenge and (address(R), z) signatures."""

    name = "MIRA-FROST(secp256k1, KECCAK-256)"
    context = b"MIRA-FROST-secp256k1-KECCAK256-v1"

    def check_group_key(self, group_key: Point) -> None:
        super().check_group_key(group_key)
        # ecrecover takes Px as r, which must lie in (0, N); the DKG re-runs otherwise.
        if group_key.x >= N:
            raise ScalarOutOfRangeError("group key has Px ≥ N; LibSchnorr cannot verify it")

    def check_message(self, message: bytes) -> None:
        if len(message) != 32:
            raise WrongLengthError("EVM-suite message (bytes32)", 32, len(message))

    def challenge_from_address(self, group_key: Point, message: bytes, address: bytes) -> int:
        """keccak256(Px ‖ parity ‖ m ‖ address(R)) mod N — LibSchnorr.challenge, byte for byte."""
        self.check_message(message)
        if len(address) != ADDRESS_LEN:
            raise WrongLengthError("commitment address", ADDRESS_LEN, len(address))
        packed = group_key.x.to_bytes(32, "big") + bytes([group_key.parity]) + message + address
        return int.from_bytes(keccak(packed), "big") % N

    def challenge(self, R: Point, group_key: Point, message: bytes) -> int:
        e = self.challenge_from_address(group_key, message, R.address())
        if e == 0:
            # LibSchnorr refuses e = 0 (it would make ecrecover's s zero). Never happens in
            # practice (probability 1/N), but the round cannot produce a valid signature.
            raise DegenerateRoundError("challenge is zero; retry the round with fresh nonces")
        return e

    def encode_signature(self, sig: Signature) -> bytes:
        return sig.R.address() + serialize_scalar(sig.z)

    def verify(self, group_key: Point, message: bytes, encoded: bytes) -> bool:
        """Mirror of LibSchnorr.verify: address(z·G − e·P) == address(R).

        Rejects exactly what the contract rejects: Px = 0 or ≥ N, z = 0 or ≥ N, e = 0, the
        zero address, messages that are not 32 bytes.
        """
        if len(encoded) != ADDRESS_LEN + SCALAR_LEN or len(message) != 32:
            return False
        if group_key.is_identity:
            return False
        px = group_key.x
        if px == 0 or px >= N:
            return False
        address, z = encoded[:ADDRESS_LEN], int.from_bytes(encoded[ADDRESS_LEN:], "big")
        if z == 0 or z >= N or address == bytes(ADDRESS_LEN):
            return False
        e = self.challenge_from_address(group_key, message, address)
        if e == 0:
            return False
        # z·G − e·P = (k + e·x)·G − e·x·G = k·G = R for an honest signature.
        recovered = base_mul(z) - group_key * e
        return not recovered.is_identity and recovered.address() == address

    def evm_arguments(
        self, group_key: Point, message: bytes, encoded: bytes
    ) -> tuple[int, int, bytes, bytes, int]:
        """(px, parity, message, commitment, z): the arguments of LibSchnorr.verify."""
        if len(encoded) != ADDRESS_LEN + SCALAR_LEN:
            raise WrongLengthError("EVM-suite signature", ADDRESS_LEN + SCALAR_LEN, len(encoded))
        return (
            group_key.x,
            group_key.parity,
            message,
            encoded[:ADDRESS_LEN],
            int.from_bytes(encoded[ADDRESS_LEN:], "big"),
        )


FROST_SECP256K1_SHA256: Final = Ciphersuite()
MIRA_EVM: Final = MiraEvmSuite()
