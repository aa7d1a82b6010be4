"""What a reporting round runs on: the epoch's context (members, key share, quorum and
threshold), each feed's policy, the protocol's timing, its metrics, and the small types the
follower, the leader and the transmission rotation share (oracle.reporting.protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from oracle.crypto.dkg import default_threshold, max_faulty
from oracle.crypto.frost import (
    PublicKeyPackage,
    Signer,
)
from oracle.p2p.transport import Peer
from oracle.reporting.messages import (
    Observation,
)
from oracle.reporting.report import FeedUpdate


@dataclass(frozen=True)
class FeedPolicy:
    """What the protocol needs to know about one feed."""

    feed_id: bytes
    name: str
    deviation_bps: int
    heartbeat_s: int
    tolerance_bps: int
    static_commitment: bytes | None  # feeds without a model: every honest node has this one
    # How far a proposed observedAt may lie from this node's own latest output when it has
    # no output of that very second: two honest members' latest outputs differ by about one
    # poll interval, and a liar gains no more than this (it goes on-chain as the time).
    max_skew_s: int = 10
    deviation_abs: int = 0  # the deviation's absolute floor, fixed-point units
    # Feeds of one group (a policy's arms and recommended arm) go into a report all or
    # none: when one is due, all are; "" for a feed on its own.
    group: str = ""


class OutputSource(Protocol):
    """A node's own latest outputs (observed_at in unix seconds)."""

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        """Every feed's latest output, by feed id: read it, never change it (a node hands
        out the same dict until an output changes)."""
        ...

    def latest_output(self, feed_id: bytes) -> FeedUpdate | None:
        """``latest_outputs().get(feed_id)``, without making every feed's: a push round
        asks for the few registered feeds of a node that may carry 10,000 pull-only ones,
        each with a new output every poll."""
        ...

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        """This node's own recent output of ``feed_id`` observed at that second, if any."""
        ...

    async def make_durable(self) -> None:
        """Store everything an observation sent to a peer is based on."""
        ...


@dataclass(frozen=True)
class EpochContext:
    chain_id: int
    oracle: bytes  # 20-byte contract address
    epoch: int
    peers: tuple[Peer, ...]  # every member, by index (this node included)
    operators: tuple[str, ...]
    self_index: int
    public: PublicKeyPackage
    signer: Signer

    @property
    def n(self) -> int:
        return len(self.peers)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return default_threshold(self.n)

    @property
    def threshold(self) -> int:
        return self.public.threshold


@dataclass(frozen=True)
class ProtocolConfig:
    round_period_s: float = 0.25
    observe_timeout_s: float = 0.2
    sign_timeout_s: float = 0.4
    transmit_timeout_s: float = 3.0
    max_attempts: int = 3
    reobserve_after_s: float = 0.15
    pending_ttl_s: float = 8.0
    report_max_age_s: float = 60.0
    chain_poll_s: float = 0.5
    suspect_s: float = 60.0
    # pull mode (oracle.reporting.pull_round): the MiraPullVerifier the roots are signed
    # for (None: no pull roots), and how many signed roots a node keeps to serve
    pull_verifier: bytes | None = None
    pull_retention: int = 64
    # a pull round's bulk transfers (each member's outputs, the leaves to every member:
    # ~14 parts each at 10,000 feeds), per wave of parts
    pull_transfer_timeout_s: float = 1.0


class RoundMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "mira_rounds", "Rounds led by this node, by outcome", ["outcome"], registry=registry
        )
        self.refusals = Counter(
            "mira_round_refusals",
            "Proposals or requests this node refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.invalid_shares = Counter(
            "mira_invalid_signature_shares",
            "Invalid FROST signature shares received, by signer index",
            ["signer"],
            registry=registry,
        )
        self.offences = Counter(
            "mira_round_offences",
            "Provable misbehaviour by a member (it is excluded from the round), by kind",
            ["member", "offence"],
            registry=registry,
        )
        self.dropped_observations = Counter(
            "mira_round_dropped_observations",
            "Leader: observations left out of a report because this node would refuse "
            "their median, by reason",
            ["reason"],
            registry=registry,
        )
        self.transmissions = Counter(
            "mira_transmissions", "Transmission attempts by fate", ["fate"], registry=registry
        )
        self.chain_errors = Counter(
            "mira_chain_read_errors", "Failed chain reads", registry=registry
        )
        self.round_seconds = Histogram(
            "mira_round_seconds",
            "Leader: round start to aggregated signature",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
        )


class Refusal(Exception):
    """A follower will not contribute; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Pending:
    """A signed report seen (led or received) that may still be landing."""

    round: int
    value: int
    observed_at: int
    seen: float  # monotonic


@dataclass
class Collected:
    """One member's signed observation, as the leader collected it."""

    raw: bytes
    observation: Observation
    by_feed: dict[bytes, FeedUpdate] = field(default_factory=dict)


#: Refusals of what the median's author alone chose (not the value, which the median
#: bounds by the honest observations).
AUTHOR_CHOICES = frozenset(
    {"observed_at_skew", "unverifiable_commitment", "model_commitment", "future_observation"}
)


_T = TypeVar("_T")


def lower_median(values: list[tuple[int, int, _T]]) -> _T:
    """The lower median of (value, member index, update), ties broken by member index (the
    update as the caller holds it: decoded, or encoded by a pull round)."""
    ordered = sorted(values, key=lambda v: (v[0], v[1]))
    return ordered[(len(ordered) - 1) // 2][2]


#: Refusals only the proposing leader can have caused, so they name it: the report is not
#: the lower median of the observations the leader itself embedded, each signed by its
#: author and checked here; anyone holding the proposal recomputes that median, so the
#: evidence is the leader's own message (a liar proposing its own value is caught here).
LEADER_OFFENCES = frozenset({"not_median"})
