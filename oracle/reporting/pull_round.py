"""Pull roots: each round, the committee also signs one Merkle root over the current output
of every feed it carries (oracle.reporting.pull), one FROST signature whatever the number
of feeds. A separate signing round kind on the same protocol, beside the push round, with
its own observations: a root over 10,000 feeds moves 10,000 outputs per member and 10,000
leaves per follower, far more than one p2p message holds, so both travel in parts
(oracle.reporting.pull_parts: at most 720 a message, the part index in the header's
attempt byte, every part signed by its sender).

1. The leader of round r asks every member for its outputs (PULL_OBSERVE, one request a
   part; a member answers every part from one snapshot of its outputs, taken at the
   round's first request, stored before it leaves the node). Each feed observed by a
   quorum gets its lower median as its leaf, unless the leader's own check (the
   followers' check, below) refuses it: that feed is left out of the root.
2. The leader sends the leaves, in parts (PULL_LEAVES), to every member; a member files
   them per round (any order, each part once, no more leaves than feeds it carries, a
   bounded number of rounds per leader) and acknowledges each.
3. The leader picks ``threshold`` members that hold every part and whose outputs agree
   with every leaf within tolerance (the push round's candidate rule), asks each for a
   nonce commitment (PULL_NONCE_REQUEST) and sends them PULL_PROPOSE: the root, the leaf
   count and the signing set.
4. A follower signs only if (cheapest first): the request comes from the round's leader
   for a recent round; its nonce for this (round, attempt) is in the signing set; every
   part of the round's leaves is in; the leaves are at most as many as the feeds it
   carries, in strictly ascending feed id (no duplicate), each a feed it carries, and each
   passes ``check_update`` — the very rule a push report's updates pass (value within the
   feed's tolerance of its own output, observation time, model commitment); the tree it
   builds from them has the proposed root and leaf count; and it has signed no other root
   this round.
5. The leader aggregates, keeps the root, and sends it (PULL_ROOT: root, leaf count,
   signature) to every member holding the leaves, which rebuilds the tree from its parts
   and checks the signature against the group key before keeping it, so any member serves
   any root.

Nothing here touches the push round's report, its nonces or its durable records: pull
nonces live under attempt numbers from ``PULL_ATTEMPT_BASE`` (a header's attempt is one
byte, so a push attempt never reaches it), and a pull round failing costs the push round
nothing. Unlike a push report, a follower does not check that each leaf is the median of
signed observations (the proposal would carry every member's observation: n times the
leaves); the bound a Byzantine leader keeps is the tolerance rule alone, as for the values
a follower checks against its own output in a push round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import structlog

from oracle.config.publish import within_bps
from oracle.crypto.errors import CryptoError
from oracle.crypto.frost import SignatureShare, SigningRound, aggregate, verify_signature_share
from oracle.crypto.nonces import SigningCommitment
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.errors import MessageRejected
from oracle.p2p.transport import Peer
from oracle.p2p.wire import MAX_PARTS, Envelope, MsgType, Reader
from oracle.reporting import pull
from oracle.reporting.context import FeedPolicy, Refusal, lower_median
from oracle.reporting.errors import PullFormatError
from oracle.reporting.leader import Leader
from oracle.reporting.messages import (
    COMMITMENT_LEN,
    EVM_SIGNATURE_LEN,
    decode_commitment,
    decode_refusal,
    encode_commitment,
    encode_share,
)
from oracle.reporting.pull_parts import (
    MAX_TOTAL,
    Assemblies,
    PartAssembly,
    decode_part,
    encode_parts,
    part_count,
)
from oracle.reporting.pull_store import PullRoots, SignedRoot
from oracle.reporting.report import FeedUpdate, decode_update, encode_update, record_value

log = structlog.get_logger(__name__)

#: Pull nonces are kept under (round, PULL_ATTEMPT_BASE + attempt) beside the push round's.
PULL_ATTEMPT_BASE = 256
#: A pull round older than this many periods is dropped: by the leader, between its steps,
#: and by a member asked to work for it (its outputs, leaves, a nonce, a share). Each round
#: signs every feed's current output, so a late root is superseded before it is made; on a
#: loaded node, finishing it anyway costs every member the CPU the current round needs,
#: and the rounds fall further and further behind (seen at 10,000 feeds: parts arriving
#: 9 s after their round). A signed root is still taken from the leader up to 8 periods late.
PULL_MAX_AGE_PERIODS = 3
#: Rounds whose output snapshot a member keeps to answer the parts of (the current one,
#: and a few a Byzantine leader may ask about ahead of time).
SNAPSHOTS_KEPT = 4

#: a member's outputs: feed id → its encoded update (report.encode_update's 88 bytes). A
#: round carries 10,000 of them from each member: they stay encoded, compared as bytes, and
#: only a value or an update that needs checking is decoded.
_ByFeed = Mapping[bytes, bytes]


def encode_proposal(
    root: bytes, leaf_count: int, commitments: tuple[SigningCommitment, ...]
) -> bytes:
    return (
        root
        + leaf_count.to_bytes(4, "big")
        + len(commitments).to_bytes(1, "big")
        + b"".join(c.to_bytes() for c in commitments)
    )


def decode_proposal(data: bytes) -> tuple[bytes, int, tuple[SigningCommitment, ...]]:
    r = Reader(data, "pull proposal")
    root, leaf_count = r.take(32), r.u32()
    commitments = tuple(decode_commitment(r.take(COMMITMENT_LEN)) for _ in range(r.u8()))
    r.done()
    return root, leaf_count, commitments


def encode_root(root: bytes, leaf_count: int, signature: bytes) -> bytes:
    return root + leaf_count.to_bytes(4, "big") + signature


def decode_root(data: bytes) -> tuple[bytes, int, bytes]:
    r = Reader(data, "pull root")
    root, leaf_count = r.take(32), r.u32()
    signature = r.take(EVM_SIGNATURE_LEN)
    r.done()
    return root, leaf_count, signature


class PullRounds(Leader):
    """The pull round, both sides (see the module docstring)."""

    def __init__(self, *args: Any, pull_roots: PullRoots | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `is None`, not `or`: an empty PullRoots is falsy (len 0) and is still the node's
        self.pull_roots = (
            PullRoots(self.config.pull_retention) if pull_roots is None else pull_roots
        )
        self._pull_signed: dict[int, bytes] = {}  # round → the root this node signed
        # round → this node's outputs for it, in parts and by feed (encoded)
        self._pull_snapshots: dict[int, tuple[list[bytes], dict[bytes, bytes]]] = {}
        # feed id → (its latest output, encoded): each output encoded once, not every round
        self._encoded: dict[bytes, tuple[FeedUpdate, bytes]] = {}
        # feed id → (a leaf this node would sign, its own output then, the feed's policy)
        self._passed: dict[bytes, tuple[bytes, FeedUpdate, FeedPolicy]] = {}
        self._assemblies = Assemblies()
        self.pull_roots_led = 0
        self._pull_leading: int | None = None  # the pull round this node leads right now

    def _register_handlers(self) -> None:
        super()._register_handlers()
        self.transport.on(MsgType.PULL_OBSERVE, self._on_pull_observe)
        self.transport.on(MsgType.PULL_LEAVES, self._on_pull_leaves)
        self.transport.on(MsgType.PULL_NONCE_REQUEST, self._on_pull_nonce_request)
        self.transport.on(MsgType.PULL_PROPOSE, self._on_pull_propose)
        self.transport.on(MsgType.PULL_ROOT, self._on_pull_root)

    # -- leader --------------------------------------------------------------------------

    async def lead_pull_safely(self, r: int) -> None:
        if self._pull_leading is not None:
            # one pull round led at a time: the one still running is not dropped yet, and a
            # second would take the CPU both need
            self.metrics.rounds.labels("pull_busy").inc()
            log.info("pull.busy", round=r, leading=self._pull_leading)
            return
        self._pull_leading = r
        try:
            await self.lead_pull(r)
        except Exception as exc:
            self.metrics.rounds.labels("pull_error").inc()
            log.exception("pull.failed", round=r, error=str(exc))
        finally:
            self._pull_leading = None

    def _pull_too_late(self, r: int, step: str) -> bool:
        """Whether round ``r`` is older than a pull round may get (then say so: dropped)."""
        late = self.now_round() - r > PULL_MAX_AGE_PERIODS * self.period_ms
        if late:
            self.metrics.rounds.labels("pull_late").inc()
            log.info("pull.dropped_late", round=r, step=step)
        return late

    async def _collect_pull_observations(self, r: int) -> dict[int, dict[bytes, bytes]]:
        """Every member's outputs that arrive in time, by feed (this node's own first)."""
        me = self.ctx.self_index
        collected: dict[int, dict[bytes, bytes]] = {me: (await self._pull_snapshot(r))[1]}
        want = part_count(len(self.policies))
        others = [p for p in self.ctx.peers if p.index != me]
        results = await asyncio.gather(*(self._outputs_of(p, r, want) for p in others))
        for p, outputs in zip(others, results, strict=True):
            if outputs is not None:
                collected[p.index] = outputs
        return collected

    async def _outputs_of(self, peer: Peer, r: int, want: int) -> dict[bytes, bytes] | None:
        """One member's outputs, asked part by part: the ``want`` parts this node's own feeds
        fill, then any more the member says it has. None if a part is missing or bad (the
        member's observation is left out, as a push observation that does not arrive)."""
        timeout = self.config.pull_transfer_timeout_s
        outputs: dict[bytes, bytes] = {}
        parts: int | None = None
        asked = 0
        while asked < (want if parts is None else parts):
            indices = range(asked, want if parts is None else parts)
            asks = {
                i: asyncio.create_task(
                    self._ask(
                        peer,
                        MsgType.PULL_OBSERVE,
                        r,
                        i,
                        b"",
                        frozenset({MsgType.PULL_OBSERVATION, MsgType.REFUSE}),
                        timeout,
                    )
                )
                for i in indices
            }
            asked = indices.stop
            got = await self._gather(asks, timeout)
            for i in indices:
                env = got.get(i)
                if env is None or env.header.type != MsgType.PULL_OBSERVATION:
                    if parts is not None and i >= parts:
                        continue  # past the member's last part: nothing to have
                    return None
                try:
                    part = decode_part(env.payload, index=i)
                    if parts is not None and part.parts != parts:
                        raise MessageRejected(
                            "malformed", f"part {i}: {part.parts} parts, not {parts}"
                        )
                    parts = part.parts
                    for record in part.records():
                        feed_id = record[:32]
                        if feed_id in outputs:
                            raise MessageRejected("malformed", f"part {i}: a feed twice")
                        outputs[feed_id] = record
                except MessageRejected as exc:
                    self.auth.reject(exc, f"member {peer.index}")
                    return None
        return outputs

    def pull_leaves(self, collected: Mapping[int, _ByFeed]) -> tuple[bytes, ...]:
        """Each carried feed's lower median (encoded), where a quorum observed it and this
        node's own check passes (a leaf the followers would refuse would sink the whole
        root)."""
        quorum = self.ctx.quorum
        members = sorted(collected.items())
        own = collected.get(self.ctx.self_index, {})
        mine = self.outputs.latest_outputs()
        leaves = []
        for feed_id in sorted(self.policies):
            values = [
                (record_value(obs[feed_id]), who, obs[feed_id])
                for who, obs in members
                if feed_id in obs
            ]
            if len(values) < quorum:
                continue
            median = lower_median(values)
            if median != own.get(feed_id):
                try:
                    self._check_leaf(feed_id, median, mine)
                except Refusal:
                    continue
            leaves.append(median)
        return tuple(leaves[:MAX_TOTAL])

    def _pull_candidates(
        self, collected: Mapping[int, _ByFeed], leaves: tuple[bytes, ...], holding: set[int]
    ) -> list[int]:
        """The members that hold every part of the leaves and whose own outputs agree with
        every leaf within its feed's tolerance: the ones that will sign it."""
        policies = self.policies
        # (feed id, leaf, value, tolerance) once, not once per member
        table = [
            (leaf[:32], leaf, record_value(leaf), policies[leaf[:32]].tolerance_bps)
            for leaf in leaves
        ]

        def agrees(obs: _ByFeed) -> bool:
            for feed_id, leaf, value, tolerance in table:
                own = obs.get(feed_id)
                if own is None:
                    return False
                if own != leaf and not within_bps(value, record_value(own), tolerance):
                    return False
            return True

        agreeing = [w for w, obs in collected.items() if w in holding and agrees(obs)]
        now = time.monotonic()
        trusted = [w for w in agreeing if self._suspects.get(w, 0.0) < now]
        return trusted if len(trusted) >= self.ctx.threshold else agreeing

    async def _send_leaves(self, r: int, parts: list[bytes]) -> set[int]:
        """Send every part of the leaves to every other member; the members (this node
        included) that hold them all."""
        me = self.ctx.self_index
        timeout = self.config.pull_transfer_timeout_s
        asks = {
            (p.index, i): asyncio.create_task(
                self._ask(
                    p,
                    MsgType.PULL_LEAVES,
                    r,
                    i,
                    part,
                    frozenset({MsgType.ACK, MsgType.REFUSE}),
                    timeout,
                )
            )
            for p in self.ctx.peers
            if p.index != me
            for i, part in enumerate(parts)
        }
        got = await self._gather(asks, timeout)
        refused: set[int] = set()
        for (who, _), env in got.items():
            if env.header.type == MsgType.REFUSE:
                refused.add(who)
                log.warning(
                    "pull.parts_refused", round=r, member=who, reason=decode_refusal(env.payload)
                )
        holding = {me}
        for p in self.ctx.peers:
            if (
                p.index != me
                and p.index not in refused
                and all((p.index, i) in got for i in range(len(parts)))
            ):
                holding.add(p.index)
        return holding

    async def lead_pull(self, r: int) -> SignedRoot | None:
        """Have round ``r``'s pull root signed; keep it and send it to every member."""
        verifier = self.config.pull_verifier
        assert verifier is not None
        ctx = self.ctx
        collected = await self._collect_pull_observations(r)
        if self._pull_too_late(r, "observations"):
            return None
        if len(collected) < ctx.quorum:
            self.metrics.rounds.labels("pull_no_quorum").inc()
            log.info("pull.no_quorum", round=r, observations=len(collected), need=ctx.quorum)
            return None
        leaves = self.pull_leaves(collected)
        if not leaves:
            return None
        started = time.perf_counter()
        tree = pull.PullTree.from_records(r, leaves)
        message = pull.digest(ctx.chain_id, verifier, ctx.epoch, r, tree.root, tree.leaf_count)
        holding = await self._send_leaves(r, encode_parts(leaves))
        if self._pull_too_late(r, "leaves"):
            return None
        candidates = self._pull_candidates(collected, leaves, holding)
        excluded: set[int] = set()
        for attempt in range(self.config.max_attempts):
            pool = [w for w in candidates if w not in excluded]
            commitments = await self._pull_nonces(r, attempt, pool)
            if self._pull_too_late(r, "nonces"):
                return None
            ready = [w for w in pool if w in commitments]
            if len(ready) < ctx.threshold:
                log.warning("pull.too_few_signers", round=r, attempt=attempt, ready=len(ready))
                return None
            chosen = self._signers(r, ready)
            round_ = SigningRound.build(
                MIRA_EVM, ctx.public, message, [commitments[w] for w in chosen]
            )
            proposal = encode_proposal(tree.root, tree.leaf_count, round_.commitments)
            shares = await self._shares(
                r,
                attempt,
                round_,
                chosen,
                proposal,
                request=MsgType.PULL_PROPOSE,
                reply=MsgType.PULL_SHARE,
                nonce_attempt=PULL_ATTEMPT_BASE + attempt,
                refused="pull.follower_refused",
                # a signer checks every leaf and builds the whole tree before it answers:
                # work that grows with the feeds, as a wave of parts does
                timeout_s=self.config.pull_transfer_timeout_s,
            )
            bad = [
                w
                for w, z in shares.items()
                if not verify_signature_share(round_, SignatureShare(w + 1, z))
            ]
            for w in bad:
                self._name_offender(r, attempt, w, "invalid_shares")
            missing = [w for w in chosen if w not in shares]
            excluded.update(bad, missing)
            if bad or missing:
                continue
            sig = aggregate(round_, [SignatureShare(w + 1, z) for w, z in shares.items()])
            encoded = MIRA_EVM.encode_signature(sig)
            signed = self._keep_root(tree, message, encoded)
            self.pull_roots_led += 1
            log.info(
                "pull.signed",
                round=r,
                leaves=tree.leaf_count,
                ms=round((time.perf_counter() - started) * 1000, 1),
                # the round's start is when its observations were asked for: what
                # `mira bench pull` reports as observation → signed root
                since_round_ms=round(time.time() * 1000 - r, 1),
            )
            payload = encode_root(tree.root, tree.leaf_count, encoded)
            for w in sorted(holding - {ctx.self_index}):
                self._spawn(
                    self._ask(
                        ctx.peers[w],
                        MsgType.PULL_ROOT,
                        r,
                        0,
                        payload,
                        frozenset({MsgType.ACK}),
                        self.config.sign_timeout_s,
                    ),
                    f"pull-root-{r}-{w}",
                )
            return signed
        return None

    def _keep_root(self, tree: pull.PullTree, message: bytes, encoded: bytes) -> SignedRoot:
        verifier = self.config.pull_verifier
        assert verifier is not None
        px, parity, _, commitment, z = MIRA_EVM.evm_arguments(
            self.ctx.public.group_key, message, encoded
        )
        signed = SignedRoot(
            self.ctx.chain_id,
            verifier,
            self.ctx.epoch,
            tree,
            pull.PullSignature(px=px, parity=parity, commitment=commitment, z=z),
        )
        self.pull_roots.add(signed)
        return signed

    async def _pull_nonces(
        self, r: int, attempt: int, pool: list[int]
    ) -> dict[int, SigningCommitment]:
        out: dict[int, SigningCommitment] = {}
        if self.ctx.self_index in pool:
            with contextlib.suppress(Refusal):
                out[self.ctx.self_index] = self._issue_nonce(r, PULL_ATTEMPT_BASE + attempt)
        # the members are busy with the round's parts (and their feeds' polls): the wave's
        # timeout, not a push observation's
        timeout = self.config.pull_transfer_timeout_s
        out.update(
            await self._ask_nonces(
                r, attempt, pool, MsgType.PULL_NONCE_REQUEST, timeout, reply=MsgType.PULL_NONCE
            )
        )
        return out

    # -- follower ------------------------------------------------------------------------

    def _check_pull_request(
        self, env: Envelope, max_attempt: int | None = None, *, work: bool = True
    ) -> bytes:
        """The pull verifier, once the request is one this node answers at all: from the
        round's leader, for a round at most ``PULL_MAX_AGE_PERIODS`` old if it asks for
        ``work`` (a snapshot of the outputs, a nonce, checking the leaves), else at most 8
        (filing a part of the leaves, taking a signed root)."""
        if self.config.pull_verifier is None:
            raise Refusal("pull_disabled", "this node signs no pull roots")
        self._check_leader(env, max_attempt, PULL_MAX_AGE_PERIODS if work else 8)
        return self.config.pull_verifier

    async def _pull_snapshot(self, r: int) -> tuple[list[bytes], dict[bytes, bytes]]:
        """This node's outputs for round ``r``'s pull root, in parts and by feed: one
        snapshot per round, so every part of it comes from the same outputs (stored first:
        never send what a crash could take back)."""
        kept = self._pull_snapshots.get(r)
        if kept is not None:
            return kept
        await self.outputs.make_durable()
        kept = self._pull_snapshots.get(r)  # made by another request while this one waited
        if kept is not None:
            return kept
        outs = self.outputs.latest_outputs()
        policies = self.policies
        records = [self._record(outs[f]) for f in sorted(outs) if f in policies][:MAX_TOTAL]
        kept = self._pull_snapshots[r] = (encode_parts(records), {r[:32]: r for r in records})
        while len(self._pull_snapshots) > SNAPSHOTS_KEPT:
            del self._pull_snapshots[min(self._pull_snapshots)]
        return kept

    def _record(self, update: FeedUpdate) -> bytes:
        """``update`` encoded, once per output (a runner hands out the same object until
        its next output)."""
        hit = self._encoded.get(update.feed_id)
        if hit is not None and hit[0] is update:
            return hit[1]
        record = encode_update(update)
        self._per_feed_put(self._encoded, update.feed_id, (update, record))
        return record

    def _check_leaf(self, feed_id: bytes, leaf: bytes, mine: Mapping[bytes, FeedUpdate]) -> None:
        """Would this node sign ``leaf`` (encoded) as that feed's value? ``check_update``,
        the push round's rule: Refusal if not. Two shortcuts give its answer without running
        it, so only a leaf that is new to this node is decoded and checked:

        * a leaf byte-identical to this node's own latest output passes;
        * a leaf that passed before, while this node's latest output and the feed's policy
          are still the objects they were then, passes again: check_update reads nothing
          else but the clock, and its one clock check (observedAt not ahead of now) only
          gets easier. A feed polled every 5 s repeats its leaf for 5 rounds.
        """
        own = mine.get(feed_id)
        policy = self.policies[feed_id]
        if own is not None:
            if leaf == self._record(own):
                return
            passed = self._passed.get(feed_id)
            if (
                passed is not None
                and passed[0] == leaf
                and passed[1] is own
                and passed[2] is policy
            ):
                return
        self.check_update(policy, decode_update(leaf), mine)
        if own is not None:
            self._per_feed_put(self._passed, feed_id, (leaf, own, policy))

    def _per_feed_put(self, memo: dict[bytes, Any], feed_id: bytes, entry: Any) -> None:
        """``memo[feed_id] = entry`` in a memory kept per carried feed: feeds come and go
        (registered models), so it is emptied when it holds twice as many as are carried."""
        if len(memo) > 2 * len(self.policies):
            memo.clear()
        memo[feed_id] = entry

    async def _on_pull_observe(self, env: Envelope) -> bytes:
        try:
            self._check_pull_request(env, MAX_PARTS - 1)
            h = env.header
            parts = (await self._pull_snapshot(h.round))[0]
            if h.attempt >= len(parts):
                raise Refusal(
                    "no_such_part", f"part {h.attempt}: this node's outputs fill {len(parts)}"
                )
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.PULL_OBSERVATION, parts[h.attempt])

    async def _on_pull_leaves(self, env: Envelope) -> bytes:
        try:
            self._check_pull_request(env, MAX_PARTS - 1, work=False)
            h = env.header
            try:
                part = decode_part(env.payload, index=h.attempt)
            except MessageRejected as exc:
                raise Refusal("malformed", exc.detail) from None
            self._assemblies.add(h.round, h.sender, part, max_leaves=len(self.policies))
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.ACK, b"")

    async def _on_pull_nonce_request(self, env: Envelope) -> bytes:
        try:
            self._check_pull_request(env)
            h = env.header
            com = self._issue_nonce(h.round, PULL_ATTEMPT_BASE + h.attempt)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.PULL_NONCE, encode_commitment(com))

    async def _on_pull_propose(self, env: Envelope) -> bytes:
        try:
            share = self._check_and_sign_pull(env)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.PULL_SHARE, encode_share(share))

    def check_pull_leaves(self, leaves: tuple[bytes, ...]) -> None:
        """Would this node sign a root over ``leaves`` (encoded updates)? Refusal saying
        why not."""
        if not leaves:
            raise Refusal("no_leaves", "a pull root has at least one leaf")
        policies = self.policies
        if len(leaves) > len(policies):
            raise Refusal(
                "too_many_leaves", f"{len(leaves)} leaves, this node carries {len(policies)}"
            )
        ids = [leaf[:32] for leaf in leaves]
        for prev, cur in pairwise(ids):
            if prev == cur:
                raise Refusal("duplicate_feed", f"feed 0x{cur.hex()} appears twice")
            if prev > cur:
                raise Refusal("unsorted_leaves", "leaves are not in ascending feed id order")
        for feed_id in ids:
            if feed_id not in policies:
                raise Refusal("unknown_feed", f"feed 0x{feed_id.hex()} is not served here")
        mine = self.outputs.latest_outputs()
        for feed_id, leaf in zip(ids, leaves, strict=True):
            self._check_leaf(feed_id, leaf, mine)

    def _assembled_tree(
        self, r: int, root: bytes, leaf_count: int, *, check: bool
    ) -> tuple[PartAssembly, pull.PullTree]:
        """Round ``r``'s tree, from the parts its leader sent, which must lead to ``root``
        over ``leaf_count`` leaves (``check``: and pass :meth:`check_pull_leaves`)."""
        assembly = self._assemblies.get(r)
        if assembly is None:
            raise Refusal("missing_parts", f"no part of round {r}'s leaves received")
        leaves = assembly.leaves()
        if len(leaves) != leaf_count:
            raise Refusal("leaf_count", f"{leaf_count} leaves proposed, {len(leaves)} received")
        if check:
            self.check_pull_leaves(leaves)
        tree = assembly.cache.get("tree")
        if not isinstance(tree, pull.PullTree):
            try:
                tree = pull.PullTree.from_records(r, leaves)
            except PullFormatError as exc:
                raise Refusal("malformed", str(exc)) from None
            assembly.cache["tree"] = tree
        if tree.root != root:
            raise Refusal(
                "root_mismatch", f"the leaves received lead to another root than {root.hex()[:16]}…"
            )
        return assembly, tree

    def _check_and_sign_pull(self, env: Envelope) -> int:
        verifier = self._check_pull_request(env)
        h, ctx = env.header, self.ctx
        try:
            root, leaf_count, commitments = decode_proposal(env.payload)
        except MessageRejected as exc:
            raise Refusal("malformed", exc.detail) from None
        key = (h.round, PULL_ATTEMPT_BASE + h.attempt)
        issued = self._nonces.get(key)
        mine = [c for c in commitments if c.identifier == ctx.self_index + 1]
        if issued is None or mine != [issued]:
            raise Refusal("nonce", f"no pull commitment issued by this node for {h.round}")
        _, tree = self._assembled_tree(h.round, root, leaf_count, check=True)
        message = pull.digest(
            ctx.chain_id, verifier, ctx.epoch, h.round, tree.root, tree.leaf_count
        )
        try:
            round_ = SigningRound.build(MIRA_EVM, ctx.public, message, commitments)
        except CryptoError as exc:
            raise Refusal("signing_set", str(exc)) from None
        # One root per round: a leader cannot collect shares for two roots of a round and
        # hand consumers the one they like better. Kept for the rounds _check_leader still
        # admits (8 periods back), so a pruned round can no longer be proposed.
        floor = self.now_round() - 16 * self.period_ms
        for old in [k for k in self._pull_signed if k < floor]:
            del self._pull_signed[old]
        signed = self._pull_signed.get(h.round)
        if signed is not None and signed != tree.root:
            raise Refusal("equivocation", f"already signed another pull root for {h.round}")
        self._pull_signed[h.round] = tree.root
        try:
            share = ctx.signer.sign(round_)
        except CryptoError as exc:
            raise Refusal("nonce", str(exc)) from None
        finally:
            self._nonces.pop(key, None)
        return share.z

    async def _on_pull_root(self, env: Envelope) -> bytes:
        try:
            verifier = self._check_pull_request(env, work=False)
            try:
                root, leaf_count, encoded = decode_root(env.payload)
            except MessageRejected as exc:
                raise Refusal("malformed", exc.detail) from None
            r = env.header.round
            _, tree = self._assembled_tree(r, root, leaf_count, check=False)
            message = pull.digest(
                self.ctx.chain_id, verifier, self.ctx.epoch, r, tree.root, tree.leaf_count
            )
            if not MIRA_EVM.verify(self.ctx.public.group_key, message, encoded):
                raise Refusal("bad_signature", f"pull root of {r} is not the group's")
        except Refusal as refusal:
            return self._refuse(env, refusal)
        self._keep_root(tree, message, encoded)
        return self._reply(env, MsgType.ACK, b"")
