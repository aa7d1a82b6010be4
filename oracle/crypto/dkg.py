"""Pedersen distributed key generation with proofs of knowledge (FROST paper, KeyGen).

No party ever knows the group secret s = Σ_{l∈Q} a_{l,0}. Each participant l is a dealer
of a random polynomial f_l(x) = a_{l,0} + a_{l,1}x + … + a_{l,t−1}x^{t−1}.

Round 1 (broadcast). Dealer l publishes
    * coefficient commitments φ_{l,k} = a_{l,k}·G, k = 0…t−1;
    * a Schnorr proof of knowledge of a_{l,0}, bound to its identifier and the session:
          R = k·G,  c = H("dkg-pok", l ‖ session ‖ φ_{l,0} ‖ R),  μ = k + a_{l,0}·c.
      Everyone checks μ·G − c·φ_{l,0} == R. The proof stops a rogue-key attack (choosing
      φ_{l,0} as a function of the others' to bias or control the group key).
Round 2 (private). Dealer l sends f_l(j) to every j, encrypted and signed
    (:mod:`oracle.crypto.envelope`). Recipient j checks
          f_l(j)·G == Σ_k jᵏ·φ_{l,k}        (Feldman verification)
    and broadcasts a *complaint* against l if the check fails, or the envelope is missing,
    tampered or unsigned.
Justify. Complaints are broadcast. An accused dealer l answers each complaint of j with
    f_l(j) in clear; everyone checks it against l's commitments (Feldman). A correct
    answer voids the complaint (j takes the revealed share), so a member cannot exclude
    an honest dealer by lying; a missing or wrong answer disqualifies l. Revealing
    f_l(j) costs j nothing: sⱼ also sums j's own f_j(j), which is never revealed.
Finalize. Every dealer with an unanswered complaint, and every dealer whose proof failed
    in round 1, is disqualified. Q = the remaining participants. Then
          sᵢ  = Σ_{l∈Q} f_l(i)                       i's secret share
          PK  = Σ_{l∈Q} φ_{l,0}                      the group key
          Yⱼ  = Σ_k jᵏ·Φ_k, Φ_k = Σ_{l∈Q} φ_{l,k}   every member's verification share
    If the suite cannot use PK (Mira's EVM suite needs Px < N) the whole DKG re-runs with a
    new session id (:class:`GroupKeyUnusableError`; probability ~2⁻¹²⁸).

The participants are message-passing state machines: ``round1()`` → broadcast,
``receive_round1`` / ``round2()`` → private messages, ``receive_round2`` → complaints,
``justify(complaints)`` → the accused dealer's answers, ``finalize(complaints,
justifications)`` → the key. :func:`run_dkg_in_one_process` drives all of them in one process.

Trust model, stated plainly: answered complaints mean a malicious member cannot exclude
an honest dealer that is online to answer. Because envelopes are signed by the dealer, a
complaint can also carry its envelope as evidence for an audit.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from oracle.crypto.envelope import EncryptedShare, IdentityKey, open_share, seal_share
from oracle.crypto.errors import (
    CryptoError,
    DKGError,
    DuplicateParticipantError,
    InvalidDealerShareError,
    InvalidProofOfKnowledgeError,
    NonMemberCommitmentError,
    ScalarOutOfRangeError,
    TooFewParticipantsError,
    UndecryptableShareError,
    UnknownParticipantError,
)
from oracle.crypto.frost import KeyPackage, PublicKeyPackage
from oracle.crypto.group import (
    SCALAR_LEN,
    N,
    Point,
    base_mul,
    check_scalar,
    deserialize_scalar,
    evaluate_commitment,
    evaluate_polynomial,
    point_sum,
    serialize_scalar,
)
from oracle.crypto.suites import Ciphersuite


def max_faulty(n: int) -> int:
    """f: the most Byzantine members a committee of n tolerates (n ≥ 3f + 1)."""
    return (n - 1) // 3


def default_threshold(n: int) -> int:
    """t = 2f + 1 with f = :func:`max_faulty` (n): the signing threshold a committee of n
    gets unless told otherwise, and the round's observation quorum. With at most f liars
    among any 2f + 1 members, the honest ones (≥ f + 1) are a majority of them, so a
    median of 2f + 1 values lies between two honest values; and f members alone (or the
    f that withhold) can neither sign nor stop a signature."""
    return 2 * max_faulty(n) + 1


def agreement_quorum(n: int, threshold: int) -> int:
    """t + f (at most n): members holding one key of whom at least t are honest, whatever
    the f others do. The network DKG goes on without silent members only with this many,
    and the owner activates only a key this many members proposed: then the epoch can
    sign even if the f withhold their shares."""
    return min(n, threshold + max_faulty(n))


class GroupKeyUnusableError(DKGError):
    """The DKG produced a group key the suite cannot use (EVM: Px ≥ N): re-run it."""


class ParticipantDisqualifiedError(DKGError):
    """This participant was disqualified as a dealer: it gets no key share."""


@dataclass(frozen=True)
class DKGConfig:
    """What every participant agrees on before the DKG starts."""

    suite: Ciphersuite
    session_id: bytes
    threshold: int
    identity_keys: Mapping[int, bytes]  # participant id → 33-byte identity public key

    def __post_init__(self) -> None:
        n = len(self.identity_keys)
        if not 1 <= self.threshold <= n:
            raise TooFewParticipantsError("DKG participants", self.threshold, n)
        for i in self.identity_keys:
            check_scalar(i, what="participant identifier")
        if len(set(self.identity_keys.values())) != n:
            raise DKGError("two participants share one identity key")

    @property
    def participants(self) -> tuple[int, ...]:
        return tuple(sorted(self.identity_keys))


@dataclass(frozen=True)
class Round1Message:
    sender: int
    commitments: tuple[Point, ...]
    proof_R: Point
    proof_mu: int


@dataclass(frozen=True)
class Complaint:
    complainer: int
    dealer: int
    reason: str
    evidence: EncryptedShare | None = None
    # False for a fault no revealed share can clear (e.g. the dealer equivocated in round 1)
    answerable: bool = True


@dataclass(frozen=True)
class Justification:
    """Dealer ``dealer``'s answer to ``accuser``'s complaint: f_dealer(accuser) in clear."""

    dealer: int
    accuser: int
    share: int


@dataclass(frozen=True)
class DKGOutput:
    key: KeyPackage
    public: PublicKeyPackage
    disqualified: Mapping[int, str]  # dealer → why


class _Phase(Enum):
    START = 0
    ROUND1_SENT = 1
    ROUND1_RECEIVED = 2
    ROUND2_SENT = 3
    ROUND2_RECEIVED = 4
    DONE = 5


def _pok_challenge(
    suite: Ciphersuite, dealer: int, session_id: bytes, phi0: Point, R: Point
) -> int:
    return suite.hash_to_scalar(
        b"dkg-pok",
        serialize_scalar(dealer) + session_id + phi0.serialize() + R.serialize(),
    )


def _random_scalar() -> int:
    return secrets.randbelow(N - 1) + 1


def _share_matches(share: int, phis: Sequence[Point], recipient: int) -> bool:
    """Feldman: f(j)·G == Σ_k jᵏ·φ_k."""
    return 0 <= share < N and base_mul(share) == evaluate_commitment(phis, recipient)


class DKGParticipant:
    """One participant's state machine. Holds secrets: the repr is redacted."""

    def __init__(self, config: DKGConfig, identifier: int, identity: IdentityKey) -> None:
        if identifier not in config.identity_keys:
            raise UnknownParticipantError(identifier, "DKG participant")
        if config.identity_keys[identifier] != identity.public_bytes:
            raise DKGError(f"participant {identifier}: identity key does not match the config")
        self.config = config
        self.identifier = identifier
        self._identity = identity
        self._coefficients: list[int] | None = None
        self._phase = _Phase.START
        self.commitments: dict[int, tuple[Point, ...]] = {}
        self.disqualified: dict[int, str] = {}
        self._received: dict[int, int] = {}

    def _expect(self, phase: _Phase, action: str) -> None:
        if self._phase is not phase:
            raise DKGError(
                f"participant {self.identifier}: cannot {action} in phase {self._phase.name}"
            )

    # --- round 1 ---------------------------------------------------------------------------

    def round1(self) -> Round1Message:
        """Draw f_i, commit to its coefficients, prove knowledge of a_{i,0}."""
        self._expect(_Phase.START, "start round 1")
        t = self.config.threshold
        self._coefficients = [_random_scalar() for _ in range(t)]
        phis = tuple(base_mul(a) for a in self._coefficients)
        k = _random_scalar()
        R = base_mul(k)
        c = _pok_challenge(self.config.suite, self.identifier, self.config.session_id, phis[0], R)
        mu = (k + self._coefficients[0] * c) % N
        self._phase = _Phase.ROUND1_SENT
        return Round1Message(self.identifier, phis, R, mu)

    def receive_round1(self, messages: Iterable[Round1Message]) -> None:
        """Check every dealer's commitments and proof; disqualify the ones that fail.

        A batch with a non-member or a duplicate sender is refused as a whole, before any
        state changes.
        """
        self._expect(_Phase.ROUND1_SENT, "receive round 1")
        by_sender: dict[int, Round1Message] = {}
        for msg in messages:
            if msg.sender not in self.config.identity_keys:
                raise NonMemberCommitmentError(msg.sender, "DKG round 1")
            if msg.sender in by_sender:
                raise DuplicateParticipantError(msg.sender)
            by_sender[msg.sender] = msg
        disqualified: dict[int, str] = {}
        commitments: dict[int, tuple[Point, ...]] = {}
        for dealer in self.config.participants:
            sent = by_sender.get(dealer)
            if sent is None:
                disqualified[dealer] = "no round-1 message"
                continue
            try:
                self._check_round1(sent)
            except CryptoError as exc:
                disqualified[dealer] = str(exc)
                continue
            commitments[dealer] = sent.commitments
        self.disqualified.update(disqualified)
        self.commitments = commitments
        self._phase = _Phase.ROUND1_RECEIVED

    def _check_round1(self, msg: Round1Message) -> None:
        if len(msg.commitments) != self.config.threshold:
            raise TooFewParticipantsError(
                f"dealer {msg.sender}: coefficient commitments",
                self.config.threshold,
                len(msg.commitments),
            )
        if any(p.is_identity for p in msg.commitments) or msg.proof_R.is_identity:
            raise InvalidProofOfKnowledgeError(msg.sender)
        if not 0 <= msg.proof_mu < N:
            raise InvalidProofOfKnowledgeError(msg.sender)
        c = _pok_challenge(
            self.config.suite, msg.sender, self.config.session_id, msg.commitments[0], msg.proof_R
        )
        # μ·G − c·φ₀ = (k + a₀c)·G − c·a₀·G = k·G = R.
        if base_mul(msg.proof_mu) - msg.commitments[0] * c != msg.proof_R:
            raise InvalidProofOfKnowledgeError(msg.sender)

    # --- round 2 ---------------------------------------------------------------------------

    def _share_for(self, recipient: int) -> int:
        assert self._coefficients is not None
        return evaluate_polynomial(self._coefficients, recipient)

    def round2(self) -> list[EncryptedShare]:
        """f_i(j) for every qualified j ≠ i, sealed to j's identity key; keeps f_i(i)."""
        self._expect(_Phase.ROUND1_RECEIVED, "start round 2")
        if self.identifier in self.disqualified:
            raise DKGError(f"participant {self.identifier} was disqualified in round 1")
        out = []
        for j in self.commitments:
            share = self._share_for(j)
            if j == self.identifier:
                self._received[j] = share
                continue
            out.append(
                seal_share(
                    self.config.session_id,
                    self.identifier,
                    self._identity,
                    j,
                    self.config.identity_keys[j],
                    serialize_scalar(share),
                )
            )
        self._phase = _Phase.ROUND2_SENT
        return out

    def receive_round2(self, envelopes: Iterable[EncryptedShare]) -> list[Complaint]:
        """Decrypt and Feldman-check every share addressed here; complain about bad dealers."""
        self._expect(_Phase.ROUND2_SENT, "receive round 2")
        mine: dict[int, EncryptedShare] = {}
        for env in envelopes:
            if env.recipient != self.identifier:
                continue  # a broadcast medium delivers others' envelopes too
            if env.sender not in self.config.identity_keys:
                raise NonMemberCommitmentError(env.sender, "DKG round 2")
            if env.sender in mine:
                raise DuplicateParticipantError(env.sender)
            mine[env.sender] = env
        complaints: list[Complaint] = []
        for dealer, phis in self.commitments.items():
            if dealer == self.identifier:
                continue
            received = mine.get(dealer)
            if received is None:
                complaints.append(Complaint(self.identifier, dealer, "no share received"))
                continue
            try:
                share = self._open_and_check(received, phis)
            except CryptoError as exc:
                complaints.append(Complaint(self.identifier, dealer, str(exc), received))
                continue
            self._received[dealer] = share
        self._phase = _Phase.ROUND2_RECEIVED
        return complaints

    def _open_and_check(self, env: EncryptedShare, phis: Sequence[Point]) -> int:
        plaintext = open_share(
            self.config.session_id,
            env,
            self.identifier,
            self._identity,
            self.config.identity_keys[env.sender],
        )
        if len(plaintext) != SCALAR_LEN:
            raise UndecryptableShareError(env.sender, self.identifier, "share is not 32 bytes")
        try:
            share = deserialize_scalar(plaintext, allow_zero=True, what="DKG share")
        except ScalarOutOfRangeError as exc:
            raise InvalidDealerShareError(env.sender, self.identifier) from exc
        # Feldman: f_l(i)·G must equal Σ_k iᵏ·φ_{l,k}, the committed polynomial at i.
        if base_mul(share) != evaluate_commitment(phis, self.identifier):
            raise InvalidDealerShareError(env.sender, self.identifier)
        return share

    # --- finalize --------------------------------------------------------------------------

    def justify(self, complaints: Iterable[Complaint]) -> list[Justification]:
        """Answer every complaint against this dealer with the accuser's share in clear."""
        self._expect(_Phase.ROUND2_RECEIVED, "justify")
        accusers = sorted(
            {c.complainer for c in complaints if c.dealer == self.identifier and c.answerable}
        )
        return [
            Justification(self.identifier, j, self._share_for(j))
            for j in accusers
            if j in self.config.identity_keys
        ]

    def finalize(
        self, complaints: Iterable[Complaint], justifications: Iterable[Justification] = ()
    ) -> DKGOutput:
        """Disqualify every dealer with an unanswered complaint, then derive sᵢ, PK and
        every Yⱼ over Q."""
        self._expect(_Phase.ROUND2_RECEIVED, "finalize")
        complaints = list(complaints)
        for c in complaints:
            if c.complainer not in self.config.identity_keys:
                raise UnknownParticipantError(c.complainer, "complaint")
        answers: dict[tuple[int, int], int] = {}
        for a in justifications:
            answers.setdefault((a.dealer, a.accuser), a.share)  # one answer per complaint
        for c in complaints:
            phis = self.commitments.get(c.dealer)
            if phis is None:
                continue  # already out after round 1
            share = answers.get((c.dealer, c.complainer))
            if c.answerable and share is not None and _share_matches(share, phis, c.complainer):
                if c.complainer == self.identifier:
                    self._received[c.dealer] = share  # the dealer's public answer
                continue
            why = "" if c.answerable else " (cannot be answered)"
            if c.answerable:
                why = " (no answer)" if share is None else " (answered with a wrong share)"
            self.disqualified.setdefault(c.dealer, f"complaint by {c.complainer}: {c.reason}{why}")
        qualified = [d for d in sorted(self.commitments) if d not in self.disqualified]
        if self.identifier in self.disqualified:
            raise ParticipantDisqualifiedError(
                f"participant {self.identifier} was disqualified: "
                f"{self.disqualified[self.identifier]}"
            )
        t = self.config.threshold
        if len(qualified) < t:
            raise TooFewParticipantsError("qualified DKG participants", t, len(qualified))
        missing = [d for d in qualified if d not in self._received]
        if missing:  # cannot happen: a missing share produced our own complaint
            raise DKGError(f"no valid share from qualified dealers {missing}")

        secret_share = sum(self._received[d] for d in qualified) % N
        # Φ_k = Σ_{l∈Q} φ_{l,k}: the commitments to the summed polynomial F = Σ f_l.
        summed = [point_sum(self.commitments[d][k] for d in qualified) for k in range(t)]
        group_key = summed[0]
        if group_key.is_identity:
            raise GroupKeyUnusableError("group key is the identity; re-run the DKG")
        try:
            self.config.suite.check_group_key(group_key)
        except ScalarOutOfRangeError as exc:
            raise GroupKeyUnusableError(f"{exc}; re-run the DKG with a new session") from exc
        verifying = {j: evaluate_commitment(summed, j) for j in qualified}
        if secret_share == 0 or base_mul(secret_share) != verifying[self.identifier]:
            raise DKGError(f"participant {self.identifier}: share does not match F's commitments")
        key = KeyPackage(self.identifier, secret_share, group_key, t)
        public = PublicKeyPackage(group_key, verifying, t)
        self._coefficients = None  # erase: the polynomial is never needed again
        self._received.clear()
        self._phase = _Phase.DONE
        return DKGOutput(key, public, dict(self.disqualified))

    def __repr__(self) -> str:
        return (
            f"DKGParticipant(identifier={self.identifier}, phase={self._phase.name}, "
            "secrets=<redacted>)"
        )


