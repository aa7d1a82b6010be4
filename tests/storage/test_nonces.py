from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from oracle.crypto.errors import NonceReuseError
from oracle.storage import SqlUsedNonceLog


def test_mark_then_is_used(engine: Engine) -> None:
    log = SqlUsedNonceLog(engine)
    key, digest = b"\x01" * 32, b"\xaa" * 32
    assert not log.is_used(key, digest)
    log.mark_used(key, digest)
    assert log.is_used(key, digest)
    # another key with the same commitment is a different pair
    assert not log.is_used(b"\x02" * 32, digest)
    log.mark_used(b"\x02" * 32, digest)


def test_second_mark_raises_and_keeps_the_first(engine: Engine) -> None:
    log = SqlUsedNonceLog(engine)
    key, digest = b"k" * 33, b"d" * 32
    log.mark_used(key, digest)
    with pytest.raises(NonceReuseError) as info:
        log.mark_used(key, digest)
    assert info.value.key_id == key
    assert info.value.commitment_digest == digest
    assert log.is_used(key, digest)


def test_durable_across_a_new_engine(backend, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    SqlUsedNonceLog(engine).mark_used(b"key", b"digest")
    engine.dispose()
    again = SqlUsedNonceLog(backend.engine())
    assert again.is_used(b"key", b"digest")
    with pytest.raises(NonceReuseError):
        again.mark_used(b"key", b"digest")


def test_concurrent_marks_exactly_one_wins(engine: Engine) -> None:
    log = SqlUsedNonceLog(engine)
    wins: list[int] = []
    losses: list[int] = []
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            log.mark_used(b"same-key", b"same-digest")
            wins.append(i)
        except NonceReuseError:
            losses.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1
    assert len(losses) == 7


@pytest.mark.parametrize(
    ("key", "digest", "error"),
    [("str", b"d", TypeError), (b"", b"d", ValueError), (b"k", b"x" * 65, ValueError)],
)
def test_bad_arguments_are_refused(
    engine: Engine, key: object, digest: object, error: type
) -> None:
    log = SqlUsedNonceLog(engine)
    with pytest.raises(error):
        log.mark_used(key, digest)  # type: ignore[arg-type]


def test_frost_signers_log_every_nonce_in_the_database(engine: Engine) -> None:
    """The real signer over the SQL log: each share's nonce is durably marked, and a second
    share from the same commitment is refused even by a fresh signer (a restarted node)."""
    from oracle.crypto.frost import Signer, SigningRound, aggregate, make_signers
    from oracle.crypto.suites import MIRA_EVM
    from tests.harness.dealer import trusted_dealer_keygen_for_tests

    public, keys = trusted_dealer_keygen_for_tests(MIRA_EVM, 2, 3)
    signers = make_signers(MIRA_EVM, public, keys, log_factory=lambda: SqlUsedNonceLog(engine))
    chosen = [signers[1], signers[3]]
    message = b"\x07" * 32
    round_ = SigningRound.build(MIRA_EVM, public, message, [s.commit() for s in chosen])
    signature = aggregate(round_, [s.sign(round_) for s in chosen])
    assert MIRA_EVM.verify(public.group_key, message, MIRA_EVM.encode_signature(signature))

    log = SqlUsedNonceLog(engine)
    for s in chosen:
        assert log.is_used(s.key.key_id, round_.commitment_of(s.identifier).digest)
    with pytest.raises(NonceReuseError):
        chosen[0].sign(round_)
    restarted = Signer(MIRA_EVM, keys[1], public, SqlUsedNonceLog(engine))
    with pytest.raises(NonceReuseError):
        restarted.sign(round_)
