"""ICommittee.Member as Python reads it back: one named type, not indexed tuples."""

from __future__ import annotations

from oracle.chain.oracle_calls import MemberInfo


def test_a_member_read_from_the_chain_is_the_member_written() -> None:
    member = MemberInfo(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", b"\x02" + b"\x11" * 32, "http://a:9000"
    )
    # web3 returns the struct as a tuple, the identity key as bytes-like
    raw = (member.operator, bytearray(member.identity_key), member.p2p_url)
    assert MemberInfo.from_chain(raw) == member
    assert MemberInfo.from_chain(member.as_tuple()) == member