@dataclass(frozen=True)
class DKGResult:
    """The outcome of :func:`run_dkg_in_one_process`: one public package, every member's key."""

    public: PublicKeyPackage
    keys: dict[int, KeyPackage]
    disqualified: Mapping[int, str]
    complaints: tuple[Complaint, ...]
    justifications: tuple[Justification, ...]
    attempts: int


def run_dkg_in_one_process(
    suite: Ciphersuite,
    threshold: int,
    participants: int | Sequence[DKGParticipant],
    *,
    identities: Mapping[int, IdentityKey] | None = None,
    session_id: bytes | None = None,
    max_attempts: int = 8,
) -> DKGResult:
    """Run the whole DKG in one process, which then holds every member's key share: for
    benchmarks (``mira bench sign``, ``mira bench gas``) and tests, never for a committee
    whose members must not know each other's shares (those run the same state machines
    over p2p, ``oracle.node.keygen``).

    ``participants`` is a count n (fresh participants 1…n with fresh identity keys), or
    ready-made state machines (tests use this to inject a cheating dealer). Messages pass
    through lists, exactly as a network layer would pass them.
    """
    for attempt in range(1, max_attempts + 1):
        if isinstance(participants, int):
            ids = identities or {i: IdentityKey() for i in range(1, participants + 1)}
            config = DKGConfig(
                suite,
                session_id or secrets.token_bytes(32),
                threshold,
                {i: k.public_bytes for i, k in ids.items()},
            )
            members = [DKGParticipant(config, i, k) for i, k in sorted(ids.items())]
        else:
            members = list(participants)
        round1 = [m.round1() for m in members]
        for m in members:
            m.receive_round1(round1)
        active = [m for m in members if m.identifier not in m.disqualified]
        envelopes = [env for m in active for env in m.round2()]
        complaints = [c for m in active for c in m.receive_round2(envelopes)]
        justifications = [a for m in active for a in m.justify(complaints)]
        outputs: dict[int, DKGOutput] = {}
        try:
            for m in active:
                try:
                    outputs[m.identifier] = m.finalize(complaints, justifications)
                except ParticipantDisqualifiedError:
                    continue  # a cheating dealer gets no key
        except GroupKeyUnusableError:
            if not isinstance(participants, int):
                raise
            session_id = None
            continue
        first = next(iter(outputs.values()))
        if any(o.public != first.public for o in outputs.values()):
            raise DKGError("participants disagree on the public key package")
        return DKGResult(
            public=first.public,
            keys={i: o.key for i, o in outputs.items()},
            disqualified=first.disqualified,
            complaints=tuple(complaints),
            justifications=tuple(justifications),
            attempts=attempt,
        )
    raise DKGError(f"no usable group key after {max_attempts} attempts")
