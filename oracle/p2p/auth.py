"""Which parsed messages a node accepts: from a member, of an epoch it serves, once, and
not too many.

Every check here is a security boundary, so each one says why it exists:

* **Membership.** The header names the sender by its index in the epoch's member list;
  the signature must recover to exactly that member's identity key. A valid signature by
  a key that is not a member (or by another member than the one named) is refused, so one
  member can never speak for another.
* **Binding.** Chain id and committee address must be ours: a message signed for another
  deployment (a testnet, an older contract) is not valid here even with the same keys.
* **Epoch.** Only epochs this node currently serves (the active one, and the pending one
  during a DKG) are accepted; a message signed under an old committee cannot be replayed
  into a new one, and a removed member's messages stop counting the moment its epoch ends.
* **Replay.** An honest sender sends at most one message per (epoch, round, type,
  attempt) to a given peer, so that tuple is remembered and a second copy is refused. A
  sliding window over rounds bounds the memory; anything older than the window is
  refused as stale rather than forgotten.
* **Rate.** A token bucket per authenticated sender, and one global bucket in front of the
  signature check, so a flood costs a bounded amount of CPU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry, Counter

from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import Envelope, MsgType, unseal

log = structlog.get_logger(__name__)

#: Message types whose ``round`` is a DKG attempt, not a reporting round: separate window.
_DKG_TYPES = frozenset(
    {MsgType.DKG_ROUND1, MsgType.DKG_SHARE, MsgType.DKG_COMPLAINTS, MsgType.DKG_JUSTIFY}
)
#: Not replay-recorded: one relayer forwards many messages under one (round, type, attempt),
#: and its handler (oracle.node.keygen.DKGInbox) is idempotent — a repeat stores nothing new.
_UNRECORDED_TYPES = frozenset({MsgType.DKG_RELAY})


@dataclass(frozen=True)
class EpochMembers:
    """The identity keys of one epoch's members, in the contract's order."""

    epoch: int
    identity_keys: tuple[bytes, ...]

    def index_of(self, identity_key: bytes) -> int | None:
        try:
            return self.identity_keys.index(identity_key)
        except ValueError:
            return None


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class _SenderWindow:
    highest: int = -1
    seen: set[tuple[int, int, int]] = field(default_factory=set)  # (round, type, attempt)


class ReplayGuard:
    """Remembers (sender, epoch, channel) → the (round, type, attempt) tuples seen."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._by_sender: dict[tuple[bytes, int, str], _SenderWindow] = {}

    @staticmethod
    def _slot(env: Envelope) -> tuple[bytes, int, str]:
        h = env.header
        channel = "dkg" if h.type in _DKG_TYPES else ("ping" if h.type == MsgType.PING else "round")
        return env.signer_key, h.epoch, channel

    @staticmethod
    def _key(env: Envelope) -> tuple[int, int, int]:
        return env.header.round, int(env.header.type), env.header.attempt

    def forget(self, env: Envelope) -> None:
        """Undo the record of ``env``: its handler refused it, so it was not delivered and
        the sender's retry must not be mistaken for a replay (the transport calls this)."""
        state = self._by_sender.get(self._slot(env))
        if state is not None:
            state.seen.discard(self._key(env))

    def check_and_record(self, env: Envelope) -> None:
        h = env.header
        channel = self._slot(env)[2]
        state = self._by_sender.setdefault(self._slot(env), _SenderWindow())
        window = self.window if channel != "ping" else 10**9
        if h.round + window < state.highest:
            raise MessageRejected(
                "stale", f"round {h.round} is older than the replay window (newest {state.highest})"
            )
        key = self._key(env)
        if key in state.seen:
            raise MessageRejected(
                "replay", f"{h.type.name} for round {h.round} attempt {h.attempt} seen before"
            )
        state.seen.add(key)
        if h.round > state.highest:
            state.highest = h.round
            floor = h.round - window
            if len(state.seen) > 4 * window:
                state.seen = {k for k in state.seen if k[0] >= floor}


