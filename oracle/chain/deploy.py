"""Deploy contracts from their forge artifacts and wait for the receipt."""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract

from oracle import artifacts
from oracle.errors import ChainError


def deploy(w3: Web3, name: str, *args: Any, sender: ChecksumAddress | None = None) -> Contract:
    """Deploy contract ``name`` with constructor ``args``; return a bound contract object."""
    art = artifacts.load(name)
    if not art.bytecode:
        raise ChainError(f"{name} has no creation bytecode (an interface or abstract contract?)")
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    frm = sender or w3.eth.default_account or w3.eth.accounts[0]
    tx_hash = factory.constructor(*args).transact({"from": frm})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise ChainError(f"deploying {name} failed: receipt {receipt['transactionHash'].hex()}")
    return at(w3, name, receipt["contractAddress"])


def at(w3: Web3, name: str, address: str) -> Contract:
    """Bind the ABI of contract ``name`` to an existing address."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load(name).abi)
