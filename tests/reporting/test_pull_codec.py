"""oracle.reporting.pull against LibPull on a real anvil (differential), and its bad inputs.

Random trees, random subsets, and tampered leaves, proofs and flags: the Python codec and
the Solidity library must agree on every leaf hash, every digest, and on each multiproof
either refuse it together or reach the same root.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from oracle.chain.deploy import deploy
from oracle.reporting.errors import PullFormatError
from oracle.reporting.pull import (
    FIXED_SIZE,
    Multiproof,
    Payload,
    PullSignature,
    PullTree,
    decode_payload,
    digest,
    encode_payload,
    hash_pair,
    leaf_hash,
    make_payload,
    process_multiproof,
)
from oracle.reporting.report import MAX_ROUND, FeedUpdate, encode_update

bytes32 = st.binary(min_size=32, max_size=32)
updates = st.builds(
    FeedUpdate,
    feed_id=bytes32.filter(lambda b: b != bytes(32)),
    value=st.integers(-(1 << 127), (1 << 127) - 1),
    observed_at=st.integers(0, (1 << 64) - 1),
    model_commitment=bytes32,
)
rounds = st.integers(1, MAX_ROUND)
SIG = PullSignature(px=5, parity=1, commitment=b"\x07" * 20, z=9)
VERIFIER = bytes(range(1, 21))


@st.composite
def trees_and_subsets(draw: st.DrawFn) -> tuple[PullTree, list[bytes]]:
    leaves = draw(st.lists(updates, min_size=1, max_size=40, unique_by=lambda u: u.feed_id))
    tree = PullTree.build(draw(rounds), leaves)
    ids = [u.feed_id for u in tree.updates]
    subset = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
    return tree, subset


def _reference_root(tree: PullTree) -> bytes:
    """The root by plain recursion over the sorted leaves' positions in the array form."""
    n = tree.leaf_count
    leaves = {2 * n - 2 - j: leaf_hash(u, tree.round) for j, u in enumerate(tree.updates)}

    def node(i: int) -> bytes:
        return leaves[i] if i in leaves else hash_pair(node(2 * i + 1), node(2 * i + 2))

    return node(0)


@given(trees_and_subsets())
def test_multiproofs_reach_the_root(case: tuple[PullTree, list[bytes]]) -> None:
    tree, subset = case
    assert tree.root == _reference_root(tree)
    mp = tree.multiproof(subset)
    assert [u.feed_id for u in mp.updates] == sorted(subset)
    leaves = [leaf_hash(u, tree.round) for u in mp.updates]
    assert process_multiproof(leaves, mp.proof, mp.flags) == tree.root


@given(trees_and_subsets(), st.integers(1, (1 << 64) - 1), st.integers(1, (1 << 64) - 1))
def test_payload_round_trip(case: tuple[PullTree, list[bytes]], chain_id: int, epoch: int) -> None:
    tree, subset = case
    p = make_payload(tree, subset, chain_id=chain_id, verifier=VERIFIER, epoch=epoch, signature=SIG)
    data = encode_payload(p)
    assert decode_payload(data) == p
    k, m = len(p.proof.updates), len(p.proof.proof)
    assert len(data) == FIXED_SIZE + (k + m - 1 + 7) // 8 + 88 * k + 32 * m


_harness_cache: dict[int, object] = {}


def _harness(w3: Web3):  # one deployment per anvil, reused across hypothesis examples
    key = id(w3)
    if key not in _harness_cache:
        _harness_cache.clear()
        _harness_cache[key] = deploy(w3, "PullCodecHarness")
    return _harness_cache[key]


def _python_root(p: Payload) -> bytes | None:
    try:
        leaves = [leaf_hash(u, p.round) for u in p.proof.updates]
        return process_multiproof(leaves, p.proof.proof, p.proof.flags)
    except PullFormatError:
        return None


def _solidity_root(w3: Web3, p: Payload) -> bytes | None:
    computed, ok = _harness(w3).functions.root(encode_payload(p)).call()
    return bytes(computed) if ok else None


