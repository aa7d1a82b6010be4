"""Following the real ModelRegistry on anvil (oracle.registry.events): every event in
canonical order with its block's time, only once confirmed, the scan resumed from storage,
and a reorg deeper than the confirmation depth detected and the new chain's events read."""

from __future__ import annotations

from eth_account import Account
from sqlalchemy import Engine
from web3 import Web3

from oracle.chain import registry as reg
from oracle.chain.anvil import Anvil
from oracle.chain.system import Sender, deploy_system
from oracle.config import feed_id_bytes32
from oracle.registry.events import RegistryFollower
from oracle.storage.registry import RegistryStore


def _mine(w3: Web3, blocks: int) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _decl(name: str) -> list[reg.FeedDeclaration]:
    return [reg.FeedDeclaration(feed_id_bytes32(name), 8, name)]


def _scan_all(follower: RegistryFollower, db: RegistryStore) -> list[bool]:
    reorgs: list[bool] = []
    while True:
        batch = follower.scan(db.scan_tip())
        if batch.tip is None:
            return reorgs
        db.record(batch.events, batch.tip)
        reorgs.append(batch.deep_reorg)


def test_follow_confirmed_events_resume_and_a_deep_reorg(
    w3: Web3, anvil: Anvil, engine: Engine
) -> None:
    owner = Account.from_key(anvil.private_keys[0])
    manifest = deploy_system(w3, owner, anvil.url)
    contract = reg.registry_at(w3, manifest.model_registry)
    author = Sender(w3, Account.from_key(anvil.private_keys[1]))
    reg.propose(author, contract, b"\x01" * 32, "data:,one", _decl("A/B"))
    reg.approve(Sender(w3, owner), contract, 1, 1)
    db = RegistryStore(engine, contract.address)
    follower = RegistryFollower(
        w3, contract.address, confirmations=2, max_block_range=3, max_ranges=2
    )
    _scan_all(follower, db)
    assert db.events() == []  # not 2 blocks deep yet
    _mine(w3, 2)
    _scan_all(follower, db)
    kinds = [(e.kind, e.model_id, e.version) for e in db.events()]
    assert kinds == [("VersionApproved", 1, 1)]  # the approval, stored with what it approved
    first = db.events()[0]
    block = w3.eth.get_block(first.block_number)
    assert first.block_time_ms == int(block["timestamp"]) * 1000
    assert first.spec_uri == "data:,one" and first.actor == author.account.address
    assert first.spec_hash == b"\x01" * 32
    assert first.feed_ids == '["0x' + feed_id_bytes32("A/B").hex() + '"]'

    # a restarted follower resumes after the stored tip: nothing read twice
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    reg.propose(
        author,
        contract,
        b"\x02" * 32,
        "data:,two",
        [reg.FeedDeclaration(feed_id_bytes32("C/D"), 8, "c")],
    )
    reg.approve(Sender(w3, owner), contract, 2, 1)
    _mine(w3, 3)
    again = RegistryFollower(w3, contract.address, confirmations=2)
    _scan_all(again, db)
    assert [e.spec_uri for e in db.events()] == ["data:,one", "data:,two"]

    # the chain is rewound below the stored tip and grows another way: detected, and the
    # new chain's event is read (the orphaned one stays stored: nothing unlearns)
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    other = list(w3.eth.accounts)[3]  # an account the rewound transactions never touched
    tx = contract.functions.propose(
        b"\x03" * 32, "data:,three", [(feed_id_bytes32("E/F"), 8, "e")]
    ).transact({"from": other})
    w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    tx = contract.functions.approve(2, 1).transact({"from": owner.address})
    w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    _mine(w3, 8)
    reorgs = _scan_all(again, db)
    assert reorgs and reorgs[0] is True
    uris = [str(e.spec_uri) for e in db.events()]
    # (stored in block order: the new chain's block may come before the orphaned one's)
    assert sorted(uris) == ["data:,one", "data:,three", "data:,two"]
    assert _scan_all(again, db) == []  # and it goes on from the new chain


def test_proposals_nobody_approved_cost_a_node_nothing(
    w3: Web3, anvil: Anvil, engine: Engine
) -> None:
    """Anyone may propose, publish and deactivate their own models, as often as they pay
    gas: a node stores none of it until governance approves, so a spammer cannot grow its
    memory or database."""
    owner = Account.from_key(anvil.private_keys[0])
    manifest = deploy_system(w3, owner, anvil.url)
    contract = reg.registry_at(w3, manifest.model_registry)
    spammer = Sender(w3, Account.from_key(anvil.private_keys[1]))
    for i in range(20):
        reg.propose(spammer, contract, bytes([i + 1]) * 32, "data:," + "x" * 500, _decl(f"S/{i}"))
    reg.publish(spammer, contract, 1, b"\xee" * 32, "data:,v2")
    reg.deactivate(spammer, contract, 2)
    _mine(w3, 3)
    db = RegistryStore(engine, contract.address)
    _scan_all(RegistryFollower(w3, contract.address, confirmations=2), db)
    assert db.events() == []
    assert db.scan_tip() is not None  # scanned past them all

    # once the owner approves one, that one is stored (its latest version, as published)
    reg.approve(Sender(w3, owner), contract, 1, 2)
    reg.deactivate(spammer, contract, 1)
    _mine(w3, 3)
    _scan_all(RegistryFollower(w3, contract.address, confirmations=2), db)
    rows = db.events()
    assert [(e.kind, e.model_id, e.version) for e in rows] == [
        ("VersionApproved", 1, 2),
        ("ModelDeactivated", 1, 0),
    ]
    assert rows[0].spec_uri == "data:,v2" and rows[0].spec_hash == b"\xee" * 32
