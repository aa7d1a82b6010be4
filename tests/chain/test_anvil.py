"""The anvil fixture and the artifact loader against a real anvil."""

from __future__ import annotations

import os

import pytest
from web3 import Web3

from oracle import artifacts
from oracle.chain.anvil import Anvil
from oracle.errors import ToolchainError


def test_anvil_has_funded_accounts(w3: Web3, anvil: Anvil) -> None:
    assert w3.eth.chain_id == 31337
    assert len(anvil.private_keys) == 10
    funded = w3.eth.get_balance(w3.eth.accounts[0])
    assert funded == Web3.to_wei(10_000, "ether")
    # the keys anvil reports are the keys of the funded accounts
    from eth_account import Account

    assert Account.from_key(anvil.private_keys[0]).address == w3.eth.accounts[0]


def test_anvil_stops_and_leaves_no_process() -> None:
    node = Anvil().start()
    pid = node.pid
    assert pid is not None
    node.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_artifact_names_the_build_step() -> None:
    with pytest.raises(ToolchainError, match="make contracts"):
        artifacts.load("NoSuchContract")