class P2PMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "mira_p2p_rejected_messages",
            "p2p messages refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.accepted = Counter(
            "mira_p2p_accepted_messages",
            "p2p messages accepted, by type",
            ["type"],
            registry=registry,
        )
        self.sent = Counter(
            "mira_p2p_sent_messages", "p2p messages sent, by type", ["type"], registry=registry
        )
        self.send_failures = Counter(
            "mira_p2p_send_failures",
            "p2p sends that got no valid answer",
            ["peer"],
            registry=registry,
        )


class Authenticator:
    """Turns bytes from the network into an accepted :class:`Envelope`, or refuses them."""

    def __init__(
        self,
        *,
        chain_id: int,
        committee: bytes,
        metrics: P2PMetrics,
        max_bytes: int,
        replay_window: int = 256,
        peer_rate: float = 200.0,
        peer_burst: float = 400.0,
        global_rate: float = 5000.0,
    ) -> None:
        self.chain_id = chain_id
        self.committee = committee
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.epochs: dict[int, EpochMembers] = {}
        self.replay = ReplayGuard(replay_window)
        self._peer_rate, self._peer_burst = peer_rate, peer_burst
        self._buckets: dict[bytes, TokenBucket] = {}
        self._global = TokenBucket(global_rate, global_rate)

    def serve_epochs(self, epochs: Sequence[EpochMembers]) -> None:
        """Replace the set of epochs whose messages are accepted."""
        self.epochs = {e.epoch: e for e in epochs}

    def members_of(self, epoch: int) -> EpochMembers | None:
        return self.epochs.get(epoch)

    def reject(self, exc: MessageRejected, remote: str) -> None:
        self.metrics.rejected.labels(exc.reason).inc()
        log.warning("p2p.rejected", reason=exc.reason, detail=exc.detail, remote=remote)

    def open(self, data: bytes, *, remote: str = "?", record: bool = True) -> Envelope:
        """Parse and authenticate ``data``; raise MessageRejected (already counted)."""
        try:
            if not self._global.take():
                raise MessageRejected("rate_limited", "node-wide message rate exceeded")
            env = unseal(data, max_bytes=self.max_bytes)
            self.check(env, record=record)
        except MessageRejected as exc:
            self.reject(exc, remote)
            raise
        self.metrics.accepted.labels(env.header.type.name).inc()
        return env

    def check(self, env: Envelope, *, record: bool = True) -> None:
        h = env.header
        if h.chain_id != self.chain_id or h.committee != self.committee:
            raise MessageRejected(
                "wrong_committee",
                f"bound to chain {h.chain_id} / 0x{h.committee.hex()}, "
                f"this node serves {self.chain_id} / 0x{self.committee.hex()}",
            )
        members = self.epochs.get(h.epoch)
        if members is None:
            raise MessageRejected(
                "wrong_epoch", f"epoch {h.epoch}; this node serves {sorted(self.epochs)}"
            )
        if h.sender >= len(members.identity_keys):
            raise MessageRejected(
                "non_member",
                f"sender index {h.sender} ≥ committee size {len(members.identity_keys)}",
            )
        if members.identity_keys[h.sender] != env.signer_key:
            known = members.index_of(env.signer_key)
            raise MessageRejected(
                "bad_signature" if known is not None else "non_member",
                f"signed by {env.signer_key.hex()[:16]}…, which is "
                + (f"member {known}, not {h.sender}" if known is not None else "not a member"),
            )
        bucket = self._buckets.get(env.signer_key)
        if bucket is None:
            bucket = self._buckets[env.signer_key] = TokenBucket(self._peer_rate, self._peer_burst)
        if not bucket.take():
            raise MessageRejected("rate_limited", f"member {h.sender} exceeds its message rate")
        if record and h.type not in _UNRECORDED_TYPES:
            self.replay.check_and_record(env)


def member_keys(members: Mapping[int, bytes]) -> tuple[bytes, ...]:
    return tuple(members[i] for i in sorted(members))
