"""The part codec and assembly of a pull round's leaves (oracle.reporting.pull_parts): every
bound a sender could push past, and parts in any order."""

from __future__ import annotations

import pytest

from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import HEADER_LEN, MAX_MESSAGE_BYTES, MAX_PARTS, SIGNATURE_LEN
from oracle.reporting.context import Refusal
from oracle.reporting.pull_parts import (
    LEAVES_PER_PART,
    MAX_ASSEMBLIES,
    MAX_TOTAL,
    Assemblies,
    Part,
    PartAssembly,
    decode_part,
    encode_parts,
    part_count,
)
from oracle.reporting.report import FeedUpdate, encode_update

COMMITMENT = b"\x07" * 32


def _updates(n: int) -> list[FeedUpdate]:
    return [FeedUpdate((i + 1).to_bytes(32, "big"), i, 1_700_000_000, COMMITMENT) for i in range(n)]


def _records(updates: list[FeedUpdate]) -> list[bytes]:
    return [encode_update(u) for u in updates]


def _parts(updates: list[FeedUpdate]) -> list[Part]:
    return [decode_part(raw, index=i) for i, raw in enumerate(encode_parts(_records(updates)))]


@pytest.mark.parametrize("n", [0, 1, LEAVES_PER_PART, LEAVES_PER_PART + 1, 1500, 10_000])
def test_parts_round_trip_and_fit_a_message(n: int) -> None:
    updates = _updates(n)
    raws = encode_parts(_records(updates))
    assert len(raws) == part_count(n) == max(1, -(-n // LEAVES_PER_PART))
    assert all(len(r) <= MAX_MESSAGE_BYTES - HEADER_LEN - SIGNATURE_LEN for r in raws)
    back = [r for p in _parts(updates) for r in p.records()]
    assert back == _records(updates)


def test_a_part_that_is_not_exactly_what_its_header_says_is_malformed() -> None:
    raws = encode_parts(_records(_updates(1500)))  # 3 parts
    with pytest.raises(MessageRejected, match="in the message of part"):
        decode_part(raws[1], index=0)  # part 1 sent under part 0's header
    with pytest.raises(MessageRejected, match="trailing"):
        decode_part(raws[0] + b"\x00", index=0)
    with pytest.raises(MessageRejected, match="truncated"):
        decode_part(raws[0][:-1], index=0)
    with pytest.raises(MessageRejected, match="truncated"):
        decode_part(b"\x00\x00\x00", index=0)
    # the part count must be the one the total implies
    lie = raws[0][:2] + (4).to_bytes(2, "big") + raws[0][4:]
    with pytest.raises(MessageRejected, match="4 parts for 1500"):
        decode_part(lie, index=0)
    # no more than MAX_TOTAL updates (so no more than MAX_PARTS parts)
    huge = MAX_TOTAL + 1
    head = (0).to_bytes(2, "big") + part_count(huge).to_bytes(2, "big") + huge.to_bytes(4, "big")
    with pytest.raises(MessageRejected, match=f"at most {MAX_TOTAL}"):
        decode_part(head + raws[0][8:], index=0)
    assert part_count(MAX_TOTAL) == MAX_PARTS
    with pytest.raises(ValueError, match="at most"):
        encode_parts(_records(_updates(MAX_TOTAL + 1)))


def test_unsorted_or_undecodable_updates_in_a_part_are_refused() -> None:
    ups = _updates(3)
    swapped = encode_parts(_records([ups[1], ups[0], ups[2]]))[0]
    with pytest.raises(MessageRejected, match="strictly ascending"):
        decode_part(swapped, index=0).records()
    twice = encode_parts(_records([ups[0], ups[0], ups[2]]))[0]
    with pytest.raises(MessageRejected, match="strictly ascending"):
        decode_part(twice, index=0).records()
    zero_id = bytearray(encode_parts(_records(ups))[0])
    zero_id[8:40] = bytes(32)  # the reserved zero feed id
    with pytest.raises(MessageRejected, match="zero feed id"):
        decode_part(bytes(zero_id), index=0).records()


def test_parts_assemble_in_any_order() -> None:
    updates = _updates(2 * LEAVES_PER_PART + 5)
    parts = _parts(updates)
    assembly = PartAssembly(parts[0].parts, parts[0].total)
    for p in reversed(parts):
        assert not assembly.complete
        assembly.add(p)
    assert assembly.complete
    assert list(assembly.leaves()) == _records(updates)


def test_a_missing_duplicated_or_disagreeing_part_is_refused() -> None:
    parts = _parts(_updates(1500))
    assembly = PartAssembly(parts[0].parts, parts[0].total)
    assembly.add(parts[0])
    assembly.add(parts[2])
    with pytest.raises(Refusal) as missing:
        assembly.leaves()
    assert missing.value.reason == "missing_parts" and "[1]" in missing.value.detail
    with pytest.raises(Refusal) as dup:
        assembly.add(parts[0])
    assert dup.value.reason == "duplicate_part"
    # a part of another list (another total) does not join this one
    other = _parts(_updates(1400))[1]
    with pytest.raises(Refusal) as mismatch:
        assembly.add(other)
    assert mismatch.value.reason == "part_mismatch"
    assert not assembly.complete


def test_a_part_with_an_undecodable_leaf_sinks_the_assembly_not_the_node() -> None:
    raws = encode_parts(_records(_updates(3)))
    bad = raws[0][:8] + bytes(32) + raws[0][40:]  # zero feed id in the first leaf
    assembly = PartAssembly(1, 3)
    assembly.add(decode_part(bad, index=0))
    with pytest.raises(Refusal) as exc:
        assembly.leaves()
    assert exc.value.reason == "malformed"


def test_assemblies_hold_no_more_leaves_than_carried_nor_rounds_than_bounded() -> None:
    kept = Assemblies()
    parts = _parts(_updates(1500))
    with pytest.raises(Refusal) as over:
        kept.add(1000, 1, parts[0], max_leaves=1499)
    assert over.value.reason == "too_many_leaves" and len(kept) == 0
    # a Byzantine leader (member 3) sending parts for many rounds keeps at most
    # MAX_ASSEMBLIES of its own, and never pushes out another leader's
    kept.add(1000, 1, parts[0], max_leaves=10_000)
    for r in range(2000, 2000 + 10 * MAX_ASSEMBLIES, 10):
        kept.add(r, 3, parts[0], max_leaves=10_000)
    assert len(kept) == 1 + MAX_ASSEMBLIES
    assert kept.get(1000) is not None  # member 1's round survived
    with pytest.raises(Refusal) as stale:
        kept.add(1500, 3, parts[0], max_leaves=10_000)  # older than all of member 3's
    assert stale.value.reason == "stale_round"
    with pytest.raises(Refusal) as empty:
        kept.add(3000, 3, _parts([])[0], max_leaves=10_000)
    assert empty.value.reason == "no_leaves"
