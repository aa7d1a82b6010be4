"""Deploy the whole Mira contract system to a chain and describe where it lives."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from oracle.chain.deploy import deploy


def deploy_system(w3: Web3) -> dict[str, Any]:
    """Deploy every Mira contract; return ``{"contracts": {name: address}}``."""
    verifier = deploy(w3, "SchnorrVerifierHarness")
    return {"contracts": {"schnorr": verifier.address}}
