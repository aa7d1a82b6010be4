"""Trusted-dealer key splitting (RFC 9591 Appendix C): FOR TESTS ONLY.

A dealer that knows the group secret is exactly what Mira's DKG avoids; production keys
come from :mod:`oracle.crypto.dkg`. This module exists so tests can pin RFC vectors and
build large groups quickly. The function name says so at every call site.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from oracle.crypto.errors import ScalarOutOfRangeError, TooFewParticipantsError
from oracle.crypto.frost import KeyPackage, PublicKeyPackage
from oracle.crypto.group import N, base_mul, check_scalar, evaluate_polynomial
from oracle.crypto.suites import Ciphersuite


def _random_scalar() -> int:
    return secrets.randbelow(N - 1) + 1


def trusted_dealer_keygen_for_tests(
    suite: Ciphersuite,
    threshold: int,
    max_participants: int,
    *,
    secret: int | None = None,
    coefficients: Sequence[int] | None = None,
    random_scalar: Callable[[], int] = _random_scalar,
) -> tuple[PublicKeyPackage, dict[int, KeyPackage]]:
    """Shamir-split a group secret: f(x) = s + a₁x + … + a_{t−1}x^{t−1}, sᵢ = f(i).

    ``secret``/``coefficients`` pin the polynomial (RFC vectors); otherwise it is random
    and re-drawn until the suite accepts the group key (the EVM suite needs Px < N).
    ``random_scalar`` lets tests make the split deterministic.
    """
    if not 1 <= threshold <= max_participants:
        raise TooFewParticipantsError("participants", threshold, max_participants)
    while True:
        s = check_scalar(secret, what="group secret") if secret is not None else random_scalar()
        coeffs = (
            [s, *coefficients]
            if coefficients is not None
            else [s] + [random_scalar() for _ in range(threshold - 1)]
        )
        if len(coeffs) != threshold:
            raise TooFewParticipantsError("polynomial coefficients", threshold, len(coeffs))
        group_key = base_mul(s)
        try:
            suite.check_group_key(group_key)
        except ScalarOutOfRangeError:
            if secret is not None:
                raise
            continue
        keys = {
            i: KeyPackage(i, evaluate_polynomial(coeffs, i), group_key, threshold)
            for i in range(1, max_participants + 1)
        }
        public = PublicKeyPackage(
            group_key, {i: k.verifying_share for i, k in keys.items()}, threshold
        )
        return public, keys
