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
  refused as stale rather than forgotten. Every channel (PINGs included) has the same
  window, and a sender's remembered tuples are capped: an honest sender sends a handful of
  messages per round, so a sender that fills the cap is refused, not remembered.
* **Rate, cheapest check first.** Bytes from the network pass, in order: the source's
  budget for messages that failed authentication (per IP address, IPv6 by /64; a bounded
  table), the structural and binding checks on the header (no cryptography), the global
  bucket in front of the signature recovery (replies to this node's requests, and sources
  that recently delivered a member's message skip it, so a flood from many addresses
  cannot starve the members), the recovery and membership check, then a token bucket per
  authenticated sender. A flood of unauthenticated bytes thus costs its source its own
  budget, never the members theirs.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry, Counter

from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import MAX_PARTS, Envelope, Header, MsgType, peek_header, unseal

log = structlog.get_logger(__name__)

#: Message types whose ``round`` is a DKG attempt, not a reporting round: separate window.
_DKG_TYPES = frozenset(
    {MsgType.DKG_ROUND1, MsgType.DKG_SHARE, MsgType.DKG_COMPLAINTS, MsgType.DKG_JUSTIFY}
)
#: Not replay-recorded: one relayer forwards many messages under one (round, type, attempt),
#: and its handler (oracle.node.keygen.DKGInbox) is idempotent — a repeat stores nothing new.
#: ACK and REFUSE are replies only (never accepted as a request) that commit the sender to
#: nothing: a replayed one gains nothing a dropped reply would not. And a member answers
#: several requests of one round with them under one (round, attempt): the REPORT, the
#: PULL_ROOT, the first PULL_LEAVES part, the PULL_PROPOSE and PROPOSE of attempt 0.
_UNRECORDED_TYPES = frozenset({MsgType.DKG_RELAY, MsgType.ACK, MsgType.REFUSE})


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

    def available(self) -> float:
        """The tokens now (refilled for the time since the last look)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self) -> bool:
        if self.available() >= 1:
            self.tokens -= 1
            return True
        return False


def source_key(remote: str) -> str:
    """What one source is, for rate limits: an IPv4 address, or an IPv6 /64 (one host
    commonly holds a whole /64, so per-address limits would be free to evade)."""
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class SourceLimiter:
    """Per source: a budget of messages that failed authentication, and whether it
    recently delivered a member's message.

    Only failures are charged, so members' traffic never spends its source's budget (in a
    local network every member shares 127.0.0.1); a source whose budget is spent is refused
    before any parsing. Memory is bounded: at most ``max_sources`` budgets, the least
    recently charged evicted only once it has refilled (then it is no different from a new
    one). When every slot holds a source still paying for its failures, further sources
    share one overflow budget, so an attacker with many addresses gets one source's
    allowance for all the addresses beyond the table, not a fresh burst for each. Sources
    that delivered a member's message skip the overflow budget (members keep being served
    whatever the table holds); the set of them is an LRU map of the same bound.
    """

    def __init__(self, rate: float, burst: float, max_sources: int) -> None:
        self.rate, self.burst, self.max_sources = rate, burst, max_sources
        self._budgets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._overflow = TokenBucket(rate, burst)
        self._delivered: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._budgets) + len(self._delivered)

    def _budget(self, source: str, *, create: bool) -> TokenBucket | None:
        """The budget ``source`` pays from: its own, the shared overflow one (a full
        table), or none (it never failed, or it delivered a member's message)."""
        bucket = self._budgets.get(source)
        if bucket is not None:
            return bucket
        if len(self._budgets) >= self.max_sources:
            oldest = next(iter(self._budgets.values()))
            if oldest.available() < self.burst:  # still paying: no slot frees up
                return None if source in self._delivered else self._overflow
            if create:
                self._budgets.popitem(last=False)
        if not create:
            return None
        bucket = self._budgets[source] = TokenBucket(self.rate, self.burst)
        return bucket

    def admit(self, source: str) -> None:
        bucket = self._budget(source, create=False)
        if bucket is not None and bucket.available() < 1:
            raise MessageRejected(
                "source_rate_limited", f"{source} exceeds its budget of refused messages"
            )

    def charge(self, source: str) -> None:
        bucket = self._budget(source, create=True)
        if bucket is None:
            return  # a member's address past a full table: its own member checks remain
        if source in self._budgets:
            self._budgets.move_to_end(source)
        bucket.take()

    def delivered(self, source: str) -> None:
        self._delivered[source] = None
        self._delivered.move_to_end(source)
        while len(self._delivered) > self.max_sources:
            self._delivered.popitem(last=False)

    def has_delivered(self, source: str) -> bool:
        return source in self._delivered


@dataclass
class _SenderWindow:
    highest: int = -1
    seen: set[tuple[int, int, int]] = field(default_factory=set)  # (round, type, attempt)


#: Distinct (type, attempt) messages an honest sender sends one peer per round, with room:
#: a leader sends OBSERVE, a few NONCE_REQUESTs and PROPOSEs and a REPORT, and for a pull
#: root up to MAX_PARTS PULL_OBSERVEs and MAX_PARTS PULL_LEAVES; a follower answers each once.
MAX_MESSAGES_PER_ROUND = 16 + 2 * MAX_PARTS


class ReplayGuard:
    """Remembers (sender, epoch, channel) → the (round, type, attempt) tuples seen."""

    def __init__(self, window: int, round_span: int = 1) -> None:
        """``window``: how many rounds back a message is still accepted. ``round_span``: how
        far apart consecutive rounds' numbers are on the round channel (the round period in
        ms: rounds are slot start times in ms, see oracle.reporting.rounds)."""
        self.window = window
        self.round_span = round_span
        self.max_seen = MAX_MESSAGES_PER_ROUND * (window + 1)
        self._by_sender: dict[tuple[bytes, int, str], _SenderWindow] = {}

    def __len__(self) -> int:
        """Tuples remembered, over every sender (memory: bounded by max_seen each)."""
        return sum(len(s.seen) for s in self._by_sender.values())

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
        slot = self._slot(env)
        state = self._by_sender.setdefault(slot, _SenderWindow())
        # the window in round numbers: round-channel rounds are round_span apart (ms)
        window = self.window * (self.round_span if slot[2] == "round" else 1)
        if h.round + window < state.highest:
            raise MessageRejected(
                "stale", f"round {h.round} is older than the replay window (newest {state.highest})"
            )
        key = self._key(env)
        if key in state.seen:
            raise MessageRejected(
                "replay", f"{h.type.name} for round {h.round} attempt {h.attempt} seen before"
            )
        if len(state.seen) >= self.max_seen:
            # Within the window nothing may be forgotten (it could be replayed), so a
            # sender past what any honest member sends is refused instead.
            state.seen = {k for k in state.seen if k[0] + window >= state.highest}
            if len(state.seen) >= self.max_seen:
                raise MessageRejected(
                    "replay_window_full",
                    f"{len(state.seen)} messages within {window} rounds, more than a member sends",
                )
        state.seen.add(key)
        if h.round > state.highest:
            state.highest = h.round
            floor = h.round - window
            if len(state.seen) > 4 * self.window:
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
        # requests sent and replies returned, sealed (what `mira bench pull` counts per node)
        self.sent_bytes = Counter(
            "mira_p2p_sent_bytes",
            "p2p bytes sent (requests and replies), by message type",
            ["type"],
            registry=registry,
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
        round_span: int = 1,
        peer_rate: float = 200.0,
        peer_burst: float = 400.0,
        global_rate: float = 5000.0,
        source_rate: float = 100.0,
        source_burst: float = 200.0,
        max_sources: int = 4096,
    ) -> None:
        self.chain_id = chain_id
        self.committee = committee
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.epochs: dict[int, EpochMembers] = {}
        self.replay = ReplayGuard(replay_window, round_span)
        self._peer_rate, self._peer_burst = peer_rate, peer_burst
        self._buckets: dict[bytes, TokenBucket] = {}
        self._global = TokenBucket(global_rate, global_rate)
        self.sources = SourceLimiter(source_rate, source_burst, max_sources)

    def serve_epochs(self, epochs: Sequence[EpochMembers]) -> None:
        """Replace the set of epochs whose messages are accepted."""
        self.epochs = {e.epoch: e for e in epochs}

    def members_of(self, epoch: int) -> EpochMembers | None:
        return self.epochs.get(epoch)

    def reject(self, exc: MessageRejected, remote: str) -> None:
        self.metrics.rejected.labels(exc.reason).inc()
        if exc.reason == "source_rate_limited":
            return  # counted; one log line per message would be the flood's amplifier
        log.warning("p2p.rejected", reason=exc.reason, detail=exc.detail, remote=remote)

    def open(
        self, data: bytes, *, remote: str = "?", source: str | None = None, record: bool = True
    ) -> Envelope:
        """Parse and authenticate ``data``; raise MessageRejected (already counted).

        ``source`` is the sending address when the bytes arrived unsolicited (None for the
        reply to a request this node made): see the module docstring for the order of the
        checks and why.
        """
        key = None if source is None else source_key(source)
        authenticated = False
        try:
            if key is not None:
                self.sources.admit(key)
            self._check_header(peek_header(data, max_bytes=self.max_bytes))
            if self._needs_global_token(key) and not self._global.take():
                raise MessageRejected("rate_limited", "node-wide message rate exceeded")
            env = unseal(data, max_bytes=self.max_bytes)
            self.authenticate(env)
            authenticated = True
            self._admit(env, record=record)
        except MessageRejected as exc:
            if key is not None and not authenticated and exc.reason != "source_rate_limited":
                self.sources.charge(key)
            self.reject(exc, remote)
            raise
        if key is not None:
            self.sources.delivered(key)
        self.metrics.accepted.labels(env.header.type.name).inc()
        return env

    def _needs_global_token(self, key: str | None) -> bool:
        """Whether a signature recovery for these bytes spends the node-wide bucket: not
        for a reply (as many as this node's own requests, so no flood) nor for a source
        that recently delivered a member's message (so a flood from many addresses that
        drains the bucket cannot starve the members; such a source still pays its own
        budget for every refused message)."""
        return key is not None and not self.sources.has_delivered(key)

    def check(self, env: Envelope, *, record: bool = True) -> None:
        """Authenticate a parsed message and admit it: its sender's rate, and (with
        ``record``) the replay guard."""
        self.authenticate(env)
        self._admit(env, record=record)

    def authenticate(self, env: Envelope) -> None:
        """Binding, epoch and membership only: for a message relayed inside another one
        (an observation in a proposal), which costs its author nothing and must not spend
        the author's rate."""
        h = env.header
        members = self._check_header(h)
        if members.identity_keys[h.sender] != env.signer_key:
            known = members.index_of(env.signer_key)
            raise MessageRejected(
                "bad_signature" if known is not None else "non_member",
                f"signed by {env.signer_key.hex()[:16]}…, which is "
                + (f"member {known}, not {h.sender}" if known is not None else "not a member"),
            )

    def _check_header(self, h: Header) -> EpochMembers:
        """The checks a header allows without any cryptography."""
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
        return members

    def _admit(self, env: Envelope, *, record: bool) -> None:
        bucket = self._buckets.get(env.signer_key)
        if bucket is None:
            bucket = self._buckets[env.signer_key] = TokenBucket(self._peer_rate, self._peer_burst)
        if not bucket.take():
            raise MessageRejected(
                "rate_limited", f"member {env.header.sender} exceeds its message rate"
            )
        if record and env.header.type not in _UNRECORDED_TYPES:
            self.replay.check_and_record(env)

    def tokens_of(self, identity_key: bytes) -> float:
        """A member's tokens now (its full burst if it has sent nothing)."""
        bucket = self._buckets.get(identity_key)
        return self._peer_burst if bucket is None else bucket.available()


def member_keys(members: Mapping[int, bytes]) -> tuple[bytes, ...]:
    return tuple(members[i] for i in sorted(members))
