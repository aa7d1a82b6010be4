"""Pedersen DKG: honest runs, encrypted shares, complaints, disqualification, bad input."""

from __future__ import annotations

import dataclasses
import random

import pytest

import oracle.crypto.group as group
from oracle.crypto.dkg import (
    Complaint,
    DKGConfig,
    DKGOutput,
    DKGParticipant,
    Justification,
    ParticipantDisqualifiedError,
    Round1Message,
    agreement_quorum,
    default_threshold,
    max_faulty,
    run_dkg_in_one_process,
)
from oracle.crypto.envelope import EncryptedShare, IdentityKey, open_share, seal_share
from oracle.crypto.errors import (
    DKGError,
    DuplicateParticipantError,
    InvalidDealerShareError,
    NonMemberCommitmentError,
    TooFewParticipantsError,
    UndecryptableShareError,
    UnknownParticipantError,
)
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.group import N, base_mul, evaluate_commitment, lagrange_coefficients
from oracle.crypto.suites import FROST_SECP256K1_SHA256, MIRA_EVM


def _members(
    t: int, n: int, cls: type[DKGParticipant] = DKGParticipant, **special: type[DKGParticipant]
) -> list[DKGParticipant]:
    identities = {i: IdentityKey() for i in range(1, n + 1)}
    config = DKGConfig(
        MIRA_EVM, b"session-1", t, {i: k.public_bytes for i, k in identities.items()}
    )
    return [special.get(str(i), cls)(config, i, k) for i, k in identities.items()]


@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 3), (3, 5), (5, 7)])
def test_dkg_output_signs_and_matches_the_shares(t: int, n: int) -> None:
    result = run_dkg_in_one_process(MIRA_EVM, t, n)
    assert sorted(result.keys) == list(range(1, n + 1)) and not result.disqualified
    public = result.public
    for i, key in result.keys.items():
        assert public.verifying_shares[i] == base_mul(key.secret_share)
        assert key.group_key == public.group_key
    # Any t shares interpolate to the secret behind the group key.
    subset = random.Random(t * 100 + n).sample(sorted(result.keys), t)
    lam = lagrange_coefficients(subset)
    secret = sum(lam[i] * result.keys[i].secret_share for i in subset) % N
    assert base_mul(secret) == public.group_key
    assert public.group_key.x < N
    signers = make_signers(MIRA_EVM, public, result.keys)
    outcome = run_signing(MIRA_EVM, public, bytes(range(32)), list(signers.values()))
    assert MIRA_EVM.verify(public.group_key, bytes(range(32)), outcome.encoded)


def test_dkg_with_the_standard_suite() -> None:
    result = run_dkg_in_one_process(FROST_SECP256K1_SHA256, 2, 3)
    signers = make_signers(FROST_SECP256K1_SHA256, result.public, result.keys)
    outcome = run_signing(FROST_SECP256K1_SHA256, result.public, b"hello", list(signers.values()))
    assert FROST_SECP256K1_SHA256.verify(result.public.group_key, b"hello", outcome.encoded)


class _BadShareDealer(DKGParticipant):
    """Sends participant 2 a share that is off by one (but properly encrypted and signed)."""

    def _share_for(self, recipient: int) -> int:
        share = super()._share_for(recipient)
        return (share + 1) % N if recipient == 2 else share


class _BadProofDealer(DKGParticipant):
    def round1(self) -> Round1Message:
        msg = super().round1()
        return dataclasses.replace(msg, proof_mu=(msg.proof_mu + 1) % N)


def test_cheating_dealer_is_disqualified_and_the_rest_still_sign() -> None:
    members = _members(3, 5, **{"4": _BadShareDealer})
    result = run_dkg_in_one_process(MIRA_EVM, 3, members)
    assert [(c.complainer, c.dealer) for c in result.complaints] == [(2, 4)]
    assert isinstance(result.complaints[0].evidence, EncryptedShare)
    assert "does not match" in result.complaints[0].reason
    assert set(result.disqualified) == {4}
    assert result.disqualified[4].endswith("(answered with a wrong share)")
    assert [(a.dealer, a.accuser) for a in result.justifications] == [(4, 2)]
    assert sorted(result.keys) == [1, 2, 3, 5]
    assert sorted(result.public.verifying_shares) == [1, 2, 3, 5]
    # The group key is the sum over the qualified dealers only.
    expected = group.point_sum(m.commitments[d][0] for m in members[:1] for d in (1, 2, 3, 5))
    assert result.public.group_key == expected
    signers = make_signers(MIRA_EVM, result.public, result.keys)
    outcome = run_signing(MIRA_EVM, result.public, bytes(32), list(signers.values()))
    assert MIRA_EVM.verify(result.public.group_key, bytes(32), outcome.encoded)


def test_bad_proof_of_knowledge_disqualifies_in_round_one() -> None:
    members = _members(2, 4, **{"3": _BadProofDealer})
    result = run_dkg_in_one_process(MIRA_EVM, 2, members)
    assert set(result.disqualified) == {3}
    assert "proof of knowledge" in result.disqualified[3]
    assert sorted(result.keys) == [1, 2, 4]


