"""FROST threshold Schnorr signing (RFC 9591), parameterized by ciphersuite.

Roles and flow for a t-of-n group with secret s = f(0) shared as sᵢ = f(i):

1. *Commit.* Each chosen signer i draws hedged nonces (dᵢ, eᵢ) and publishes
   (Dᵢ, Eᵢ) = (dᵢ·G, eᵢ·G).
2. *Round context* (:class:`SigningRound`), computed identically by everyone from public
   data — the group key PK, the message m and the sorted commitment list B:
       ρᵢ = H1(PK ‖ H4(m) ‖ H5(encode(B)) ‖ i)           binding factor of signer i
       R  = Σ (Dᵢ + ρᵢ·Eᵢ)                               group commitment
       c  = H2(R, PK, m)                                   the suite's challenge
       λᵢ = Π_{j≠i} j / (j − i)                             Lagrange coefficient at 0
   In one process the context is built once and shared by all signers (they would all
   compute the same value); a networked signer builds its own from the coordinator's list.
3. *Sign.* zᵢ = dᵢ + ρᵢ·eᵢ + λᵢ·sᵢ·c, after durably marking (Dᵢ, Eᵢ) used.
4. *Aggregate with identifiable abort.* Every share is checked against the signer's public
   verification share Yᵢ = sᵢ·G:
       zᵢ·G == Dᵢ + ρᵢ·Eᵢ + (c·λᵢ)·Yᵢ
   and z = Σ zᵢ. Summing the equations, z·G = R + c·Σ λᵢ·Yᵢ = R + c·PK: a valid Schnorr
   signature (R, z). A bad share raises :class:`InvalidSignatureShareError` naming every
   bad signer; :func:`run_signing` then restarts with fresh commitments from the honest
   signers (the old nonces are burned: ρ and λ depend on the signer set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from oracle.crypto.errors import (
    CryptoError,
    DegenerateRoundError,
    DuplicateParticipantError,
    IdentityPointError,
    InvalidSignatureError,
    InvalidSignatureShareError,
    NonceReuseError,
    NonMemberCommitmentError,
    TooFewParticipantsError,
    UnknownParticipantError,
)
from oracle.crypto.group import (
    N,
    Point,
    base_mul,
    check_scalar,
    lagrange_coefficients,
    point_sum,
    serialize_scalar,
)
from oracle.crypto.nonces import (
    InMemoryUsedNonceLog,
    NoncePool,
    SigningCommitment,
    SigningNonces,
    UsedNonceLog,
)
from oracle.crypto.suites import Ciphersuite, Signature


def derive_key_id(group_key: Point, identifier: int) -> bytes:
    """A stable 32-byte name for participant ``identifier``'s share of ``group_key``."""
    return hashlib.sha256(
        b"MIRA-key-id-v1" + group_key.serialize() + serialize_scalar(identifier)
    ).digest()


@dataclass(frozen=True)
class PublicKeyPackage:
    """The public output of key generation: PK, every Yᵢ = sᵢ·G, and the threshold t."""

    group_key: Point
    verifying_shares: Mapping[int, Point]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.verifying_shares)
        if not 1 <= self.threshold <= n:
            raise TooFewParticipantsError("group members", self.threshold, n)
        for identifier, share in self.verifying_shares.items():
            check_scalar(identifier, what="participant identifier")
            if share.is_identity:
                raise IdentityPointError(f"verification share of {identifier} is the identity")
        if self.group_key.is_identity:
            raise IdentityPointError("the group public key is the identity")

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.verifying_shares))


