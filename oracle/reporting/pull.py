"""The one Python codec of Mira's pull format; contracts/src/libraries/LibPull.sol is the one
Solidity side, and tests/reporting/test_pull_codec.py checks the two agree bit for bit.

Each round the committee signs one Merkle root over the current output of every feed it
carries; a consumer brings the values it needs, with a multiproof, into its own transaction.

Leaves. A leaf is the hash of a feed's output in the round::

    leaf = keccak256(feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ round uint64
                     ‖ modelCommitment bytes32)                               (96 bytes)

The preimage is 96 bytes and an inner node's is 64, so no leaf can be passed off as an
inner node nor an inner node as a leaf (the reason OpenZeppelin hashes its 64-byte leaves
twice). Leaves are ordered by feed id, ascending; feed ids are unique.

Tree. OpenZeppelin's ``StandardMerkleTree`` shape and ``MerkleProof.multiProofVerify``
semantics: the tree is an array of 2n − 1 nodes, node i's children are 2i + 1 and 2i + 2,
leaf j sits at index 2n − 2 − j, and an inner node is the commutative hash
``keccak256(min(a, b) ‖ max(a, b))``. A multiproof for k leaves is the leaves in ascending
leaf order (= ascending feed id), m proof nodes and k + m − 1 flags: hash step i combines
the next leaf-or-computed hash with, if flag i, another leaf-or-computed hash, else the
next proof node; the last hash is the root. The verifier also requires that every proof
node is used and that a computed hash is only read after it was made (the checks that
OpenZeppelin 4.9.2 added after GHSA-wprv-93r4-jj2p, and one more).

Signed message::

    keccak256("MIRA-PULL-v1" ‖ chainId uint256 ‖ verifier address ‖ epoch uint64
              ‖ round uint64 ‖ root bytes32 ‖ leafCount uint32)               (116 bytes)

Payload (what a consumer passes to the verifier; packed, big-endian)::

    chainId uint64 ‖ verifier address ‖ epoch uint64 ‖ round uint64 ‖ leafCount uint32
    ‖ root bytes32 ‖ px uint256 ‖ parity uint8 ‖ commitment address ‖ z uint256
    ‖ k uint16 ‖ m uint16 ‖ flags bytes⌈(k+m−1)/8⌉ ‖ leaf[k] ‖ proof[m]

with leaf = feedId ‖ value ‖ observedAt ‖ modelCommitment (88 bytes, the push update's
layout; the round is the payload's) and the flags as a bitmap, flag i at bit 7 − i mod 8
of byte ⌊i/8⌋, unused bits zero. Chain, verifier and root travel although the signature
binds them, so that the verifier can say which one is wrong.

>>> u = [FeedUpdate(bytes([i]) * 32, i, 1_700_000_000, b"\\x07" * 32) for i in (3, 1, 2)]
>>> tree = PullTree.build(round_=1_700_000_000_000, updates=u)
>>> tree.leaf_count
3
>>> mp = tree.multiproof([bytes([2]) * 32])
>>> leaves = [leaf_hash(x, tree.round) for x in mp.updates]
>>> process_multiproof(leaves, mp.proof, mp.flags) == tree.root
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from oracle.crypto.keccak import keccak, keccak_256
from oracle.reporting.errors import PullFormatError
from oracle.reporting.report import (
    MAX_ROUND,
    UPDATE_SIZE,
    FeedUpdate,
    decode_update,
    encode_update,
)

DOMAIN = b"MIRA-PULL-v1"
LEAF_SIZE = UPDATE_SIZE
MAX_LEAVES = (1 << 32) - 1  # leafCount is a uint32
MAX_PAYLOAD_ITEMS = (1 << 16) - 1  # k and m are uint16
FIXED_SIZE = 8 + 20 + 8 + 8 + 4 + 32 + 32 + 1 + 20 + 32 + 2 + 2  # 169: everything before the flags
_U64 = (1 << 64) - 1


def leaf_hash(update: FeedUpdate, round_: int) -> bytes:
    """The leaf of ``update`` in round ``round_``."""
    _check_int("round", round_, 1, MAX_ROUND)
    return _leaf(encode_update(update), round_.to_bytes(8, "big"))


def _leaf(record: bytes, round_bytes: bytes) -> bytes:
    """The leaf of an encoded update (the 88-byte layout), the round already checked and
    encoded (a tree hashes thousands): the round goes in before the commitment."""
    return keccak_256(record[:56] + round_bytes + record[56:]).digest()  # type: ignore[no-any-return]


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: the commutative hash of its children (OpenZeppelin's)."""
    return keccak_256(a + b if a < b else b + a).digest()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Multiproof:
    """The leaves a consumer asked for, in tree order, and what proves them."""

    updates: tuple[FeedUpdate, ...]
    proof: tuple[bytes, ...]
    flags: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class PullTree:
    """One round's outputs under one root. Build it with :meth:`build` or
    :meth:`from_records`.

    The leaves are kept as their 88-byte encoded updates (``records``, the push update's
    layout, what the payload carries): a round moves, checks and hashes 10,000 of them, and
    only the few a consumer asks for are ever decoded."""

    round: int
    records: tuple[bytes, ...]  # encoded updates, ascending feed id
    nodes: tuple[bytes, ...]  # the array form: nodes[0] is the root
    _index: dict[bytes, int] = field(repr=False, compare=False)  # feed id → leaf position

    @classmethod
    def build(cls, round_: int, updates: Iterable[FeedUpdate]) -> PullTree:
        """The tree over ``updates`` (any order; sorted here by feed id, which must be unique)."""
        return cls.from_records(round_, [encode_update(u) for u in updates])

    @classmethod
    def from_records(cls, round_: int, records: Iterable[bytes]) -> PullTree:
        """The tree over encoded updates (any order; sorted here by feed id, which must be
        unique and not zero)."""
        _check_int("round", round_, 1, MAX_ROUND)
        # a record starts with its feed id: sorting records sorts by feed id, and equal ids
        # end up side by side for the duplicate check
        ordered = sorted(records)
        if not ordered:
            raise PullFormatError("updates: a tree has at least one leaf")
        if len(ordered) > MAX_LEAVES:
            raise PullFormatError(f"updates: {len(ordered)} leaves, at most {MAX_LEAVES}")
        for record in ordered:
            if type(record) is not bytes or len(record) != LEAF_SIZE:
                raise PullFormatError(f"updates: a leaf is {LEAF_SIZE} bytes of an encoded update")
        if ordered[0][:32] == bytes(32):
            raise PullFormatError("updates: the zero feed id is reserved")
        for prev, cur in pairwise(ordered):
            if prev[:32] == cur[:32]:
                raise PullFormatError(f"updates: feed 0x{cur[:32].hex()} appears twice")
        n = len(ordered)
        round_bytes = round_.to_bytes(8, "big")
        # leaf j at 2n − 2 − j: the leaves reversed fill the array's tail
        nodes: list[bytes] = [b""] * (n - 1) + [_leaf(r, round_bytes) for r in reversed(ordered)]
        for i in range(n - 2, -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        index = {r[:32]: j for j, r in enumerate(ordered)}
        return cls(round_, tuple(ordered), tuple(nodes), index)

    @property
    def updates(self) -> tuple[FeedUpdate, ...]:
        """Every leaf, decoded (ascending feed id)."""
        return tuple(map(decode_update, self.records))

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    @property
    def leaf_count(self) -> int:
        return len(self.records)

    def carries(self, feed_id: bytes) -> bool:
        return feed_id in self._index

    def multiproof(self, feed_ids: Iterable[bytes]) -> Multiproof:
        """The multiproof of ``feed_ids`` (OpenZeppelin's ``getMultiProof``)."""
        positions: set[int] = set()
        for feed_id in feed_ids:
            j = self._index.get(feed_id)
            if j is None:
                raise PullFormatError(f"feed 0x{bytes(feed_id).hex()} is not in this tree")
            positions.add(j)
        if not positions:
            raise PullFormatError("feed_ids: a multiproof proves at least one leaf")
        last = len(self.nodes) - 1
        # Tree indices, descending: leaf j sits at last − j, so this is ascending j.
        stack = sorted((last - j for j in positions), reverse=True)
        proof: list[bytes] = []
        flags: list[bool] = []
        head = 0
        while head < len(stack) and stack[head] > 0:
            i = stack[head]
            head += 1
            sibling = i - 1 if i % 2 == 0 else i + 1
            if head < len(stack) and stack[head] == sibling:
                flags.append(True)
                head += 1
            else:
                flags.append(False)
                proof.append(self.nodes[sibling])
            stack.append((i - 1) // 2)
        return Multiproof(
            updates=tuple(decode_update(self.records[j]) for j in sorted(positions)),
            proof=tuple(proof),
            flags=tuple(flags),
        )


def process_multiproof(
    leaves: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool]
) -> bytes:
    """The root that ``leaves`` (in tree order), ``proof`` and ``flags`` lead to, exactly as
    LibPull computes it; PullFormatError for a multiproof the verifier refuses."""
    k, m = len(leaves), len(proof)
    if k == 0:
        raise PullFormatError("multiproof: no leaves")
    if k + m - 1 != len(flags):
        raise PullFormatError(f"multiproof: {k} leaves + {m} proof nodes need {k + m - 1} flags")
    hashes: list[bytes] = []
    leaf_pos = hash_pos = proof_pos = 0

    def take() -> bytes:
        nonlocal leaf_pos, hash_pos
        if leaf_pos < k:
            leaf_pos += 1
            return leaves[leaf_pos - 1]
        if hash_pos >= len(hashes):
            raise PullFormatError("multiproof: a hash is used before it is computed")
        hash_pos += 1
        return hashes[hash_pos - 1]

    for flag in flags:
        a = take()
        if flag:
            b = take()
        else:
            if proof_pos >= m:
                raise PullFormatError("multiproof: more proof nodes needed than given")
            b = proof[proof_pos]
            proof_pos += 1
        hashes.append(hash_pair(a, b))
    if proof_pos != m:
        raise PullFormatError(f"multiproof: {m - proof_pos} proof nodes unused")
    if hashes:
        if hash_pos != len(hashes) - 1 or leaf_pos != k:
            raise PullFormatError("multiproof: not every leaf and hash leads to the root")
        return hashes[-1]
    return leaves[0]


def digest(
    chain_id: int, verifier: str | bytes, epoch: int, round_: int, root: bytes, leaf_count: int
) -> bytes:
    """The 32-byte message the committee signs for ``root`` on ``verifier``."""
    _check_int("chain_id", chain_id, 1, (1 << 256) - 1)
    _check_int("epoch", epoch, 1, _U64)
    _check_int("round", round_, 1, MAX_ROUND)
    _check_int("leaf_count", leaf_count, 1, MAX_LEAVES)
    _check_bytes("root", root, 32)
    return keccak(
        DOMAIN
        + chain_id.to_bytes(32, "big")
        + _address(verifier)
        + epoch.to_bytes(8, "big")
        + round_.to_bytes(8, "big")
        + root
        + leaf_count.to_bytes(4, "big")
    )


@dataclass(frozen=True, slots=True)
class PullSignature:
    """The group's Schnorr signature of a root digest, as LibSchnorr.verify takes it."""

    px: int
    parity: int
    commitment: bytes  # address(R), 20 bytes
    z: int

    def __post_init__(self) -> None:
        _check_int("px", self.px, 0, (1 << 256) - 1)
        _check_int("parity", self.parity, 0, 1)
        _check_bytes("commitment", self.commitment, 20)
        _check_int("z", self.z, 0, (1 << 256) - 1)


@dataclass(frozen=True, slots=True)
class Payload:
    """What a consumer passes to MiraPullVerifier.verify."""

    chain_id: int
    verifier: bytes  # 20 bytes
    epoch: int
    round: int
    leaf_count: int
    root: bytes
    signature: PullSignature
    proof: Multiproof

    def __post_init__(self) -> None:
        _check_int("chain_id", self.chain_id, 1, _U64)
        _check_bytes("verifier", self.verifier, 20)
        _check_int("epoch", self.epoch, 1, _U64)
        _check_int("round", self.round, 1, MAX_ROUND)
        _check_int("leaf_count", self.leaf_count, 1, MAX_LEAVES)
        _check_bytes("root", self.root, 32)
        k, m = len(self.proof.updates), len(self.proof.proof)
        if not 1 <= k <= MAX_PAYLOAD_ITEMS or m > MAX_PAYLOAD_ITEMS:
            raise PullFormatError(f"payload: {k} leaves and {m} proof nodes, at most 65535 each")
        if k + m - 1 != len(self.proof.flags):
            raise PullFormatError(f"payload: {k} leaves + {m} proof nodes need {k + m - 1} flags")
        for prev, cur in pairwise(self.proof.updates):
            if not prev.feed_id < cur.feed_id:
                raise PullFormatError("payload: leaves are not in ascending feed id order")


def make_payload(
    tree: PullTree,
    feed_ids: Iterable[bytes],
    *,
    chain_id: int,
    verifier: str | bytes,
    epoch: int,
    signature: PullSignature,
) -> Payload:
    """The payload proving ``feed_ids`` of ``tree`` under ``signature``."""
    return Payload(
        chain_id=chain_id,
        verifier=_address(verifier),
        epoch=epoch,
        round=tree.round,
        leaf_count=tree.leaf_count,
        root=tree.root,
        signature=signature,
        proof=tree.multiproof(feed_ids),
    )


def encode_payload(p: Payload) -> bytes:
    """The payload's bytes, exactly as LibPull reads them."""
    sig = p.signature
    mp = p.proof
    return b"".join(
        [
            p.chain_id.to_bytes(8, "big"),
            p.verifier,
            p.epoch.to_bytes(8, "big"),
            p.round.to_bytes(8, "big"),
            p.leaf_count.to_bytes(4, "big"),
            p.root,
            sig.px.to_bytes(32, "big"),
            bytes([sig.parity]),
            sig.commitment,
            sig.z.to_bytes(32, "big"),
            len(mp.updates).to_bytes(2, "big"),
            len(mp.proof).to_bytes(2, "big"),
            _pack_flags(mp.flags),
            *(encode_update(u) for u in mp.updates),
            *mp.proof,
        ]
    )


def decode_payload(data: bytes) -> Payload:
    """Parse payload bytes; PullFormatError saying what is wrong (checks the layout, not the
    proof or the signature: that is the verifier's job, and :func:`process_multiproof`'s)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PullFormatError(f"payload: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < FIXED_SIZE:
        raise PullFormatError(f"payload: {len(data)} bytes, the fixed part alone is {FIXED_SIZE}")
    k = int.from_bytes(data[165:167], "big")
    m = int.from_bytes(data[167:169], "big")
    if k == 0:
        raise PullFormatError("payload: no leaves")
    nflags = k + m - 1
    flags_size = (nflags + 7) // 8
    expected = FIXED_SIZE + flags_size + k * LEAF_SIZE + 32 * m
    if len(data) != expected:
        raise PullFormatError(
            f"payload: {len(data)} bytes, expected {expected} for {k} leaves and {m} proof nodes"
        )
    flags = _unpack_flags(data[FIXED_SIZE : FIXED_SIZE + flags_size], nflags)
    at = FIXED_SIZE + flags_size
    updates = tuple(
        decode_update(data[at + i * LEAF_SIZE : at + (i + 1) * LEAF_SIZE]) for i in range(k)
    )
    at += k * LEAF_SIZE
    proof = tuple(data[at + 32 * i : at + 32 * (i + 1)] for i in range(m))
    return Payload(
        chain_id=int.from_bytes(data[0:8], "big"),
        verifier=data[8:28],
        epoch=int.from_bytes(data[28:36], "big"),
        round=int.from_bytes(data[36:44], "big"),
        leaf_count=int.from_bytes(data[44:48], "big"),
        root=data[48:80],
        signature=PullSignature(
            px=int.from_bytes(data[80:112], "big"),
            parity=data[112],
            commitment=data[113:133],
            z=int.from_bytes(data[133:165], "big"),
        ),
        proof=Multiproof(updates, proof, flags),
    )


def _pack_flags(flags: Sequence[bool]) -> bytes:
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def _unpack_flags(raw: bytes, count: int) -> tuple[bool, ...]:
    flags = tuple(bool(raw[i // 8] & (0x80 >> (i % 8))) for i in range(count))
    if _pack_flags(flags) != raw:
        raise PullFormatError("payload: the flag bitmap's unused bits are not zero")
    return flags


def _address(value: str | bytes) -> bytes:
    raw = b""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str) and value.startswith("0x"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raw = b""
    if len(raw) != 20:
        raise PullFormatError(f"verifier: expected a 20-byte address, got {value!r}")
    return raw


def _check_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise PullFormatError(f"{name}: expected {size} bytes, got {got}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PullFormatError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise PullFormatError(f"{name}: {value} is out of range [{lo}, {hi}]")
