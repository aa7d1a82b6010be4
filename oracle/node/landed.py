"""The landed-report follower as a node service: reads the oracle's landed reports from the
chain (oracle.reporting.landed) and publishes them to the API's report stream.

It follows the chain, not this node's own transmissions, so every node streams every
report, whichever member transmitted it. Like the other chain-facing services it never
blocks the node's start: while the RPC does not answer it retries, and its health says why.
"""

from __future__ import annotations

import asyncio

import structlog

from oracle.api.stream import ReportStream
from oracle.chain.rpc import async_web3, close_async_web3
from oracle.node.transmission import STARTUP_BACKOFF
from oracle.reporting.landed import LandedScanner
from oracle.retry import wait_after_failure
from oracle.service import Health

log = structlog.get_logger(__name__)


class LandedReportService:
    name = "report-stream"

    def __init__(
        self,
        rpc_url: str,
        oracle: str,
        stream: ReportStream,
        *,
        poll_s: float,
        rpc_timeout_s: float,
    ) -> None:
        self._w3 = async_web3(rpc_url, timeout_s=rpc_timeout_s)
        self.scanner = LandedScanner(self._w3, oracle)
        self.stream = stream
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._problem = "not started"

    async def start(self) -> None:
        self._problem = ""
        self._task = asyncio.create_task(self._follow(), name="report-stream")

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                for landed in await self.scanner.poll():
                    self.stream.publish(landed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._problem = f"reading landed reports: {type(exc).__name__}: {exc}"[:300]
                await wait_after_failure(failures, STARTUP_BACKOFF, log, "stream.poll_retry", exc)
                continue
            failures, self._problem = 0, ""
            await asyncio.sleep(self.poll_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await close_async_web3(self._w3)
        self._problem = "stopped"

    def health(self) -> Health:
        # streaming is a convenience beside the node's job (reporting): a failing read is
        # said in the detail, not made a reason to call the node unready
        return Health(True, self._problem)
