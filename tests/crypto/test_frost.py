"""FROST signing: round trips, properties, identifiable abort, nonce safety, bad input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.crypto.errors import (
    CryptoError,
    DuplicateParticipantError,
    IdentityPointError,
    InvalidPointError,
    InvalidSignatureShareError,
    NonceReuseError,
    NonMemberCommitmentError,
    ScalarOutOfRangeError,
    TooFewParticipantsError,
    UnknownParticipantError,
    WrongLengthError,
)
from oracle.crypto.frost import (
    KeyPackage,
    PublicKeyPackage,
    SignatureShare,
    Signer,
    SigningRound,
    aggregate,
    make_signers,
    run_signing,
    verify_signature_share,
)
from oracle.crypto.group import N, Point, base_mul, deserialize_scalar, lagrange_coefficients
from oracle.crypto.nonces import InMemoryUsedNonceLog, SigningCommitment
from oracle.crypto.suites import FROST_SECP256K1_SHA256, MIRA_EVM, Ciphersuite
from tests.harness.dealer import trusted_dealer_keygen_for_tests

SUITES = [FROST_SECP256K1_SHA256, MIRA_EVM]


def _group(
    suite: Ciphersuite, t: int, n: int, seed: int = 1
) -> tuple[PublicKeyPackage, dict[int, KeyPackage]]:
    rng = random.Random(seed)
    return trusted_dealer_keygen_for_tests(suite, t, n, random_scalar=lambda: rng.randrange(1, N))


def _sign(
    suite: Ciphersuite,
    public: PublicKeyPackage,
    signers: dict[int, Signer],
    ids: list[int],
    msg: bytes,
) -> tuple[SigningRound, list[SignatureShare]]:
    round_ = SigningRound.build(suite, public, msg, [signers[i].commit() for i in ids])
    return round_, [signers[i].sign(round_) for i in ids]


# --- round trips and properties ----------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_round_trip_and_tampering(suite: Ciphersuite) -> None:
    public, keys = _group(suite, 3, 5)
    signers = make_signers(suite, public, keys)
    msg = bytes(range(32))
    round_, shares = _sign(suite, public, signers, [1, 3, 5], msg)
    encoded = suite.encode_signature(aggregate(round_, shares))
    assert suite.verify(public.group_key, msg, encoded)
    assert not suite.verify(public.group_key, bytes(32), encoded)
    assert not suite.verify(base_mul(7), msg, encoded)
    flipped = encoded[:-1] + bytes([encoded[-1] ^ 1])
    assert not suite.verify(public.group_key, msg, flipped)
    assert not suite.verify(public.group_key, msg, encoded[:-1])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(data=st.data())
def test_any_subset_of_at_least_t_signs_any_message(data: st.DataObject) -> None:
    suite = data.draw(st.sampled_from(SUITES))
    n = data.draw(st.integers(1, 9))
    t = data.draw(st.integers(1, n))
    seed = data.draw(st.integers(0, 2**32))
    public, keys = _group(suite, t, n, seed)
    subset = sorted(data.draw(st.sets(st.integers(1, n), min_size=t, max_size=n)))
    msg = data.draw(st.binary(min_size=32, max_size=32))
    signers = make_signers(suite, public, keys)
    round_, shares = _sign(suite, public, signers, subset, msg)
    encoded = suite.encode_signature(aggregate(round_, shares))
    assert suite.verify(public.group_key, msg, encoded)
    # Any single-byte change of the signature or the message is rejected.
    pos = data.draw(st.integers(0, len(encoded) - 1))
    bit = 1 << data.draw(st.integers(0, 7))
    bad = encoded[:pos] + bytes([encoded[pos] ^ bit]) + encoded[pos + 1 :]
    assert not suite.verify(public.group_key, msg, bad)
    mpos = data.draw(st.integers(0, 31))
    assert not suite.verify(
        public.group_key, msg[:mpos] + bytes([msg[mpos] ^ bit]) + msg[mpos + 1 :], encoded
    )


def test_lagrange_interpolates_the_secret() -> None:
    public, keys = _group(MIRA_EVM, 4, 7)
    for subset in ([1, 2, 3, 4], [2, 4, 6, 7], [1, 3, 5, 6, 7]):
        lam = lagrange_coefficients(subset)
        secret = sum(lam[i] * keys[i].secret_share for i in subset) % N
        assert base_mul(secret) == public.group_key


# --- identifiable abort ----------------------------------------------------------------------


class _Cheater:
    """Wraps an honest signer and returns a share off by one."""

    def __init__(self, inner: Signer) -> None:
        self.inner = inner

    @property
    def identifier(self) -> int:
        return self.inner.identifier

    def commit(self) -> SigningCommitment:
        return self.inner.commit()

    def sign(self, round_: SigningRound) -> SignatureShare:
        share = self.inner.sign(round_)
        return SignatureShare(share.identifier, (share.z + 1) % N)


def test_bad_share_names_its_signers() -> None:
    public, keys = _group(MIRA_EVM, 3, 5)
    signers = make_signers(MIRA_EVM, public, keys)
    round_, shares = _sign(MIRA_EVM, public, signers, [1, 2, 4, 5], bytes(32))
    forged = [
        s if s.identifier not in (2, 5) else SignatureShare(s.identifier, (s.z + 3) % N)
        for s in shares
    ]
    with pytest.raises(InvalidSignatureShareError) as info:
        aggregate(round_, forged)
    assert info.value.signers == (2, 5)
    assert "2" in str(info.value) and "5" in str(info.value)
    assert all(verify_signature_share(round_, s) for s in shares)


def test_coordinator_completes_without_cheaters_with_fresh_nonces() -> None:
    public, keys = _group(MIRA_EVM, 3, 6)
    signers = make_signers(MIRA_EVM, public, keys)
    participants = [
        signers[1],
        _Cheater(signers[2]),
        signers[3],
        _Cheater(signers[4]),
        signers[5],
        signers[6],
    ]
    outcome = run_signing(MIRA_EVM, public, bytes(32), participants)
    assert outcome.excluded == (2, 4)
    assert outcome.rounds == 3  # {1,2,3} → {1,3,4} → {1,3,5}
    assert set(outcome.signers).isdisjoint({2, 4}) and len(outcome.signers) == 3
    assert MIRA_EVM.verify(public.group_key, bytes(32), outcome.encoded)
    # Honest signer 1 burned one nonce pair per round: the retries used fresh commitments.
    assert len(signers[1].log) == 3


def test_coordinator_gives_up_below_threshold() -> None:
    public, keys = _group(MIRA_EVM, 3, 4)
    signers = make_signers(MIRA_EVM, public, keys)
    participants = [signers[1], _Cheater(signers[2]), signers[3], _Cheater(signers[4])]
    with pytest.raises(TooFewParticipantsError):
        run_signing(MIRA_EVM, public, bytes(32), participants)


# --- nonces ------------------------------------------------------------------------------------


def test_nonce_is_single_use_and_logged_before_the_share() -> None:
    public, keys = _group(MIRA_EVM, 2, 3)
    log = InMemoryUsedNonceLog()
    signer = Signer(MIRA_EVM, keys[1], public, log)
    other = Signer(MIRA_EVM, keys[2], public, InMemoryUsedNonceLog())
    round_ = SigningRound.build(MIRA_EVM, public, bytes(32), [signer.commit(), other.commit()])
    mine = round_.commitment_of(1)
    assert not log.is_used(keys[1].key_id, mine.digest)
    signer.sign(round_)
    assert log.is_used(keys[1].key_id, mine.digest)
    assert len(signer.pool) == 0
    with pytest.raises(NonceReuseError):
        signer.sign(round_)
    # Same commitment, another message: still refused; the log did not grow.
    again = SigningRound.build(MIRA_EVM, public, b"\x01" * 32, round_.commitments)
    with pytest.raises(NonceReuseError):
        signer.sign(again)
    assert len(log) == 1


def test_log_refusal_burns_the_pair_and_yields_no_share() -> None:
    """A pair already in the durable log (e.g. replayed after a restart) never signs."""
    public, keys = _group(MIRA_EVM, 2, 3)
    log = InMemoryUsedNonceLog()
    signer = Signer(MIRA_EVM, keys[1], public, log)
    com = signer.commit()
    pair = signer.pool.peek(com)
    log.mark_used(keys[1].key_id, com.digest)  # recorded by an earlier incarnation
    round_ = SigningRound.build(
        MIRA_EVM,
        public,
        bytes(32),
        [com, Signer(MIRA_EVM, keys[2], public, InMemoryUsedNonceLog()).commit()],
    )
    with pytest.raises(NonceReuseError):
        signer.sign(round_)
    assert len(log) == 1
    assert len(signer.pool) == 1  # untouched: is_used is checked before taking the pair
    assert "redacted" in repr(pair)


def test_nonce_log_double_mark() -> None:
    log = InMemoryUsedNonceLog()
    log.mark_used(b"k", b"d")
    with pytest.raises(NonceReuseError):
        log.mark_used(b"k", b"d")
    log.mark_used(b"k2", b"d")  # per key


def test_nonces_are_hedged_not_message_derived() -> None:
    public, keys = _group(MIRA_EVM, 2, 3)
    signer = Signer(MIRA_EVM, keys[1], public, InMemoryUsedNonceLog())
    commitments = signer.precompute(16)
    assert len({c.digest for c in commitments}) == 16
    assert len(signer.pool) == 16


# --- bad input ---------------------------------------------------------------------------------


def test_points_not_on_curve_identity_and_wrong_lengths() -> None:
    g = Point.G.serialize()
    with pytest.raises(InvalidPointError):
        Point.deserialize(b"\x02" + (5).to_bytes(32, "big"))  # x = 5: x³+7 is not a square
    with pytest.raises(InvalidPointError):
        Point.deserialize(b"\x04" + g[1:])
    with pytest.raises(IdentityPointError):
        Point.deserialize(b"\x00")
    with pytest.raises(WrongLengthError):
        Point.deserialize(g[:-1])
    with pytest.raises(IdentityPointError):
        Point.IDENTITY.serialize()
    with pytest.raises(IdentityPointError):
        SigningCommitment(1, Point.IDENTITY, Point.G)
    with pytest.raises(WrongLengthError):
        SigningCommitment.from_bytes(bytes(97))
    with pytest.raises(WrongLengthError):
        MIRA_EVM.challenge_from_address(Point.G, bytes(31), bytes(20))
    # The identity arises from cancelling sums and multiples of N, and behaves as O.
    assert (Point.G - Point.G).is_identity
    assert (Point.G * N).is_identity
    assert Point.G + Point.IDENTITY == Point.G
    assert isinstance(InvalidPointError("x"), ValueError)


def test_scalars_out_of_range_or_zero() -> None:
    with pytest.raises(ScalarOutOfRangeError):
        deserialize_scalar(N.to_bytes(32, "big"))
    with pytest.raises(ScalarOutOfRangeError):
        deserialize_scalar(bytes(32))
    assert deserialize_scalar(bytes(32), allow_zero=True) == 0
    with pytest.raises(WrongLengthError):
        deserialize_scalar(bytes(33))
    with pytest.raises(ScalarOutOfRangeError):
        KeyPackage(1, 0, Point.G, 1)
    with pytest.raises(ScalarOutOfRangeError):
        KeyPackage(0, 5, Point.G, 1)
    with pytest.raises(ScalarOutOfRangeError):
        SigningCommitment.from_bytes(N.to_bytes(32, "big") + Point.G.serialize() * 2)


def _fixture() -> tuple[PublicKeyPackage, dict[int, Signer]]:
    public, keys = _group(MIRA_EVM, 3, 4)
    return public, make_signers(MIRA_EVM, public, keys)


def _pools(signers: dict[int, Signer]) -> dict[int, int]:
    return {i: len(s.pool) for i, s in signers.items()}


def test_duplicate_unknown_nonmember_and_too_few() -> None:
    public, signers = _fixture()
    c = {i: s.commit() for i, s in signers.items()}
    before = _pools(signers)
    with pytest.raises(DuplicateParticipantError):
        SigningRound.build(MIRA_EVM, public, bytes(32), [c[1], c[2], c[2]])
    outsider = SigningCommitment(9, Point.G, Point.G)
    with pytest.raises(NonMemberCommitmentError) as info:
        SigningRound.build(MIRA_EVM, public, bytes(32), [c[1], c[2], outsider])
    assert info.value.identifier == 9
    assert isinstance(info.value, UnknownParticipantError)
    with pytest.raises(TooFewParticipantsError):
        SigningRound.build(MIRA_EVM, public, bytes(32), [c[1], c[2]])
    with pytest.raises(WrongLengthError):
        SigningRound.build(MIRA_EVM, public, bytes(31), [c[1], c[2], c[3]])

    round_ = SigningRound.build(MIRA_EVM, public, bytes(32), [c[1], c[2], c[3]])
    with pytest.raises(UnknownParticipantError):
        signers[4].sign(round_)  # not in this round
    assert _pools(signers) == before  # nothing consumed by refused requests
    assert all(len(s.log) == 0 for s in signers.values())

    shares = [signers[i].sign(round_) for i in (1, 2, 3)]
    with pytest.raises(TooFewParticipantsError):
        aggregate(round_, shares[:2])
    with pytest.raises(DuplicateParticipantError):
        aggregate(round_, [*shares, shares[0]])
    with pytest.raises(UnknownParticipantError):
        aggregate(round_, [*shares[:2], SignatureShare(4, shares[2].z)])
    with pytest.raises(InvalidSignatureShareError) as bad:
        aggregate(round_, [*shares[:2], SignatureShare(3, N + 1)])
    assert bad.value.signers == (3,)
    assert MIRA_EVM.verify(
        public.group_key, bytes(32), MIRA_EVM.encode_signature(aggregate(round_, shares))
    )


def test_commitment_with_forged_nonce_is_refused() -> None:
    public, signers = _fixture()
    c2, c3 = signers[2].commit(), signers[3].commit()
    fake = SigningCommitment(1, base_mul(5), base_mul(6))  # not from signer 1's pool
    round_ = SigningRound.build(MIRA_EVM, public, bytes(32), [fake, c2, c3])
    with pytest.raises(UnknownParticipantError):
        signers[1].sign(round_)
    assert len(signers[1].log) == 0


def test_errors_are_crypto_errors_and_secrets_stay_out_of_repr() -> None:
    public, keys = _group(MIRA_EVM, 2, 3)
    secret = keys[1].secret_share
    text = repr(keys[1]) + str(keys[1]) + repr(make_signers(MIRA_EVM, public, keys)[1])
    assert f"{secret:x}" not in text and str(secret) not in text
    assert "redacted" in text
    assert issubclass(NonceReuseError, CryptoError)
