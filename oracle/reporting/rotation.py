"""The transmission rotation: signed reports received or led, sent on-chain in turn."""

from __future__ import annotations

import asyncio
import time

import structlog

from oracle.chain.oracle_calls import signature_struct
from oracle.crypto.suites import MIRA_EVM
from oracle.p2p.errors import MessageRejected
from oracle.p2p.wire import Envelope, MsgType
from oracle.reporting import rounds
from oracle.reporting.context import (
    Pending,
    Refusal,
)
from oracle.reporting.core import RoundCore
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.messages import (
    SignedReport,
)
from oracle.reporting.report import Report, decode, digest
from oracle.reporting.store import report_hash
from oracle.reporting.transmit import Fate

log = structlog.get_logger(__name__)


class TransmitRotation(RoundCore):
    """A signed report's way on-chain: every member takes it, and the members transmit in
    a rotation (``members[(slot+1+k) mod n]`` after ``k`` timeouts) until it lands."""

    def _register_handlers(self) -> None:
        super()._register_handlers()
        self.transport.on(MsgType.REPORT, self._on_report)

    async def _on_report(self, env: Envelope) -> bytes:
        h = env.header
        try:
            if h.epoch != self.ctx.epoch or h.sender != self.leader_of(h.round):
                raise Refusal("not_leader", f"REPORT for round {h.round} from member {h.sender}")
            signed = SignedReport.decode(env.payload)
            report = decode(signed.report)
            if report.epoch != self.ctx.epoch or report.round != h.round:
                raise Refusal("wrong_round", "report does not match the message's round")
            message = digest(self.ctx.chain_id, self.ctx.oracle, self.ctx.epoch, signed.report)
            # Only a report the group key signed is worth gas; a leader cannot fake one.
            if not MIRA_EVM.verify(self.ctx.public.group_key, message, signed.signature):
                raise Refusal("bad_report_signature", f"round {h.round}")
        except MessageRejected as exc:
            return self._refuse(env, Refusal("malformed", exc.detail))
        except (Refusal, ReportFormatError) as exc:
            refusal = exc if isinstance(exc, Refusal) else Refusal("malformed", str(exc))
            return self._refuse(env, refusal)
        self.store.save_signed(self.ctx.epoch, h.round, signed.report, signed.signature)
        self._accept_report(report, signed.report, signed.signature)
        return self._reply(env, MsgType.ACK, b"")

    def _accept_report(self, report: Report, report_bytes: bytes, signature: bytes) -> None:
        now = time.monotonic()
        for u in report.updates:
            prev = self._pending.get(u.feed_id)
            if prev is None or prev.round < report.round:
                self._pending[u.feed_id] = Pending(report.round, u.value, u.observed_at, now)
        self.last_report_round = max(self.last_report_round or 0, report.round)
        key = report_hash(report_bytes)
        if key in self._transmitting:
            return
        task = asyncio.create_task(
            self._transmit(report, report_bytes, signature, time.time()), name=f"tx-{report.round}"
        )
        self._transmitting[key] = task
        task.add_done_callback(lambda _: self._transmitting.pop(key, None))

    def _resume_transmissions(self) -> None:
        """After a restart: resume the duty for recent signed reports (each is checked
        on-chain first, and a report this node already sent is never sent again)."""
        since = int((time.time() - self.config.report_max_age_s) * 1000)
        for row in self.store.signed_reports_since(self.ctx.epoch, since):
            if row.signature is None:
                continue
            try:
                report = decode(row.payload)
            except ReportFormatError:
                continue
            self._accept_report(report, row.payload, row.signature)

    async def landed(self, report: Report) -> bool:
        latest = await self.transmitter.latest([u.feed_id for u in report.updates])
        # an unregistered feed never lands (the contract skips it): do not wait for it
        return all(
            not v.registered or v.round >= report.round
            for v in (latest[u.feed_id] for u in report.updates)
        )

    async def _transmit(
        self, report: Report, report_bytes: bytes, signature: bytes, created: float
    ) -> None:
        ctx, cfg = self.ctx, self.config
        slot = rounds.slot_of(report.round, self.period_ms)
        order = [(slot + 1 + k) % ctx.n for k in range(ctx.n)]
        position = order.index(ctx.self_index)
        # The designated transmitter sends at once; member k of the rotation waits k
        # timeouts, then sends only if the report is still not on-chain.
        await asyncio.sleep(position * cfg.transmit_timeout_s)
        message = digest(ctx.chain_id, ctx.oracle, ctx.epoch, report_bytes)
        sig = signature_struct(ctx.public.group_key, message, signature)
        while self._running and time.time() - created < cfg.report_max_age_s:
            try:
                if await self.landed(report):
                    return
            except Exception as exc:
                self.metrics.chain_errors.inc()
                log.debug("transmit.check_failed", round=report.round, error=str(exc)[:200])
                await asyncio.sleep(0.5)
                continue
            # The transmitter's durable queue is the record, keyed by the report hash:
            # submitting again returns the same transmission, never a second send.
            result = await self.transmitter.submit(report_bytes, sig, report.round)
            self.metrics.transmissions.labels(result.fate.value).inc()
            log.info(
                "transmit.result",
                round=report.round,
                fate=result.fate.value,
                position=position,
                gas=result.gas_used,
                detail=result.detail[:200],
            )
            if result.fate in (Fate.LANDED, Fate.ALREADY_APPLIED, Fate.REJECTED):
                return
            await asyncio.sleep(0.5)
