"""FROST(secp256k1, SHA-256) reproduces every value of RFC 9591 Appendix E.5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oracle.crypto.frost import (
    SignatureShare,
    SigningRound,
    aggregate,
    compute_signature_share,
    verify_signature_share,
)
from oracle.crypto.nonces import SigningNonces
from oracle.crypto.suites import FROST_SECP256K1_SHA256 as SUITE
from tests.harness.dealer import trusted_dealer_keygen_for_tests

# The shared copy (../shared/testvectors, next to the repository) when present; otherwise the
# verbatim copy vendored beside this test, so CI does not depend on the workspace layout.
_NAME = "frost-secp256k1-sha256.json"
_CANDIDATES = (
    Path(__file__).resolve().parents[3] / "shared" / "testvectors" / _NAME,
    Path(__file__).parent / "vectors" / _NAME,
)


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    path = next(p for p in _CANDIDATES if p.exists())
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["config"]["name"] == SUITE.name
    return data


def _h(s: str) -> int:
    return int(s, 16)


def test_every_rfc_value(vectors: dict[str, Any]) -> None:
    inputs = vectors["inputs"]
    cfg = vectors["config"]
    t, n = int(cfg["MIN_PARTICIPANTS"]), int(cfg["MAX_PARTICIPANTS"])

    # Key material: the dealer's polynomial reproduces the group key and every share.
    public, keys = trusted_dealer_keygen_for_tests(
        SUITE,
        t,
        n,
        secret=_h(inputs["group_secret_key"]),
        coefficients=[_h(c) for c in inputs["share_polynomial_coefficients"]],
    )
    assert public.group_key.serialize().hex() == inputs["group_public_key"]
    for entry in inputs["participant_shares"]:
        assert keys[entry["identifier"]].secret_share == _h(entry["participant_share"])

    message = bytes.fromhex(inputs["message"])
    participants = inputs["participant_list"]

    # Round one: nonces from the given randomness, and their commitments.
    nonces: dict[int, SigningNonces] = {}
    for out in vectors["round_one_outputs"]["outputs"]:
        i = out["identifier"]
        pair = SigningNonces.generate(
            SUITE,
            i,
            keys[i].secret_share,
            hiding_randomness=bytes.fromhex(out["hiding_nonce_randomness"]),
            binding_randomness=bytes.fromhex(out["binding_nonce_randomness"]),
        )
        d, e = pair.secrets()
        assert d == _h(out["hiding_nonce"])
        assert e == _h(out["binding_nonce"])
        assert pair.commitment.hiding.serialize().hex() == out["hiding_nonce_commitment"]
        assert pair.commitment.binding.serialize().hex() == out["binding_nonce_commitment"]
        nonces[i] = pair
    assert sorted(nonces) == participants

    # Binding factor inputs and binding factors.
    round_ = SigningRound.build(SUITE, public, message, [p.commitment for p in nonces.values()])
    for out in vectors["round_one_outputs"]["outputs"]:
        i = out["identifier"]
        assert round_.binding_factor_inputs[i].hex() == out["binding_factor_input"]
        assert round_.binding_factors[i] == _h(out["binding_factor"])

    # Round two: signature shares, each verifying against its verification share.
    shares = []
    for out in vectors["round_two_outputs"]["outputs"]:
        i = out["identifier"]
        d, e = nonces[i].secrets()
        z = compute_signature_share(round_, i, keys[i].secret_share, d, e)
        assert z == _h(out["sig_share"])
        share = SignatureShare(i, z)
        assert verify_signature_share(round_, share)
        shares.append(share)

    # The final signature, byte for byte, and it verifies.
    signature = aggregate(round_, shares)
    encoded = SUITE.encode_signature(signature)
    assert encoded.hex() == vectors["final_output"]["sig"]
    assert SUITE.verify(public.group_key, message, encoded)
    assert not SUITE.verify(public.group_key, message + b"!", encoded)
