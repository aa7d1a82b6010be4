"""Pull mode end to end on a real anvil: a root signed by a FROST committee in Python (trusted
dealer) is verified by MiraPullVerifier reading the MiraOracle's epoch keys, and each way a
payload can be wrong is refused with its own error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from oracle.chain.deploy import deploy
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.suites import MIRA_EVM
from oracle.reporting.pull import (
    Payload,
    PullSignature,
    PullTree,
    digest,
    encode_payload,
    make_payload,
)
from oracle.reporting.report import FeedUpdate
from tests.harness.dealer import trusted_dealer_keygen_for_tests

GRACE, DELAY, MAX_FUTURE = 3600, 86400, 300
AGE = 60


def _members(n: int) -> list[tuple[str, bytes, str]]:
    return [
        (
            Web3.to_checksum_address("0x" + keccak(b"op" + bytes([i]))[-20:].hex()),
            b"\x02" + keccak(b"id" + bytes([i])),
            f"http://127.0.0.1:{9000 + i}",
        )
        for i in range(n)
    ]


class Chain:
    """An oracle with an epoch whose key a 3-of-4 FROST committee holds, and a verifier."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], GRACE, DELAY, 3600, MAX_FUTURE)
        self.verifier = deploy(w3, "MiraPullVerifier", self.oracle.address, MAX_FUTURE)
        self.signers: dict[int, Callable[[bytes], PullSignature]] = {}
        self.start_epoch()

    def start_epoch(self) -> int:
        public, keys = trusted_dealer_keygen_for_tests(MIRA_EVM, 3, 4)
        signers = make_signers(MIRA_EVM, public, keys)
        key = public.group_key
        args = (key.x, key.parity, 3, _members(4))
        if self.oracle.functions.currentEpoch().call() == 0:
            self._send(self.oracle.functions.startEpoch(*args))
        else:
            self._send(self.oracle.functions.scheduleEpochStart(*args))
            self.advance(DELAY)
            self._send(self.oracle.functions.executeEpochStart())
        epoch = int(self.oracle.functions.currentEpoch().call())

        def sign(message: bytes) -> PullSignature:
            outcome = run_signing(MIRA_EVM, public, message, list(signers.values())[:3])
            px, parity, _, commitment, z = MIRA_EVM.evm_arguments(key, message, outcome.encoded)
            return PullSignature(px=px, parity=parity, commitment=commitment, z=z)

        self.signers[epoch] = sign
        return epoch

    def _send(self, fn: object) -> None:
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact())  # type: ignore[attr-defined]
        assert receipt["status"] == 1

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def tree(self, n: int, *, observed_at: int | None = None) -> PullTree:
        now = self.now()
        return PullTree.build(
            now * 1000,
            [
                FeedUpdate(
                    keccak(f"PULL-{i}/USD".encode()),
                    3000_00000000 + i,
                    now if observed_at is None else observed_at,
                    keccak(b"model" + bytes([i % 256])),
                )
                for i in range(n)
            ],
        )

    def payload(
        self,
        tree: PullTree,
        ids: list[bytes],
        epoch: int,
        *,
        chain_id: int | None = None,
        verifier: Contract | None = None,
    ) -> Payload:
        chain_id = chain_id or self.w3.eth.chain_id
        address = (verifier or self.verifier).address
        message = digest(chain_id, address, epoch, tree.round, tree.root, tree.leaf_count)
        return make_payload(
            tree,
            ids,
            chain_id=chain_id,
            verifier=address,
            epoch=epoch,
            signature=self.signers[epoch](message),
        )

    def verify(self, payload: Payload | bytes, verifier: Contract | None = None) -> list[tuple]:
        data = payload if isinstance(payload, bytes) else encode_payload(payload)
        return (verifier or self.verifier).functions.verify(data, AGE).call()


def _error(name: str) -> bytes:
    return keccak(text=name)[:4]


def _refused(
    chain: Chain, payload: Payload | bytes, error: str, verifier: Contract | None = None
) -> None:
    with pytest.raises(ContractCustomError) as exc:
        chain.verify(payload, verifier)
    assert bytes.fromhex(str(exc.value.data)[2:])[:4] == _error(error), exc.value


