"""Differential test: Python FROST (EVM suite) signatures against LibSchnorr on anvil.

For random (t, n) up to 51-of-100 and random messages, the aggregate signature made by
t in-process signers is accepted by the Solidity verifier, the contract's challenge equals
Python's, and every tampering (signature, message, key) is rejected by both sides alike.
"""

from __future__ import annotations

import random

from web3 import Web3
from web3.contract import Contract

from oracle.chain.deploy import deploy
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.group import N, Point, base_mul
from oracle.crypto.suites import MIRA_EVM
from tests.harness.dealer import trusted_dealer_keygen_for_tests

CASES = [(1, 1), (2, 3), (3, 4), (7, 10), (13, 20), (26, 40), (51, 100)]


def _both(harness: Contract, key: Point, message: bytes, encoded: bytes) -> tuple[bool, bool]:
    """(Python verdict, contract verdict) for the same signature bytes."""
    python = MIRA_EVM.verify(key, message, encoded)
    px, parity, msg, commitment, z = MIRA_EVM.evm_arguments(key, message, encoded)
    chain = harness.functions.verify(
        px, parity, msg, Web3.to_checksum_address(commitment), z
    ).call()
    return python, chain


def test_frost_signatures_verify_on_chain(w3: Web3) -> None:
    harness = deploy(w3, "SchnorrVerifierHarness")
    rng = random.Random(0x4D495241)  # "MIRA": deterministic
    cases = [*CASES, *((t, rng.randint(t, 100)) for t in (rng.randint(2, 51) for _ in range(8)))]
    for t, n in cases:
        public, keys = trusted_dealer_keygen_for_tests(
            MIRA_EVM, t, n, random_scalar=lambda: rng.randrange(1, N)
        )
        key = public.group_key
        signers = make_signers(MIRA_EVM, public, keys)
        # A random subset of size ≥ t signs.
        subset = rng.sample(sorted(signers), rng.randint(t, n))
        message = rng.randbytes(32)
        outcome = run_signing(
            MIRA_EVM, public, message, [signers[i] for i in subset], signer_count=len(subset)
        )
        encoded = outcome.encoded
        assert _both(harness, key, message, encoded) == (True, True), (t, n)

        # The challenge is the same function on both sides of the boundary.
        address = encoded[:20]
        assert harness.functions.challenge(
            key.x, key.parity, message, Web3.to_checksum_address(address)
        ).call() == MIRA_EVM.challenge_from_address(key, message, address)
        assert MIRA_EVM.challenge(outcome.signature.R, key, message) == (
            MIRA_EVM.challenge_from_address(key, message, address)
        )

        z = int.from_bytes(encoded[20:], "big")
        other_message = bytes([message[0] ^ 0x01]) + message[1:]
        other_key = base_mul(rng.randrange(1, N))
        tampered = {
            "z + 1": address + ((z + 1) % N).to_bytes(32, "big"),
            "z + N": address + (z + N).to_bytes(32, "big") if z + N < 2**256 else None,
            "z = 0": address + bytes(32),
            "address": bytes([address[0] ^ 0x80]) + address[1:] + encoded[20:],
            "zero address": bytes(20) + encoded[20:],
        }
        for what, bad in tampered.items():
            if bad is None:
                continue
            assert _both(harness, key, message, bad) == (False, False), what
        assert _both(harness, key, other_message, encoded) == (False, False), "message"
        assert _both(harness, other_key, message, encoded) == (False, False), "key"
        assert _both(harness, -key, message, encoded) == (False, False), "parity"


def test_dkg_key_signs_for_the_contract(w3: Web3) -> None:
    """The same, with the key from the distributed key generation."""
    harness = deploy(w3, "SchnorrVerifierHarness")
    result = run_dkg_in_one_process(MIRA_EVM, 4, 6)
    signers = make_signers(MIRA_EVM, result.public, result.keys)
    message = bytes(range(32))
    outcome = run_signing(MIRA_EVM, result.public, message, list(signers.values()))
    assert _both(harness, result.public.group_key, message, outcome.encoded) == (True, True)
