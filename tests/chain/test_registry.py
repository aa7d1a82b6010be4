"""oracle.chain.registry against the real contracts on anvil: the system deploys the
registry as the oracle's feed registrar, the typed reads and writes, and logs that are not
the registry's events kept as undecodable rather than raised."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from oracle.chain import registry as reg
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import at
from oracle.chain.system import Sender, deploy_system
from oracle.config import feed_id_bytes32
from oracle.errors import ChainError

SPEC_HASH = bytes(range(32))


def _decls(*names: str) -> list[reg.FeedDeclaration]:
    return [reg.FeedDeclaration(feed_id_bytes32(n), 8, f"{n} forecast") for n in names]


def test_the_system_deploys_the_registry_as_the_oracles_registrar(w3: Web3, anvil: Anvil) -> None:
    owner = Account.from_key(anvil.private_keys[0])
    manifest = deploy_system(w3, owner, anvil.url)
    oracle = at(w3, "MiraOracle", manifest.oracle)
    contract = reg.registry_at(w3, manifest.model_registry)
    assert oracle.functions.feedRegistrar().call() == contract.address
    assert contract.functions.oracle().call() == oracle.address
    assert reg.model_count(contract) == 0

    author = Sender(w3, Account.from_key(anvil.private_keys[1]))
    decls = _decls("A/B", "C/D")
    proposal = reg.propose(author, contract, SPEC_HASH, "data:,x", decls)
    assert proposal.model_id == 1 and proposal.feed_ids == tuple(d.feed_id for d in decls)
    assert reg.feeds(contract, 1) == decls
    m = reg.model(contract, 1)
    assert m.author == author.account.address and m.version_count == 1
    assert m.approved_version == 0 and not m.deactivated

    # the author cannot approve: refused in the simulation, nothing sent
    nonce = w3.eth.get_transaction_count(author.account.address)
    with pytest.raises(reg.RegistryRefusal) as refused:
        reg.approve(author, contract, 1, 1)
    assert refused.value.data[:4] == Web3.keccak(text="NotOracleOwner(address)")[:4]
    assert w3.eth.get_transaction_count(author.account.address) == nonce

    approved = reg.approve(Sender(w3, owner), contract, 1, 1)
    assert approved.version == 1 and approved.spec_hash == SPEC_HASH
    assert reg.version(contract, 1, 1).approved_block == approved.ref.block_number
    for d in decls:
        assert oracle.functions.isRegistered(d.feed_id).call()
        assert reg.model_of_feed(contract, d.feed_id) == 1

    # the approval's receipt also holds the oracle's FeedRegistered logs: not the registry's
    receipt = w3.eth.get_transaction_receipt(approved.ref.tx_hash)
    foreign = [log for log in receipt["logs"] if log["address"] == oracle.address]
    assert foreign
    decoded = reg.decode_log(contract, foreign[0])
    assert isinstance(decoded, reg.UndecodableLog)
    assert "not an event of IModelRegistry" in decoded.reason
    with pytest.raises(reg.RegistryRefusal):
        reg.model(contract, 2)


def test_the_registrys_bounds_are_checked_before_sending(w3: Web3, anvil: Anvil) -> None:
    manifest = deploy_system(w3, Account.from_key(anvil.private_keys[0]), anvil.url)
    limits = reg.bounds(reg.registry_at(w3, manifest.model_registry))
    assert limits == reg.Bounds(max_feeds=12, max_uri_length=4096, max_description_length=256)
    with pytest.raises(ChainError, match="1 to 12"):
        reg.check_declarations([], "data:,x", limits)
    with pytest.raises(ChainError, match="1 to 12"):
        reg.check_declarations(_decls(*(f"F{i}" for i in range(13))), "data:,x", limits)
    with pytest.raises(ChainError, match="4096"):
        reg.check_declarations(_decls("A"), "data:," + "x" * 4096, limits)
    long = [reg.FeedDeclaration(feed_id_bytes32("A"), 8, "é" * 129)]  # 258 bytes
    with pytest.raises(ChainError, match="258 bytes"):
        reg.check_declarations(long, "data:,x", limits)
    with pytest.raises(ChainError, match="declared twice"):
        reg.check_declarations(_decls("A", "A"), "data:,x", limits)
    reg.check_declarations(_decls(*(f"F{i}" for i in range(12))), "data:," + "x" * 4090, limits)