def _tamper(p: Payload, how: str, at: int, byte: int) -> Payload:
    mp = p.proof
    if how == "leaf":
        i = at % len(mp.updates)
        raw = bytearray(encode_update(mp.updates[i]))
        raw[32 + at % 56] ^= byte  # value, observedAt or model commitment
        u = FeedUpdate(
            bytes(raw[:32]),
            int.from_bytes(raw[32:48], "big", signed=True),
            int.from_bytes(raw[48:56], "big"),
            bytes(raw[56:]),
        )
        return replace(p, proof=replace(mp, updates=(*mp.updates[:i], u, *mp.updates[i + 1 :])))
    if how == "proof" and mp.proof:
        i = at % len(mp.proof)
        node = bytearray(mp.proof[i])
        node[at % 32] ^= byte
        return replace(p, proof=replace(mp, proof=(*mp.proof[:i], bytes(node), *mp.proof[i + 1 :])))
    if how == "flag" and mp.flags:
        i = at % len(mp.flags)
        flags = (*mp.flags[:i], not mp.flags[i], *mp.flags[i + 1 :])
        return replace(p, proof=replace(mp, flags=flags))
    if how == "swap proof" and len(mp.proof) > 1:
        i = at % (len(mp.proof) - 1)
        proof = (*mp.proof[:i], mp.proof[i + 1], mp.proof[i], *mp.proof[i + 2 :])
        return replace(p, proof=replace(mp, proof=proof))
    if how == "drop last" and mp.proof:
        # keeps k + m − 1 = flags: a well-formed layout whose multiproof does not add up
        return replace(
            p,
            proof=Multiproof(
                mp.updates, mp.proof[:-1], (*mp.flags[:-1], True, False)[: len(mp.flags)]
            ),
        )
    return p


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=trees_and_subsets(),
    how=st.sampled_from(["none", "leaf", "proof", "flag", "swap proof", "drop last"]),
    at=st.integers(0, 1 << 16),
    byte=st.integers(1, 255),
)
def test_solidity_and_python_agree(
    w3: Web3, case: tuple[PullTree, list[bytes]], how: str, at: int, byte: int
) -> None:
    tree, subset = case
    harness = _harness(w3)
    p = make_payload(tree, subset, chain_id=1, verifier=VERIFIER, epoch=1, signature=SIG)
    for u in p.proof.updates:
        assert bytes(harness.functions.leafHash(encode_update(u), tree.round).call()) == leaf_hash(
            u, tree.round
        )
    try:
        tampered = _tamper(p, how, at, byte)
    except PullFormatError:
        return  # the tamper broke the Python-side invariants (e.g. a feed id order)
    python, solidity = _python_root(tampered), _solidity_root(w3, tampered)
    assert python == solidity, how
    if tampered == p:
        assert python == tree.root
    elif python is not None:
        assert python != tree.root, f"{how}: a tampered payload reached the signed root"
    k, m, ok = harness.functions.layout(encode_payload(tampered)).call()
    assert (k, m, ok) == (len(tampered.proof.updates), len(tampered.proof.proof), True)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chain_id=st.integers(1, (1 << 256) - 1),
    epoch=st.integers(1, (1 << 64) - 1),
    round_=rounds,
    root=bytes32,
    leaf_count=st.integers(1, (1 << 32) - 1),
)
def test_digest_agrees(
    w3: Web3, chain_id: int, epoch: int, round_: int, root: bytes, leaf_count: int
) -> None:
    verifier = "0x" + bytes(range(20)).hex()
    onchain = _harness(w3).functions.digest(
        chain_id, Web3.to_checksum_address(verifier), epoch, round_, root, leaf_count
    )
    assert bytes(onchain.call()) == digest(chain_id, verifier, epoch, round_, root, leaf_count)


def test_malformed_layouts_are_refused_by_both(w3: Web3) -> None:
    tree = PullTree.build(5, [FeedUpdate(bytes([i]) * 32, i, 1, b"\x02" * 32) for i in (1, 2, 3)])
    good = encode_payload(
        make_payload(tree, [b"\x02" * 32], chain_id=1, verifier=VERIFIER, epoch=1, signature=SIG)
    )
    harness = _harness(w3)
    nflags = int.from_bytes(good[165:167], "big") + int.from_bytes(good[167:169], "big") - 1
    padded = bytearray(good)
    padded[FIXED_SIZE + (nflags + 7) // 8 - 1] |= 1  # an unused bit (nflags = 2 here)
    no_leaves = bytearray(good)
    no_leaves[165:167] = b"\x00\x00"
    for bad in [
        b"",
        good[: FIXED_SIZE - 1],
        good[:-1],
        good + b"\x00",
        bytes(padded),
        bytes(no_leaves),
    ]:
        assert harness.functions.layout(bad).call()[2] is False
        with pytest.raises(PullFormatError):
            decode_payload(bad)


def test_bad_trees_and_requests() -> None:
    u = FeedUpdate(b"\x01" * 32, 1, 1, b"\x02" * 32)
    with pytest.raises(PullFormatError, match="at least one leaf"):
        PullTree.build(1, [])
    with pytest.raises(PullFormatError, match="appears twice"):
        PullTree.build(1, [u, u])
    with pytest.raises(PullFormatError, match="round: 0 is out of range"):
        PullTree.build(0, [u])
    # encoded leaves: exactly one encoded update each, unique non-zero feed ids
    raw = encode_update(u)
    for bad, message in [
        ([raw[:-1]], "88 bytes"),
        ([raw + b"\x00"], "88 bytes"),
        ([bytearray(raw)], "88 bytes"),
        ([bytes(32) + raw[32:]], "zero feed id"),
        ([raw, raw[:40] + b"\x09" + raw[41:]], "appears twice"),  # same id, another value
    ]:
        with pytest.raises(PullFormatError, match=message):
            PullTree.from_records(1, bad)
    assert PullTree.from_records(1, [raw]) == PullTree.build(1, [u])
    tree = PullTree.build(1, [u])
    assert tree.updates == (u,) and tree.records == (raw,)
    with pytest.raises(PullFormatError, match="not in this tree"):
        tree.multiproof([b"\x09" * 32])
    with pytest.raises(PullFormatError, match="at least one leaf"):
        tree.multiproof([])
    with pytest.raises(PullFormatError, match="20-byte address"):
        digest(1, "0x1234", 1, 1, b"\x00" * 32, 1)
    with pytest.raises(PullFormatError, match="leaf_count: 0"):
        digest(1, VERIFIER, 1, 1, b"\x00" * 32, 0)
    with pytest.raises(PullFormatError, match="expected bytes, got str"):
        decode_payload("00")  # type: ignore[arg-type]
