"""A single-key Schnorr signature made in Python is accepted by LibSchnorr on anvil.

This pins the challenge encoding (Px ‖ parity ‖ m ‖ address(R)) across the boundary before
any threshold machinery exists; the FROST suite builds its differential tests on the same
harness.
"""

from __future__ import annotations

import secrets

import coincurve
from eth_utils import keccak
from web3 import Web3

from oracle.chain.deploy import deploy

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _address(point: coincurve.PublicKey) -> str:
    return Web3.to_checksum_address(keccak(point.format(compressed=False)[1:])[-20:])


def _sign(x: int, message: bytes) -> tuple[int, int, str, int]:
    pub = coincurve.PublicKey.from_secret(x.to_bytes(32, "big"))
    px = int.from_bytes(pub.format()[1:], "big")
    parity = pub.format()[0] - 2
    k = secrets.randbelow(N - 1) + 1
    commitment = _address(coincurve.PublicKey.from_secret(k.to_bytes(32, "big")))
    packed = px.to_bytes(32, "big") + bytes([parity]) + message + bytes.fromhex(commitment[2:])
    e = int.from_bytes(keccak(packed), "big") % N
    return px, parity, commitment, (k + e * x) % N


def test_python_schnorr_signature_verifies_on_chain(w3: Web3) -> None:
    harness = deploy(w3, "SchnorrVerifierHarness")
    for _ in range(8):
        x = secrets.randbelow(N - 1) + 1
        message = secrets.token_bytes(32)
        px, parity, commitment, z = _sign(x, message)
        if px >= N:  # astronomically rare; such keys are never used
            continue
        assert harness.functions.verify(px, parity, message, commitment, z).call()
        assert not harness.functions.verify(px, parity, message, commitment, (z + 1) % N).call()
        other = bytes([message[0] ^ 1]) + message[1:]
        assert not harness.functions.verify(px, parity, other, commitment, z).call()
        assert not harness.functions.verify(px, 1 - parity, message, commitment, z).call()