class KeyPackage:
    """One participant's secret share sᵢ with its public context. The repr is redacted."""

    __slots__ = ("_secret_share", "group_key", "identifier", "threshold", "verifying_share")

    def __init__(
        self, identifier: int, secret_share: int, group_key: Point, threshold: int
    ) -> None:
        check_scalar(identifier, what="participant identifier")
        check_scalar(secret_share, what="secret share")
        self.identifier = identifier
        self._secret_share = secret_share
        self.verifying_share = base_mul(secret_share)
        self.group_key = group_key
        self.threshold = threshold

    @property
    def secret_share(self) -> int:
        return self._secret_share

    @property
    def key_id(self) -> bytes:
        return derive_key_id(self.group_key, self.identifier)

    def __repr__(self) -> str:
        return (
            f"KeyPackage(identifier={self.identifier}, secret_share=<redacted>, "
            f"group_key={self.group_key.serialize().hex()}, threshold={self.threshold})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class SignatureShare:
    """Signer ``identifier``'s response zᵢ."""

    identifier: int
    z: int


def encode_group_commitment_list(commitments: Sequence[SigningCommitment]) -> bytes:
    """RFC 9591 §4.3: Σ SerializeScalar(i) ‖ SerializeElement(Dᵢ) ‖ SerializeElement(Eᵢ)."""
    return b"".join(c.to_bytes() for c in commitments)


@dataclass(frozen=True, eq=False)
class SigningRound:
    """Everything about one signing round that follows from public data; build once."""

    suite: Ciphersuite
    public: PublicKeyPackage
    message: bytes
    commitments: tuple[SigningCommitment, ...]
    binding_factor_inputs: Mapping[int, bytes]
    binding_factors: Mapping[int, int]
    binding_terms: Mapping[int, Point] = field(repr=False)  # ρᵢ·Eᵢ, reused by share checks
    group_commitment: Point
    challenge: int
    lagrange: Mapping[int, int]

    @classmethod
    def build(
        cls,
        suite: Ciphersuite,
        public: PublicKeyPackage,
        message: bytes,
        commitments: Iterable[SigningCommitment],
    ) -> SigningRound:
        """Validate the commitment list (RFC 9591 §5.2) and derive ρ, R, c and λ."""
        suite.check_message(message)
        by_id: dict[int, SigningCommitment] = {}
        for com in commitments:
            if com.identifier in by_id:
                raise DuplicateParticipantError(com.identifier)
            if com.identifier not in public.verifying_shares:
                raise NonMemberCommitmentError(com.identifier, "signing commitment")
            by_id[com.identifier] = com
        if len(by_id) < public.threshold:
            raise TooFewParticipantsError("signing commitments", public.threshold, len(by_id))
        ordered = tuple(by_id[i] for i in sorted(by_id))

        # Binding factors (RFC 9591 §4.4): the prefix hashes the whole commitment list once,
        # so every ρᵢ is one H1 over 33 + 32 + 32 + 32 bytes.
        prefix = (
            public.group_key.serialize()
            + suite.H4(message)
            + suite.H5(encode_group_commitment_list(ordered))
        )
        inputs = {c.identifier: prefix + serialize_scalar(c.identifier) for c in ordered}
        rho = {i: suite.H1(data) for i, data in inputs.items()}

        # R = Σ Dᵢ + Σ ρᵢ·Eᵢ (RFC 9591 §4.5) in one libsecp256k1 sum.
        terms = {c.identifier: c.binding * rho[c.identifier] for c in ordered}
        R = point_sum([c.hiding for c in ordered] + list(terms.values()))
        if R.is_identity:
            raise DegenerateRoundError("group commitment is the identity; retry with fresh nonces")
        c = suite.challenge(R, public.group_key, message)
        return cls(
            suite=suite,
            public=public,
            message=message,
            commitments=ordered,
            binding_factor_inputs=inputs,
            binding_factors=rho,
            binding_terms=terms,
            group_commitment=R,
            challenge=c,
            lagrange=lagrange_coefficients(list(by_id)),
        )

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(c.identifier for c in self.commitments)

    def commitment_of(self, identifier: int) -> SigningCommitment:
        for com in self.commitments:
            if com.identifier == identifier:
                return com
        raise UnknownParticipantError(identifier, "not a signer of this round")


def compute_signature_share(
    round_: SigningRound, identifier: int, secret_share: int, hiding: int, binding: int
) -> int:
    """zᵢ = dᵢ + eᵢ·ρᵢ + λᵢ·sᵢ·c mod N (RFC 9591 §5.2)."""
    rho = round_.binding_factors[identifier]
    lam = round_.lagrange[identifier]
    return (hiding + binding * rho + lam * secret_share * round_.challenge) % N


def verify_signature_share(round_: SigningRound, share: SignatureShare) -> bool:
    """zᵢ·G == Dᵢ + ρᵢ·Eᵢ + (c·λᵢ)·Yᵢ (RFC 9591 §5.4)."""
    i = share.identifier
    if not 0 <= share.z < N or i not in round_.binding_terms:
        return False
    com = round_.commitment_of(i)
    y_i = round_.public.verifying_shares[i]
    expected = point_sum(
        (com.hiding, round_.binding_terms[i], y_i * (round_.challenge * round_.lagrange[i]))
    )
    return base_mul(share.z) == expected


def aggregate(round_: SigningRound, shares: Iterable[SignatureShare]) -> Signature:
    """Verify every share, then z = Σ zᵢ; raise naming every signer whose share is bad."""
    by_id: dict[int, SignatureShare] = {}
    for share in shares:
        if share.identifier in by_id:
            raise DuplicateParticipantError(share.identifier)
        if share.identifier not in round_.binding_factors:
            raise UnknownParticipantError(share.identifier, "signature share for this round")
        by_id[share.identifier] = share
    if len(by_id) != len(round_.commitments):
        # λ was computed for the committed set: every committed signer must answer.
        raise TooFewParticipantsError("signature shares", len(round_.commitments), len(by_id))
    bad = [i for i, share in by_id.items() if not verify_signature_share(round_, share)]
    if bad:
        raise InvalidSignatureShareError(bad)
    signature = Signature(round_.group_commitment, sum(s.z for s in by_id.values()) % N)
    # All shares verified, so this holds unless the suite refuses a degenerate z = 0.
    if not round_.suite.verify(
        round_.public.group_key, round_.message, round_.suite.encode_signature(signature)
    ):
        raise InvalidSignatureError("aggregate signature does not verify")
    return signature


class Signer:
    """A participant holding its :class:`KeyPackage`, a nonce pool and the used-nonce log."""

    def __init__(
        self,
        suite: Ciphersuite,
        key: KeyPackage,
        public: PublicKeyPackage,
        log: UsedNonceLog,
    ) -> None:
        if key.group_key != public.group_key:
            raise UnknownParticipantError(key.identifier, "key package is for another group")
        if public.verifying_shares.get(key.identifier) != key.verifying_share:
            raise UnknownParticipantError(key.identifier, "verification share mismatch")
        self.suite = suite
        self.key = key
        self.public = public
        self.log = log
        self.pool = NoncePool(suite, key.identifier, key.secret_share)

    @property
    def identifier(self) -> int:
        return self.key.identifier

    def precompute(self, count: int) -> list[SigningCommitment]:
        """Generate a batch of nonce pairs ahead of time; return their commitments."""
        return self.pool.generate(count)

    def commit(self) -> SigningCommitment:
        return self.pool.generate(1)[0]

    def sign(self, round_: SigningRound) -> SignatureShare:
        """Produce zᵢ for ``round_``; the nonce pair is logged as used before zᵢ exists.

        Nothing changes on invalid input: the pair is only taken once the round is known
        to be for this key and to contain this signer's unused commitment.
        """
        if round_.public.group_key != self.key.group_key:
            raise UnknownParticipantError(self.identifier, "round is for another group key")
        mine = round_.commitment_of(self.identifier)
        if self.log.is_used(self.key.key_id, mine.digest):
            raise NonceReuseError(self.key.key_id, mine.digest)
        nonces: SigningNonces = self.pool.take(mine)
        try:
            # Durable before the share exists: a crash from here on burns the pair.
            self.log.mark_used(self.key.key_id, mine.digest)
            d, e = nonces.secrets()
            z = compute_signature_share(round_, self.identifier, self.key.secret_share, d, e)
        finally:
            nonces.erase()
        return SignatureShare(self.identifier, z)

    def __repr__(self) -> str:
        return f"Signer(identifier={self.identifier}, nonces={len(self.pool)})"


class SigningParticipant(Protocol):
    """What a coordinator needs from a signer (in process, or a network proxy)."""

    @property
    def identifier(self) -> int: ...

    def commit(self) -> SigningCommitment: ...

    def sign(self, round_: SigningRound) -> SignatureShare: ...


@dataclass(frozen=True)
class SigningOutcome:
    signature: Signature
    encoded: bytes
    signers: tuple[int, ...]
    excluded: tuple[int, ...]
    rounds: int


def run_signing(
    suite: Ciphersuite,
    public: PublicKeyPackage,
    message: bytes,
    participants: Sequence[SigningParticipant],
    *,
    signer_count: int | None = None,
) -> SigningOutcome:
    """Coordinate rounds until a signature verifies, excluding identified cheaters.

    Each round asks ``signer_count`` (default t) not-yet-excluded participants for *fresh*
    commitments: the old ones cannot be reused, since ρ and λ depend on the signer set and
    honest signers have already burned those nonces. Ends when a round aggregates, or
    raises :class:`TooFewParticipantsError` once fewer than t honest signers remain.
    """
    available: dict[int, SigningParticipant] = {}
    for p in participants:
        if p.identifier in available:
            raise DuplicateParticipantError(p.identifier)
        if p.identifier not in public.verifying_shares:
            raise UnknownParticipantError(p.identifier, "signing participant")
        available[p.identifier] = p
    want = max(signer_count or public.threshold, public.threshold)
    excluded: set[int] = set()
    rounds = 0
    while True:
        honest = [i for i in sorted(available) if i not in excluded]
        if len(honest) < public.threshold:
            raise TooFewParticipantsError("honest signers", public.threshold, len(honest))
        chosen = honest[:want]
        round_ = SigningRound.build(suite, public, message, [available[i].commit() for i in chosen])
        shares = [available[i].sign(round_) for i in chosen]
        rounds += 1
        try:
            signature = aggregate(round_, shares)
        except InvalidSignatureShareError as exc:
            excluded.update(exc.signers)
            continue
        return SigningOutcome(
            signature=signature,
            encoded=suite.encode_signature(signature),
            signers=tuple(chosen),
            excluded=tuple(sorted(excluded)),
            rounds=rounds,
        )


def make_signers(
    suite: Ciphersuite,
    public: PublicKeyPackage,
    keys: Mapping[int, KeyPackage],
    log_factory: Callable[[], UsedNonceLog] = InMemoryUsedNonceLog,
) -> dict[int, Signer]:
    """In-process signers for ``keys`` (tests, benchmarks), each with its own nonce log."""
    return {i: Signer(suite, k, public, log_factory()) for i, k in keys.items()}


__all__ = [
    "CryptoError",
    "KeyPackage",
    "PublicKeyPackage",
    "SignatureShare",
    "Signer",
    "SigningOutcome",
    "SigningParticipant",
    "SigningRound",
    "aggregate",
    "compute_signature_share",
    "derive_key_id",
    "encode_group_commitment_list",
    "make_signers",
    "run_signing",
    "verify_signature_share",
]
