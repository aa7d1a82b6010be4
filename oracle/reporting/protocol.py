"""The reporting round: observe → median report → follower checks → FROST shares →
aggregate → rotating transmission.

Rounds are numbered by the clock: a round is the start of its slot in unix milliseconds
(``oracle.reporting.rounds``), so every member agrees on the round and its leader
``members[slot mod n]`` without a consensus step, a restarted node never reuses a round
number, changing the period never moves rounds backwards, and a dead leader costs one
round, not a view change.

One round, as the leader L runs it:

1. L asks every member for an OBSERVATION: its latest output per feed (value, observation
   time, model commitment) and a fresh FROST nonce commitment (pre-published, so signing
   needs no extra round trip). Each observation is signed by its author.
2. With observations from at least 2f+1 members, L takes for each feed the lower median
   of the observed values (an actual observation, so its time and model commitment come
   with it; with at most f liars among ≥ 2f+1 values the median lies within the honest
   range). Feeds that are due — deviation from the last reported value ≥ the feed's
   ``deviation_bps``, or its heartbeat elapsed — go into one report.
3. L chooses t signers among the members whose own observations agree with the report
   within each feed's tolerance, and sends them a PROPOSAL: the report, every signed
   observation it was computed from, and the signers' nonce commitments.
4. A follower signs only if (cheapest checks first, so a flood of proposals costs little):
   the proposal comes from the round's leader, for an attempt ≤ ``max_attempts``; its
   nonce commitment is the one it issued for this (round, attempt); each observation (at
   most n, no author twice) is authentic, of this round, and the report is exactly their
   median; *its own output* for the same observation time (or, if it has none for that
   second, its latest, whose time must then lie within the feed's ``max_skew_s``) is
   within ``tolerance_bps`` of every value — a replayed or fast-moving feed may have moved
   on by one row between the leader's OBSERVE and its PROPOSAL; the model commitment is
   its own for that very observation (a model is deterministic; without that output it
   cannot check and refuses) or, for feeds without a model, the static one — the median's
   author alone must not choose what goes on-chain; and it has not signed a different
   report for this round (durably recorded). The nonce pair is marked used in the
   database before the share is computed (oracle.crypto.frost.Signer).
5. L verifies every share. A bad one names its signer (log, metric, API); L retries with
   fresh nonces from the honest members, up to ``max_attempts``. A member whose nonce
   commitment carries another identifier than its own is named the same way and left out
   (it would make the signing set invalid for everyone). L applies the followers' checks
   to each median first and leaves out an observation whose time or model commitment
   they would refuse.
6. L broadcasts the signed report. Transmitters rotate: ``members[(r+1+k) mod n]`` sends
   after ``k · transmit_timeout_s`` unless the report is on-chain by then, so no single
   node can stall a feed.

The protocol is split by job: :mod:`oracle.reporting.context` (what a round runs on),
:mod:`~oracle.reporting.core` (shared state, chain view, messaging),
:mod:`~oracle.reporting.follower`, :mod:`~oracle.reporting.leader` and
:mod:`~oracle.reporting.rotation` (the transmission rotation); :class:`RoundProtocol`
composes them.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from oracle.reporting.context import (
    EpochContext,
    FeedPolicy,
    OutputSource,
    ProtocolConfig,
    Refusal,
    RoundMetrics,
    lower_median,
)
from oracle.reporting.pull_round import PullRounds

log = structlog.get_logger(__name__)


class RoundProtocol(PullRounds):
    """One member's round protocol for one epoch: a follower in every round, the leader in
    its own, and a transmitter in the rotation of every signed report."""

    async def start(self) -> None:
        self._running = True
        self._resume_transmissions()
        self._poller = asyncio.create_task(self._poll_chain(), name="chain-poll")
        self._main = asyncio.create_task(self._run(), name="rounds")

    async def stop(self) -> None:
        self._running = False
        tasks = [t for t in (self._main, self._poller) if t is not None]
        tasks += list(self._tasks) + list(self._transmitting.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        period = self.period_ms
        next_round = self.now_round() + period
        while self._running:
            await asyncio.sleep(max(0.0, next_round / 1000 - time.time()))
            r = next_round
            next_round = max(r + period, self.now_round() + period)
            if self.leader_of(r) == self.ctx.self_index:
                self._spawn(self._lead_safely(r), f"lead-{r}")
                if self.config.pull_verifier is not None:
                    self._spawn(self.lead_pull_safely(r), f"pull-{r}")

    async def _lead_safely(self, r: int) -> None:
        try:
            await self.lead(r)
        except Exception as exc:
            self.metrics.rounds.labels("error").inc()
            log.exception("round.failed", round=r, error=str(exc))

    def status(self) -> dict[str, object]:
        return {
            "epoch": self.ctx.epoch,
            "self_index": self.ctx.self_index,
            "n": self.ctx.n,
            "threshold": self.ctx.threshold,
            "round": self.now_round(),
            "last_report_round": self.last_report_round,
            "reports_led": self.reports_led,
            "pull_roots_led": self.pull_roots_led,
            "pull_roots_kept": len(self.pull_roots),
            # every member named for an offence, with counts by kind
            "bad_signers": {
                str(i): {**counts, "operator": self.ctx.operators[i]}
                for i, counts in sorted(self.offences.items())
            },
            "transmitting": len(self._transmitting),
        }


__all__ = [
    "EpochContext",
    "FeedPolicy",
    "OutputSource",
    "ProtocolConfig",
    "Refusal",
    "RoundMetrics",
    "RoundProtocol",
    "lower_median",
]
