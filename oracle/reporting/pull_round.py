"""Pull roots: each round, the committee also signs one Merkle root over the current output
of every feed it carries (oracle.reporting.pull), one FROST signature whatever the number
of feeds. A separate signing round kind on the same protocol, beside the push round:

1. The leader's push round collects the observations (step 1 of
   oracle.reporting.protocol); the pull round reuses them, no second OBSERVE. Each feed
   with observations from a quorum gets its lower median as its leaf, unless the leader's
   own check (the followers' check, below) refuses it: that feed is left out of the root.
2. The leader picks ``threshold`` members whose observations agree with every leaf within
   tolerance (the push round's candidate rule), asks each for a nonce commitment
   (PULL_NONCE_REQUEST: the observation's nonce belongs to the push round) and sends them
   PULL_PROPOSE: the leaves and the signing set.
3. A follower signs only if (cheapest first): the request comes from the round's leader
   for a recent round; its nonce for this (round, attempt) is in the signing set; the
   leaves are at most as many as the feeds it carries, in strictly ascending feed id (no
   duplicate), each a feed it carries, and each passes ``check_update`` — the very rule
   a push report's updates pass (value within the feed's tolerance of its own output,
   observation time, model commitment); and it has signed no other root this round.
4. The leader aggregates, keeps the root, and sends it (PULL_ROOT: leaves + signature) to
   every member, which checks the signature against the group key before keeping it, so
   any member serves any root.

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
from itertools import pairwise
from typing import Any

import structlog

from oracle.crypto.errors import CryptoError
from oracle.crypto.frost import SignatureShare, SigningRound, aggregate, verify_signature_share
from oracle.crypto.nonces import SigningCommitment
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import Envelope, MsgType, Reader
from oracle.reporting import pull
from oracle.reporting.context import Collected, Refusal, lower_median
from oracle.reporting.errors import PullFormatError, ReportFormatError
from oracle.reporting.leader import Leader
from oracle.reporting.messages import (
    COMMITMENT_LEN,
    EVM_SIGNATURE_LEN,
    decode_commitment,
    decode_refusal,
    decode_share,
    encode_commitment,
    encode_share,
)
from oracle.reporting.pull_store import PullRoots, SignedRoot
from oracle.reporting.report import UPDATE_SIZE, FeedUpdate, decode_update, encode_update

log = structlog.get_logger(__name__)

#: Pull nonces are kept under (round, PULL_ATTEMPT_BASE + attempt) beside the push round's.
PULL_ATTEMPT_BASE = 256


def encode_leaves(leaves: tuple[FeedUpdate, ...]) -> bytes:
    return len(leaves).to_bytes(2, "big") + b"".join(encode_update(u) for u in leaves)


def _decode_leaves(r: Reader) -> tuple[FeedUpdate, ...]:
    out = []
    for _ in range(r.u16()):
        try:
            out.append(decode_update(r.take(UPDATE_SIZE)))
        except ReportFormatError as exc:
            raise MessageRejected("malformed", f"pull leaf: {exc}") from None
    return tuple(out)


def encode_proposal(
    leaves: tuple[FeedUpdate, ...], commitments: tuple[SigningCommitment, ...]
) -> bytes:
    return (
        encode_leaves(leaves)
        + len(commitments).to_bytes(1, "big")
        + b"".join(c.to_bytes() for c in commitments)
    )


def decode_proposal(data: bytes) -> tuple[tuple[FeedUpdate, ...], tuple[SigningCommitment, ...]]:
    r = Reader(data, "pull proposal")
    leaves = _decode_leaves(r)
    commitments = tuple(decode_commitment(r.take(COMMITMENT_LEN)) for _ in range(r.u8()))
    r.done()
    return leaves, commitments


def encode_root(leaves: tuple[FeedUpdate, ...], signature: bytes) -> bytes:
    return encode_leaves(leaves) + signature


def decode_root(data: bytes) -> tuple[tuple[FeedUpdate, ...], bytes]:
    r = Reader(data, "pull root")
    leaves = _decode_leaves(r)
    signature = r.take(EVM_SIGNATURE_LEN)
    r.done()
    return leaves, signature


class PullRounds(Leader):
    """The pull round, both sides (see the module docstring)."""

    def __init__(self, *args: Any, pull_roots: PullRoots | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `is None`, not `or`: an empty PullRoots is falsy (len 0) and is still the node's
        self.pull_roots = (
            PullRoots(self.config.pull_retention) if pull_roots is None else pull_roots
        )
        self._pull_signed: dict[int, bytes] = {}  # round → the root this node signed
        self._pull_led: set[int] = set()
        self.pull_roots_led = 0

    def _register_handlers(self) -> None:
        super()._register_handlers()
        self.transport.on(MsgType.PULL_NONCE_REQUEST, self._on_pull_nonce_request)
        self.transport.on(MsgType.PULL_PROPOSE, self._on_pull_propose)
        self.transport.on(MsgType.PULL_ROOT, self._on_pull_root)

    # -- leader --------------------------------------------------------------------------

    def _observed(self, r: int, collected: dict[int, Collected]) -> None:
        if self.config.pull_verifier is None or r in self._pull_led:
            return
        self._pull_led.add(r)
        while len(self._pull_led) > 64:
            self._pull_led.discard(min(self._pull_led))
        self._spawn(self._lead_pull_safely(r, dict(collected)), f"pull-{r}")

    async def _lead_pull_safely(self, r: int, collected: dict[int, Collected]) -> None:
        try:
            await self.lead_pull(r, collected)
        except Exception as exc:
            self.metrics.rounds.labels("pull_error").inc()
            log.exception("pull.failed", round=r, error=str(exc))

    def pull_leaves(self, collected: dict[int, Collected]) -> tuple[FeedUpdate, ...]:
        """Each carried feed's lower median, where a quorum observed it and this node's
        own check passes (a leaf the followers would refuse would sink the whole root)."""
        mine = self.outputs.latest_outputs()
        leaves = []
        for feed_id in sorted(self.policies):
            values = [
                (c.by_feed[feed_id].value, who, c.by_feed[feed_id])
                for who, c in collected.items()
                if feed_id in c.by_feed
            ]
            if len(values) < self.ctx.quorum:
                continue
            median = lower_median(values)
            try:
                self.check_update(self.policies[feed_id], median, mine)
            except Refusal:
                continue
            leaves.append(median)
        return tuple(leaves)

    async def lead_pull(self, r: int, collected: dict[int, Collected]) -> SignedRoot | None:
        """Have the round's pull root signed; keep it and send it to every member."""
        verifier = self.config.pull_verifier
        assert verifier is not None
        ctx = self.ctx
        leaves = self.pull_leaves(collected)
        if not leaves:
            return None
        started = time.perf_counter()
        tree = pull.PullTree.build(r, leaves)
        message = pull.digest(ctx.chain_id, verifier, ctx.epoch, r, tree.root, tree.leaf_count)
        candidates = self._candidates(collected, list(leaves))
        excluded: set[int] = set()
        for attempt in range(self.config.max_attempts):
            pool = [w for w in candidates if w not in excluded]
            commitments = await self._pull_nonces(r, attempt, pool)
            ready = [w for w in pool if w in commitments]
            if len(ready) < ctx.threshold:
                log.warning("pull.too_few_signers", round=r, attempt=attempt, ready=len(ready))
                return None
            chosen = self._signers(r, ready)
            round_ = SigningRound.build(
                MIRA_EVM, ctx.public, message, [commitments[w] for w in chosen]
            )
            proposal = encode_proposal(leaves, round_.commitments)
            shares = await self._pull_shares(r, attempt, round_, chosen, proposal)
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
            payload = encode_root(leaves, encoded)
            for p in ctx.peers:
                if p.index != ctx.self_index:
                    self._spawn(
                        self._ask(
                            p,
                            MsgType.PULL_ROOT,
                            r,
                            0,
                            payload,
                            frozenset({MsgType.ACK}),
                            self.config.sign_timeout_s,
                        ),
                        f"pull-root-{r}-{p.index}",
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
        me = self.ctx.self_index
        out: dict[int, SigningCommitment] = {}
        if me in pool:
            with contextlib.suppress(Refusal):
                out[me] = self._issue_nonce(r, PULL_ATTEMPT_BASE + attempt)
        timeout = self.config.observe_timeout_s
        asks = {
            w: asyncio.create_task(
                self._ask(
                    self.ctx.peers[w],
                    MsgType.PULL_NONCE_REQUEST,
                    r,
                    attempt,
                    b"",
                    frozenset({MsgType.NONCE, MsgType.REFUSE}),
                    timeout,
                )
            )
            for w in pool
            if w != me
        }
        for who, env in (await self._gather(asks, timeout)).items():
            if env.header.type != MsgType.NONCE:
                continue
            try:
                com = decode_commitment(env.payload)
            except MessageRejected as exc:
                self.auth.reject(exc, f"member {who}")
                continue
            if com.identifier == who + 1:
                out[who] = com
            else:
                self._name_offender(r, attempt, who, "forged_nonce")
        return out

    async def _pull_shares(
        self, r: int, attempt: int, round_: SigningRound, chosen: list[int], proposal: bytes
    ) -> dict[int, int]:
        me = self.ctx.self_index
        shares: dict[int, int] = {}
        if me in chosen:
            shares[me] = self.ctx.signer.sign(round_).z
            self._nonces.pop((r, PULL_ATTEMPT_BASE + attempt), None)
        timeout = self.config.sign_timeout_s
        asks = {
            w: asyncio.create_task(
                self._ask(
                    self.ctx.peers[w],
                    MsgType.PULL_PROPOSE,
                    r,
                    attempt,
                    proposal,
                    frozenset({MsgType.SHARE, MsgType.REFUSE}),
                    timeout,
                )
            )
            for w in chosen
            if w != me
        }
        for who, env in (await self._gather(asks, timeout)).items():
            if env.header.type == MsgType.REFUSE:
                log.warning(
                    "pull.follower_refused",
                    round=r,
                    member=who,
                    reason=decode_refusal(env.payload),
                )
                continue
            try:
                shares[who] = decode_share(env.payload)
            except MessageRejected as exc:
                self.auth.reject(exc, f"member {who}")
        return shares

    # -- follower ------------------------------------------------------------------------

    def _check_pull_request(self, env: Envelope) -> bytes:
        """The pull verifier, once the request is one this node answers at all."""
        if self.config.pull_verifier is None:
            raise Refusal("pull_disabled", "this node signs no pull roots")
        self._check_leader(env)
        return self.config.pull_verifier

    async def _on_pull_nonce_request(self, env: Envelope) -> bytes:
        try:
            self._check_pull_request(env)
            h = env.header
            com = self._issue_nonce(h.round, PULL_ATTEMPT_BASE + h.attempt)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.NONCE, encode_commitment(com))

    async def _on_pull_propose(self, env: Envelope) -> bytes:
        try:
            share = self._check_and_sign_pull(env)
        except Refusal as refusal:
            return self._refuse(env, refusal)
        return self._reply(env, MsgType.SHARE, encode_share(share))

    def check_pull_leaves(self, leaves: tuple[FeedUpdate, ...]) -> None:
        """Would this node sign a root over ``leaves``? Refusal saying why not."""
        if not leaves:
            raise Refusal("no_leaves", "a pull root has at least one leaf")
        if len(leaves) > len(self.policies):
            raise Refusal(
                "too_many_leaves", f"{len(leaves)} leaves, this node carries {len(self.policies)}"
            )
        for prev, cur in pairwise(leaves):
            if prev.feed_id == cur.feed_id:
                raise Refusal("duplicate_feed", f"feed 0x{cur.feed_id.hex()} appears twice")
            if prev.feed_id > cur.feed_id:
                raise Refusal("unsorted_leaves", "leaves are not in ascending feed id order")
        for leaf in leaves:
            if leaf.feed_id not in self.policies:
                raise Refusal("unknown_feed", f"feed 0x{leaf.feed_id.hex()} is not served here")
        mine = self.outputs.latest_outputs()
        for leaf in leaves:
            self.check_update(self.policies[leaf.feed_id], leaf, mine)

    def _check_and_sign_pull(self, env: Envelope) -> int:
        verifier = self._check_pull_request(env)
        h, ctx = env.header, self.ctx
        try:
            leaves, commitments = decode_proposal(env.payload)
        except MessageRejected as exc:
            raise Refusal("malformed", exc.detail) from None
        key = (h.round, PULL_ATTEMPT_BASE + h.attempt)
        issued = self._nonces.get(key)
        mine = [c for c in commitments if c.identifier == ctx.self_index + 1]
        if issued is None or mine != [issued]:
            raise Refusal("nonce", f"no pull commitment issued by this node for {h.round}")
        self.check_pull_leaves(leaves)
        try:
            tree = pull.PullTree.build(h.round, leaves)
            message = pull.digest(
                ctx.chain_id, verifier, ctx.epoch, h.round, tree.root, tree.leaf_count
            )
        except PullFormatError as exc:
            raise Refusal("malformed", str(exc)) from None
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
            verifier = self._check_pull_request(env)
            try:
                leaves, encoded = decode_root(env.payload)
                tree = pull.PullTree.build(env.header.round, leaves)
                message = pull.digest(
                    self.ctx.chain_id,
                    verifier,
                    self.ctx.epoch,
                    tree.round,
                    tree.root,
                    tree.leaf_count,
                )
            except (MessageRejected, PullFormatError) as exc:
                raise Refusal("malformed", str(exc)) from None
            if not MIRA_EVM.verify(self.ctx.public.group_key, message, encoded):
                raise Refusal("bad_signature", f"pull root of {tree.round} is not the group's")
        except Refusal as refusal:
            return self._refuse(env, refusal)
        self._keep_root(tree, message, encoded)
        return self._reply(env, MsgType.ACK, b"")
