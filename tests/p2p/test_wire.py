"""The p2p envelope: exact lengths, signatures, binding, replay, rate limits; and a fuzz
test feeding random bytes and mutated valid messages to the parser and authenticator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.crypto.dkg import (
    Complaint,
    DKGConfig,
    DKGParticipant,
    Justification,
    run_dkg_in_one_process,
)
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import make_signers
from oracle.crypto.suites import MIRA_EVM
from oracle.node.keygen_messages import (
    decode_dkg_complaints,
    decode_dkg_justifications,
    decode_dkg_relay,
    decode_dkg_round1,
    decode_dkg_share,
    encode_dkg_complaints,
    encode_dkg_justifications,
    encode_dkg_relay,
    encode_dkg_round1,
    encode_dkg_share,
)
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import (
    HEADER_LEN,
    MAX_MESSAGE_BYTES,
    SIGNATURE_LEN,
    MsgType,
    seal,
    unseal,
)
from oracle.reporting.messages import (
    Observation,
    Proposal,
    SignedReport,
)
from oracle.reporting.report import FeedUpdate, Report, encode
from tests.p2p.helpers import EPOCH, authenticator, header, keys, rejected

KEYS = keys(4)


def _update(v: int = 5) -> FeedUpdate:
    return FeedUpdate(b"\x01" * 32, v, 1_700_000_000, b"\x02" * 32)


def test_round_trip_recovers_signer_and_fields() -> None:
    msg = seal(header(MsgType.OBSERVE, sender=2, round_=77, attempt=1), b"abc", KEYS[2])
    assert len(msg) == HEADER_LEN + 3 + SIGNATURE_LEN
    env = unseal(msg)
    assert env.header.round == 77 and env.header.attempt == 1 and env.header.sender == 2
    assert env.payload == b"abc"
    assert env.signer_key == KEYS[2].public_key.format(compressed=True)


def test_accepts_valid_member_message_once() -> None:
    auth = authenticator(KEYS)
    msg = seal(header(sender=1), b"", KEYS[1])
    auth.open(msg)
    with pytest.raises(MessageRejected) as exc:
        auth.open(msg)
    assert exc.value.reason == "replay"
    assert rejected(auth, "replay") == 1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: m[:-1], "truncated"),
        (lambda m: m[:10], "truncated"),
        (lambda m: m + b"\x00", "malformed"),
        (lambda m: b"XX" + m[2:], "malformed"),
        (lambda m: m[:2] + b"\x02" + m[3:], "bad_version"),
        (lambda m: m[:3] + b"\xee" + m[4:], "malformed"),
        (lambda m: m[:-2] + bytes([m[-2] ^ 1]) + m[-1:], "bad_signature"),
    ],
)
def test_rejects_malformed_and_tampered(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    auth = authenticator(KEYS)
    msg = seal(header(sender=0), b"payload", KEYS[0])
    with pytest.raises(MessageRejected) as exc:
        auth.open(mutate(msg))
    # a flipped signature byte either fails to recover or recovers another key
    assert exc.value.reason in (reason, "non_member")
    assert rejected(auth, exc.value.reason) == 1


def test_tampered_payload_does_not_verify_as_the_sender() -> None:
    auth = authenticator(KEYS)
    msg = bytearray(seal(header(sender=0), b"payload", KEYS[0]))
    msg[HEADER_LEN] ^= 1
    with pytest.raises(MessageRejected) as exc:
        auth.open(bytes(msg))
    assert exc.value.reason in ("non_member", "bad_signature")


def test_oversized_is_rejected_before_parsing() -> None:
    auth = authenticator(KEYS)
    with pytest.raises(MessageRejected) as exc:
        auth.open(b"\x00" * (MAX_MESSAGE_BYTES + 1))
    assert exc.value.reason == "oversized"


def test_non_member_wrong_member_epoch_and_binding() -> None:
    auth = authenticator(KEYS)
    outsider = keys(6)[5]
    cases = [
        (seal(header(sender=0), b"", outsider), "non_member"),
        (seal(header(sender=9), b"", KEYS[0]), "non_member"),
        (seal(header(sender=1), b"", KEYS[0]), "bad_signature"),  # member 0 posing as 1
        (seal(header(sender=0, epoch=EPOCH - 1), b"", KEYS[0]), "wrong_epoch"),
        (seal(header(sender=0, chain_id=1), b"", KEYS[0]), "wrong_committee"),
        (seal(header(sender=0, committee=b"\x01" * 20), b"", KEYS[0]), "wrong_committee"),
    ]
    for msg, reason in cases:
        with pytest.raises(MessageRejected) as exc:
            auth.open(msg)
        assert exc.value.reason == reason, exc.value


def test_replay_window_refuses_stale_rounds() -> None:
    auth = authenticator(KEYS, replay_window=8)
    auth.open(seal(header(MsgType.OBSERVE, round_=1000), b"", KEYS[0]))
    auth.open(seal(header(MsgType.OBSERVE, round_=995), b"", KEYS[0]))  # late but in window
    with pytest.raises(MessageRejected) as exc:
        auth.open(seal(header(MsgType.OBSERVE, round_=900), b"", KEYS[0]))
    assert exc.value.reason == "stale"
    # another attempt of the same round is a different message
    auth.open(seal(header(MsgType.OBSERVE, round_=1000, attempt=1), b"", KEYS[0]))


def test_per_peer_rate_limit() -> None:
    auth = authenticator(KEYS, peer_rate=0.001, peer_burst=3)
    for r in range(3):
        auth.open(seal(header(round_=r), b"", KEYS[0]))
    with pytest.raises(MessageRejected) as exc:
        auth.open(seal(header(round_=3), b"", KEYS[0]))
    assert exc.value.reason == "rate_limited"
    auth.open(seal(header(round_=3, sender=1), b"", KEYS[1]))  # others are unaffected


def test_payload_codecs_round_trip_and_are_strict() -> None:
    dkg = run_dkg_in_one_process(MIRA_EVM, 3, 4)
    signer = make_signers(MIRA_EVM, dkg.public, dkg.keys)[1]
    obs = Observation((_update(),), signer.commit())
    assert Observation.decode(obs.encode()) == obs
    report = encode(Report(EPOCH, 9, (_update(),)))
    prop = Proposal(report, (b"x" * 10, b"y"), (signer.commit(),))
    assert Proposal.decode(prop.encode()) == prop
    signed = SignedReport(report, b"\x03" * 52)
    assert SignedReport.decode(signed.encode()) == signed
    for data, decoder in (
        (obs.encode(), Observation.decode),
        (prop.encode(), Proposal.decode),
        (signed.encode(), SignedReport.decode),
    ):
        with pytest.raises(MessageRejected):
            decoder(data[:-1])
        with pytest.raises(MessageRejected):
            decoder(data + b"\x00")


def _dkg_payloads() -> dict[str, bytes]:
    """One valid payload of each DKG message, from a real participant."""
    ids = {i: IdentityKey() for i in (1, 2)}
    config = DKGConfig(MIRA_EVM, b"\x05" * 32, 2, {i: k.public_bytes for i, k in ids.items()})
    p = DKGParticipant(config, 1, ids[1])
    r1 = p.round1()
    p.receive_round1([r1, DKGParticipant(config, 2, ids[2]).round1()])
    (env,) = p.round2()
    complaints = [Complaint(1, 2, "no share received")]
    return {
        "round1": encode_dkg_round1(config.session_id, r1),
        "share": encode_dkg_share(config.session_id, env),
        "complaints": encode_dkg_complaints(config.session_id, [b"\x07" * 32] * 2, complaints),
        "justify": encode_dkg_justifications(config.session_id, [Justification(1, 2, 12345)]),
    }


_DKG = _dkg_payloads()
_DKG_DECODERS = {
    "round1": decode_dkg_round1,
    "share": decode_dkg_share,
    "complaints": decode_dkg_complaints,
    "justify": decode_dkg_justifications,
}


def test_dkg_codecs_round_trip_and_are_strict() -> None:
    session, r1 = decode_dkg_round1(_DKG["round1"], 1)
    assert session == b"\x05" * 32 and r1.sender == 1 and len(r1.commitments) == 2
    assert encode_dkg_round1(session, r1) == _DKG["round1"]
    session, env = decode_dkg_share(_DKG["share"], 1)
    assert (env.sender, env.recipient) == (1, 2)
    assert encode_dkg_share(session, env) == _DKG["share"]
    session, digests, complaints = decode_dkg_complaints(_DKG["complaints"], 3)
    assert digests == [b"\x07" * 32] * 2
    assert complaints == [Complaint(3, 2, "no share received")]  # complainer: the sender
    for name, data in _DKG.items():
        with pytest.raises(MessageRejected, match="malformed"):
            _DKG_DECODERS[name](data[:-1], 1)
        with pytest.raises(MessageRejected, match="malformed"):
            _DKG_DECODERS[name](data + b"\x00", 1)
    session, answers = decode_dkg_justifications(_DKG["justify"], 1)
    assert [(a.dealer, a.accuser) for a in answers] == [(1, 2)]  # the sender answers
    assert encode_dkg_justifications(session, answers) == _DKG["justify"]
    too_big = _DKG["justify"][:-32] + (2**256 - 1).to_bytes(32, "big")
    with pytest.raises(MessageRejected, match="out of range"):
        decode_dkg_justifications(too_big, 1)
    with pytest.raises(ValueError, match="32 bytes"):
        encode_dkg_complaints(b"\x05" * 32, [b"short"], [])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(sorted(_DKG)), st.integers(0, 400))
def test_fuzz_dkg_decoders(data: bytes, which: str, cut: int) -> None:
    valid = _DKG[which]
    mutated = bytearray(valid)
    for i, b in enumerate(data[:8]):
        mutated[(cut + 37 * i) % len(mutated)] = b
    for candidate in (data, valid[:cut] + data, bytes(mutated)):
        try:
            _DKG_DECODERS[which](candidate, 1)
        except MessageRejected as exc:
            assert exc.reason == "malformed"


_VALID = [
    seal(header(MsgType.OBSERVE, sender=i % 4, round_=50 + i), bytes([i]) * i, KEYS[i % 4])
    for i in range(8)
]
_PAYLOAD = Observation((_update(7),), None).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=400),
        st.tuples(
            st.sampled_from(_VALID),
            st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
            st.integers(-3, 3),
        ).map(
            lambda t: (lambda m: (m + b"\x00" * max(0, t[2]))[: len(m) + min(0, t[2]) or None])(
                bytes(_mutate(t[0], t[1]))
            )
        ),
    )
)
def test_fuzz_parser_and_authenticator_never_crash(data: bytes) -> None:
    auth = authenticator(KEYS)
    try:
        env = auth.open(data)
    except MessageRejected as exc:
        assert exc.reason  # refused with a reason, and counted
        assert rejected(auth, exc.reason) == 1
        return
    # Accepted: then it must be an unmodified valid message.
    assert data in _VALID
    assert env.header.epoch == EPOCH


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["obs", "prop", "signed"]))
def test_fuzz_payload_decoders(data: bytes, which: str) -> None:
    decoder = {"obs": Observation.decode, "prop": Proposal.decode, "signed": SignedReport.decode}
    base = {"obs": _PAYLOAD, "prop": b"", "signed": b""}[which]
    for candidate in (data, base + data, base[: len(data)]):
        try:
            decoder[which](candidate)
        except MessageRejected as exc:
            assert exc.reason == "malformed"


def _mutate(msg: bytes, edits: list[tuple[int, int]]) -> bytearray:
    out = bytearray(msg)
    for pos, value in edits:
        out[pos % len(out)] = value
    return out


def test_header_checks_come_before_the_node_wide_bucket() -> None:
    """Bytes refused from the header alone (here: an epoch this node does not serve) cost
    no signature recovery and spend no node-wide token, so they cannot crowd members out."""
    auth = authenticator(KEYS, global_rate=1)
    stale = seal(header(sender=0, epoch=EPOCH - 1), b"", KEYS[0])
    for _ in range(5):
        with pytest.raises(MessageRejected) as exc:
            auth.open(stale, source="192.0.2.1")
        assert exc.value.reason == "wrong_epoch"
    auth.open(seal(header(sender=1), b"", KEYS[1]), source="192.0.2.2")


def test_a_source_pays_for_its_refused_messages_not_for_members() -> None:
    auth = authenticator(KEYS, source_rate=0.001, source_burst=3)
    for _ in range(3):
        with pytest.raises(MessageRejected):
            auth.open(b"\x00" * 200, source="192.0.2.1")
    with pytest.raises(MessageRejected) as exc:  # its budget is spent, even for a member
        auth.open(seal(header(sender=1), b"", KEYS[1]), source="192.0.2.1")
    assert exc.value.reason == "source_rate_limited"
    # accepted messages cost a source nothing: members sharing an address keep going
    for r in range(10):
        auth.open(seal(header(sender=1, round_=r), b"", KEYS[1]), source="192.0.2.9")
    assert rejected(auth, "source_rate_limited") == 1


def test_dkg_complaints_name_each_dealer_once() -> None:
    twice = [Complaint(1, 2, "no share received"), Complaint(1, 2, "again")]
    data = encode_dkg_complaints(b"\x05" * 32, [b"\x07" * 32] * 2, twice)
    with pytest.raises(MessageRejected, match="dealer 2 listed twice"):
        decode_dkg_complaints(data, 1)


def test_dkg_relay_carries_a_whole_signed_message() -> None:
    inner = seal(header(MsgType.DKG_ROUND1, sender=2, round_=7), _DKG["round1"], KEYS[2])
    session, raw = decode_dkg_relay(encode_dkg_relay(b"\x05" * 32, inner))
    assert (session, raw) == (b"\x05" * 32, inner)
    assert unseal(raw).signer_key == KEYS[2].public_key.format(
        compressed=True
    )  # the author's signature travels with it
    with pytest.raises(MessageRejected, match="no message inside"):
        decode_dkg_relay(b"\x05" * 32 + inner[:50])