def test_too_many_cheaters_leave_too_few_qualified() -> None:
    members = _members(3, 3, **{"2": _BadProofDealer})
    with pytest.raises(TooFewParticipantsError):
        run_dkg_in_one_process(MIRA_EVM, 3, members)


def test_round1_batch_with_non_member_or_duplicate_is_refused_without_state_change() -> None:
    members = _members(2, 3)
    msgs = [m.round1() for m in members]
    outsider = dataclasses.replace(msgs[0], sender=9)
    with pytest.raises(NonMemberCommitmentError):
        members[0].receive_round1([*msgs, outsider])
    with pytest.raises(DuplicateParticipantError):
        members[0].receive_round1([*msgs, msgs[1]])
    assert members[0].commitments == {} and members[0].disqualified == {}
    members[0].receive_round1(msgs)  # the clean batch still goes through
    assert sorted(members[0].commitments) == [1, 2, 3]
    with pytest.raises(DKGError):
        members[0].receive_round1(msgs)  # wrong phase


def test_tampered_envelope_is_a_typed_error_and_a_complaint() -> None:
    members = _members(2, 3)
    msgs = [m.round1() for m in members]
    for m in members:
        m.receive_round1(msgs)
    envelopes = [e for m in members for e in m.round2()]
    victim = members[1]
    target = next(e for e in envelopes if e.recipient == 2 and e.sender == 1)
    flipped = dataclasses.replace(
        target, ciphertext=bytes([target.ciphertext[0] ^ 1]) + target.ciphertext[1:]
    )
    # Directly: the envelope does not open, with a typed error naming both ends.
    with pytest.raises(UndecryptableShareError) as info:
        open_share(b"session-1", flipped, 2, victim._identity, victim.config.identity_keys[1])
    assert (info.value.sender, info.value.recipient) == (1, 2)
    # In the protocol: a complaint against dealer 1, nothing else disturbed.
    others = [e for e in envelopes if e is not target]
    complaints = victim.receive_round2([*others, flipped])
    assert [(c.complainer, c.dealer) for c in complaints] == [(2, 1)]
    assert "signed" in complaints[0].reason  # the flip breaks the dealer's signature
    assert sorted(victim._received) == [2, 3]


def test_envelope_binds_session_recipient_and_sender() -> None:
    alice, bob, carol = IdentityKey(), IdentityKey(), IdentityKey()
    share = (12345).to_bytes(32, "big")
    env = seal_share(b"s", 1, alice, 2, bob.public_bytes, share)
    assert open_share(b"s", env, 2, bob, alice.public_bytes) == share
    with pytest.raises(UndecryptableShareError):
        open_share(b"other session", env, 2, bob, alice.public_bytes)
    with pytest.raises(UndecryptableShareError):
        open_share(b"s", env, 3, carol, alice.public_bytes)  # misaddressed
    with pytest.raises(UndecryptableShareError):
        open_share(b"s", env, 2, bob, carol.public_bytes)  # not signed by carol
    with pytest.raises(UndecryptableShareError):
        open_share(b"s", dataclasses.replace(env, sender=3), 2, bob, alice.public_bytes)
    forged_by_carol = seal_share(b"s", 1, carol, 2, bob.public_bytes, share)
    with pytest.raises(UndecryptableShareError):
        open_share(b"s", forged_by_carol, 2, bob, alice.public_bytes)
    assert share not in env.ciphertext and len(env.ciphertext) == 32 + 16
    assert "redacted" in repr(alice) and alice.secret_bytes().hex() not in repr(alice)


def test_invalid_share_error_names_dealer() -> None:
    err = InvalidDealerShareError(4, 2)
    assert err.dealer == 4 and "4" in str(err)


def test_complaint_from_non_member_refused() -> None:
    members = _members(2, 3)
    msgs = [m.round1() for m in members]
    for m in members:
        m.receive_round1(msgs)
    envs = [e for m in members for e in m.round2()]
    for m in members:
        assert m.receive_round2(envs) == []
    with pytest.raises(UnknownParticipantError):
        members[0].finalize([Complaint(7, 2, "made up")])
    assert members[0].disqualified == {}  # refused before any dealer was disqualified
    out = members[0].finalize([])
    assert sorted(out.public.verifying_shares) == [1, 2, 3]


def test_small_multiplier_horner_matches_generic_evaluation() -> None:
    rng = random.Random(7)
    phis = [base_mul(rng.randrange(1, N)) for _ in range(6)]
    for x in (1, 2, 3, 47, 48, 100, N - 1):
        coeff_sum = group.point_sum(p * pow(x, k, N) for k, p in enumerate(phis))
        assert evaluate_commitment(phis, x) == coeff_sum