def test_committee_signed_root_verifies(w3: Web3) -> None:
    chain = Chain(w3)
    tree = chain.tree(300)
    ids = [tree.updates[i].feed_id for i in (0, 7, 8, 150, 299)]
    got = chain.verify(chain.payload(tree, ids, 1))
    want = [u for u in tree.updates if u.feed_id in ids]
    assert [tuple(v) for v in got] == [
        (u.feed_id, u.value, u.observed_at, u.model_commitment) for u in want
    ]
    onchain = chain.verifier.functions.rootDigest(1, tree.round, tree.root, tree.leaf_count).call()
    assert bytes(onchain) == digest(
        w3.eth.chain_id, chain.verifier.address, 1, tree.round, tree.root, 300
    )


def test_refusals(w3: Web3) -> None:
    chain = Chain(w3)
    tree = chain.tree(50)
    ids = [tree.updates[3].feed_id]
    good = chain.payload(tree, ids, 1)
    chain.verify(good)

    # another chain, and a root signed for another chain relabelled as this one
    _refused(
        chain,
        chain.payload(tree, ids, 1, chain_id=w3.eth.chain_id + 1),
        "WrongChain(uint256,uint256)",
    )
    foreign = chain.payload(tree, ids, 1, chain_id=w3.eth.chain_id + 1)
    _refused(chain, replace(foreign, chain_id=w3.eth.chain_id), "InvalidSignature()")

    # another verifier contract
    other = deploy(w3, "MiraPullVerifier", chain.oracle.address, MAX_FUTURE)
    _refused(chain, good, "WrongVerifier(address,address)", other)
    _refused(
        chain, replace(good, verifier=bytes.fromhex(other.address[2:])), "InvalidSignature()", other
    )

    # a tampered leaf: the leaves no longer lead to the signed root
    mp = good.proof
    forged = replace(mp.updates[0], value=mp.updates[0].value * 10)
    _refused(
        chain, replace(good, proof=replace(mp, updates=(forged,))), "RootMismatch(bytes32,bytes32)"
    )

    # malformed, truncated, oversized
    data = encode_payload(good)
    for bad in (data[:-1], data + b"\x00", data[:100], b"", data + bytes(4096)):
        _refused(chain, bad, "MalformedPayload(uint256)")

    # an unknown epoch
    _refused(chain, replace(good, epoch=9), "UnknownEpoch(uint64)")

    # a stale root
    chain.advance(AGE + 5)
    _refused(chain, good, "StaleRoot(uint64,uint256)")


def test_retired_epoch_is_refused(w3: Web3) -> None:
    chain = Chain(w3)
    assert chain.start_epoch() == 2  # epoch 1 stays valid for GRACE seconds
    tree = chain.tree(10)
    ids = [tree.updates[4].feed_id]
    chain.verify(chain.payload(tree, ids, 1))  # within the grace period
    chain.advance(GRACE + 1)
    tree = chain.tree(10)
    _refused(chain, chain.payload(tree, ids, 1), "EpochRetired(uint64,uint64)")
    chain.verify(chain.payload(tree, ids, 2))


def test_stored_root_serves_later_transactions(w3: Web3) -> None:
    chain = Chain(w3)
    tree = chain.tree(20)
    stored = chain.payload(tree, [tree.updates[2].feed_id], 1)
    other_leaves = replace(stored, proof=tree.multiproof([u.feed_id for u in tree.updates[5:9]]))
    fn = chain.verifier.functions
    with pytest.raises(ContractCustomError) as exc:
        fn.verifyStored(encode_payload(stored), AGE).call()
    assert bytes.fromhex(str(exc.value.data)[2:])[:4] == _error("RootNotStored(bytes32)")

    receipt = w3.eth.wait_for_transaction_receipt(
        fn.verifyAndStore(encode_payload(stored), AGE).transact()
    )
    assert receipt["status"] == 1
    (event,) = chain.verifier.events.RootStored().process_receipt(receipt)
    assert (event["args"]["round"], bytes(event["args"]["root"])) == (tree.round, tree.root)

    # a later transaction: other leaves of the stored root, no signature check
    got = fn.verifyStored(encode_payload(other_leaves), AGE).call()
    assert [bytes(v[0]) for v in got] == [u.feed_id for u in tree.updates[5:9]]
    # another signature of the same root was not stored
    resigned = chain.payload(tree, [tree.updates[2].feed_id], 1)
    assert resigned.signature != stored.signature
    with pytest.raises(ContractCustomError):
        fn.verifyStored(encode_payload(resigned), AGE).call()