def _through_round2(
    members: list[DKGParticipant], tamper: tuple[int, int] | None = None
) -> list[Complaint]:
    """Rounds 1 and 2 for everyone; ``tamper`` = (dealer, recipient) flips a byte of that
    envelope in transit. Returns every complaint."""
    msgs = [m.round1() for m in members]
    for m in members:
        m.receive_round1(msgs)
    envelopes = [e for m in members for e in m.round2()]
    if tamper is not None:
        envelopes = [
            dataclasses.replace(e, ciphertext=bytes([e.ciphertext[0] ^ 1]) + e.ciphertext[1:])
            if (e.sender, e.recipient) == tamper
            else e
            for e in envelopes
        ]
    return [c for m in members for c in m.receive_round2(envelopes)]


def _finalize_all(
    members: list[DKGParticipant], complaints: list[Complaint], answers: list[Justification]
) -> dict[int, DKGOutput]:
    return {m.identifier: m.finalize(complaints, answers) for m in members}


def _signs(outputs: dict[int, DKGOutput]) -> None:
    public = next(iter(outputs.values())).public
    assert all(o.public == public for o in outputs.values())
    keys = {i: o.key for i, o in outputs.items()}
    signers = make_signers(MIRA_EVM, public, keys)
    outcome = run_signing(MIRA_EVM, public, bytes(32), list(signers.values()))
    assert MIRA_EVM.verify(public.group_key, bytes(32), outcome.encoded)


def test_a_false_complaint_is_answered_and_the_honest_dealer_stays() -> None:
    members = _members(3, 4)
    assert _through_round2(members) == []
    lie = Complaint(2, 3, "no share received")  # member 2 lies about dealer 3
    answers = [a for m in members for a in m.justify([lie])]
    assert [(a.dealer, a.accuser) for a in answers] == [(3, 2)]
    outputs = _finalize_all(members, [lie], answers)
    assert all(o.disqualified == {} for o in outputs.values())
    honest_key = group.point_sum(members[0].commitments[d][0] for d in (1, 2, 3, 4))
    assert next(iter(outputs.values())).public.group_key == honest_key
    _signs(outputs)


def test_a_share_damaged_in_transit_is_replaced_by_the_dealers_answer() -> None:
    members = _members(3, 4)
    complaints = _through_round2(members, tamper=(1, 4))
    assert [(c.complainer, c.dealer) for c in complaints] == [(4, 1)]
    answers = [a for m in members for a in m.justify(complaints)]
    outputs = _finalize_all(members, complaints, answers)
    assert all(o.disqualified == {} for o in outputs.values())
    _signs(outputs)  # member 4's share includes dealer 1's revealed contribution
    assert sorted(outputs[4].public.verifying_shares) == [1, 2, 3, 4]


def test_an_unanswered_complaint_disqualifies_and_the_dealer_gets_no_key() -> None:
    members = _members(2, 4)
    complaints = [Complaint(1, 2, "no share received")]
    _through_round2(members)
    outputs = {m.identifier: m.finalize(complaints, []) for m in members if m.identifier != 2}
    assert all(o.disqualified[2].endswith("(no answer)") for o in outputs.values())
    with pytest.raises(ParticipantDisqualifiedError, match="participant 2 was disqualified"):
        members[1].finalize(complaints, [])
    _signs(outputs)


def test_a_wrong_or_unasked_answer_does_not_clear_a_complaint() -> None:
    members = _members(2, 3)
    _through_round2(members)
    real = members[2].justify([Complaint(1, 3, "x")])[0]
    wrong = dataclasses.replace(real, share=(real.share + 1) % N)
    out = members[0].finalize([Complaint(1, 3, "x")], [wrong, real])  # first answer counts
    assert out.disqualified[3].endswith("(answered with a wrong share)")
    members = _members(2, 3)
    _through_round2(members)
    unanswerable = Complaint(1, 3, "equivocated in round 1", answerable=False)
    assert members[2].justify([unanswerable]) == []
    real = Justification(3, 1, members[2]._share_for(1))
    out = members[0].finalize([unanswerable], [real])
    assert out.disqualified[3].endswith("(cannot be answered)")


@pytest.mark.parametrize(
    ("n", "t", "f", "quorum"),
    [(1, 1, 0, 1), (3, 2, 0, 2), (4, 3, 1, 4), (5, 3, 1, 4), (7, 5, 2, 7), (10, 4, 3, 7)],
)
def test_t_plus_f_leaves_t_honest_key_holders(n: int, t: int, f: int, quorum: int) -> None:
    """Of ``quorum`` members holding one key at most f are Byzantine: t honest remain."""
    assert max_faulty(n) == f and 3 * f + 1 <= n
    assert agreement_quorum(n, t) == quorum
    assert quorum <= n and (quorum - f >= t or quorum == n)


@pytest.mark.parametrize("n", range(1, 32))
def test_default_threshold_is_two_f_plus_one(n: int) -> None:
    """f is the largest number of liars n tolerates (n ≥ 3f + 1), and t = 2f + 1 lets
    the honest members sign alone (n − f ≥ t) while the liars alone never can (f < t)."""
    f, t = max_faulty(n), default_threshold(n)
    assert 3 * f + 1 <= n < 3 * (f + 1) + 1
    assert t == 2 * f + 1 and f < t <= n - f
