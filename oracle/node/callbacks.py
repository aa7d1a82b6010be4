"""Callbacks per consumer — delivered, failed, skipped — derived from the oracle's logs.

The oracle emits ``CallbackFailed`` and ``CallbackSkipped`` but no event for a delivered
callback (MiraOracle is at the EIP-170 size limit: there is no room for one). A delivered
callback is derived instead, from what the subscriptions contract promises
(IMiraSubscriptions): every report that applies an update of a feed a consumer is subscribed
to calls that consumer exactly once, in the same transaction. So, over the scanned blocks,
for each report transaction (``ReportTransmitted``):

- the applied feeds are the report's updates (read back from the transaction's ``transmit``
  call data) minus those with an ``UpdateSkipped`` log in the same transaction;
- the consumers called are those subscribed, at that point of the chain, to at least one
  applied feed (their feeds are read with ``subscriptionOf`` at the block before the scan
  reaches them, then followed through ``FeedSubscribed``/``FeedUnsubscribed`` logs in order);
- each called consumer with a ``CallbackFailed`` log in that transaction counts as failed,
  with a ``CallbackSkipped`` log as skipped, otherwise as **delivered** (it was called with
  its full gas limit, returned without reverting and was charged).

A ``CallbackFailed``/``CallbackSkipped`` log for a consumer this derivation did not expect to
be called is counted as ``unexplained`` (it would mean the derivation is wrong; tests assert
it stays 0). A report sent through another contract (its call data is not ``transmit``'s)
cannot be read back: counted in ``unreadable_reports``, its callbacks not attributed.

Work and memory are bounded: at most ``LOG_SPAN`` blocks and ``MAX_REPORTS`` report
transactions read per call (a longer history is caught up over later calls), at most
``MAX_CONSUMERS`` consumers followed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from web3 import AsyncWeb3

from oracle.reporting.errors import ReportFormatError
from oracle.reporting.landed import transmit_arguments
from oracle.reporting.report import decode

MAX_CONSUMERS = 200
LOG_SPAN = 2000  # blocks of logs read per call
MAX_REPORTS = 100  # report transactions read back per call
CONCURRENT = 16  # of them read at once
EVENTS = (
    "ReportTransmitted",
    "UpdateSkipped",
    "FeedSubscribed",
    "FeedUnsubscribed",
    "CallbackFailed",
    "CallbackSkipped",
)


@dataclass
class Consumer:
    feeds: set[bytes] = field(default_factory=set)
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    unexplained: int = 0
    # False: its feeds could not be read where the scan met it, so delivered is unknown
    known: bool = True

    def counts(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered if self.known else None,
            "failed": self.failed,
            "skipped": self.skipped,
            "unexplained": self.unexplained,
        }


def _address(topic: Any) -> str:
    return AsyncWeb3.to_checksum_address("0x" + bytes(topic)[-20:].hex())


class CallbackLedger:
    """Follows the oracle's logs from ``LOG_SPAN`` blocks before the first :meth:`advance`."""

    def __init__(self, w3: AsyncWeb3[Any], oracle: Any) -> None:
        self.w3 = w3
        self.oracle = oracle  # the MiraOracle contract (its ABI has every event above)
        abi = {e["name"]: e for e in oracle.abi if e.get("type") == "event"}
        self.topics = {"0x" + bytes(event_abi_to_log_topic(abi[n])).hex(): n for n in EVENTS}
        self.scan_from: int | None = None
        self.scanned = -1
        self.consumers: dict[str, Consumer] = {}
        self.unreadable_reports = 0

    async def advance(self, tip: int, listed: Sequence[str]) -> None:
        """Scan on towards ``tip``; ``listed``: the consumers to follow (the subscribers of
        the node's feeds), beside any the logs name."""
        if self.scan_from is None:
            start = max(0, tip - LOG_SPAN)
            self.scan_from, self.scanned = start, start - 1
            try:
                await self._meet(listed, first=True)
            except Exception:  # the RPC keeps no state that old: count from the tip on
                self.consumers.clear()
                self.scan_from, self.scanned = tip + 1, tip
                await self._meet(listed)
        else:
            await self._meet(listed)
        if self.scanned >= tip:
            return
        end = min(tip, self.scanned + LOG_SPAN)
        logs = await self.w3.eth.get_logs(
            {
                "address": self.oracle.address,
                "topics": [list(self.topics)],
                "fromBlock": self.scanned + 1,
                "toBlock": end,
            }
        )
        mine = [e for e in logs if str(e["address"]).lower() == self.oracle.address.lower()]
        mine.sort(key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
        # at most MAX_REPORTS report transactions: stop before the block of the next one
        reports: list[bytes] = []
        for e in mine:
            if self._kind(e) == "ReportTransmitted" and bytes(e["transactionHash"]) not in reports:
                if len(reports) >= MAX_REPORTS and int(e["blockNumber"]) > self.scanned + 1:
                    end = int(e["blockNumber"]) - 1
                    break
                reports.append(bytes(e["transactionHash"]))
        mine = [e for e in mine if int(e["blockNumber"]) <= end]
        named = [_address(e["topics"][1]) for e in mine if self._kind(e) not in
                 ("ReportTransmitted", "UpdateSkipped")]  # fmt: skip
        await self._meet(named)
        # every RPC read first, then the fold, which awaits nothing: a failing read leaves
        # the counts as they were and the range to be read again, never counted twice
        applied: dict[bytes, set[bytes] | None] = {}
        if self.consumers:
            kept = {bytes(e["transactionHash"]) for e in mine}
            wanted = [tx for tx in reports if tx in kept]  # a cut-off block's: next time
            for i in range(0, len(wanted), CONCURRENT):
                chunk = wanted[i : i + CONCURRENT]
                found = await asyncio.gather(*(self._applied(tx, mine) for tx in chunk))
                applied.update(zip(chunk, found, strict=True))
        self._fold(mine, applied)
        self.scanned = end

    def _kind(self, entry: Any) -> str | None:
        topics = entry["topics"]
        return self.topics.get("0x" + bytes(topics[0]).hex()) if topics else None

    async def _meet(self, consumers: Sequence[str], *, first: bool = False) -> None:
        """Follow ``consumers`` not followed yet: their feeds as of block ``scanned``
        (``first``: the first call, which raises if that state cannot be read)."""
        for c in consumers:
            if c in self.consumers or len(self.consumers) >= MAX_CONSUMERS:
                continue
            entry = Consumer()
            if self.scanned >= 0:
                try:
                    *_, feeds = await self.oracle.functions.subscriptionOf(c).call(
                        block_identifier=self.scanned
                    )
                    entry.feeds = {bytes(f) for f in feeds}
                except Exception:
                    if first:
                        raise
                    entry.known = False
            self.consumers[c] = entry

    def _fold(self, logs: list[Any], applied_by_tx: dict[bytes, set[bytes] | None]) -> None:
        i = 0
        while i < len(logs):
            tx = bytes(logs[i]["transactionHash"])
            j = i
            while j < len(logs) and bytes(logs[j]["transactionHash"]) == tx:
                j += 1
            group, i = logs[i:j], j
            kinds = [(self._kind(e), e) for e in group]
            for kind, e in kinds:
                if kind in ("FeedSubscribed", "FeedUnsubscribed"):
                    c = self.consumers.get(_address(e["topics"][1]))
                    if c is not None:
                        feed = bytes(e["topics"][2])
                        (c.feeds.add if kind == "FeedSubscribed" else c.feeds.discard)(feed)
            if not any(k == "ReportTransmitted" for k, _ in kinds):
                continue
            outcome: dict[str, str] = {}
            for kind, e in kinds:
                if kind in ("CallbackFailed", "CallbackSkipped"):
                    outcome[_address(e["topics"][1])] = kind
            called: set[str] = set()
            if any(c.feeds for c in self.consumers.values()):
                applied = applied_by_tx.get(tx)
                if applied is None:  # who was called is unknown: only the logs count
                    self.unreadable_reports += 1
                    for address, kind in outcome.items():
                        if (c := self.consumers.get(address)) is not None:
                            c.failed += kind == "CallbackFailed"
                            c.skipped += kind == "CallbackSkipped"
                    continue
                called = {a for a, c in self.consumers.items() if c.feeds & applied}
            for address in called:
                c = self.consumers[address]
                kind = outcome.get(address)
                if kind == "CallbackFailed":
                    c.failed += 1
                elif kind == "CallbackSkipped":
                    c.skipped += 1
                else:
                    c.delivered += 1
            for address, kind in outcome.items():
                c = self.consumers.get(address)
                if c is not None and address not in called:
                    c.unexplained += 1
                    c.failed += kind == "CallbackFailed"
                    c.skipped += kind == "CallbackSkipped"

    async def _applied(self, tx_hash: bytes, logs: list[Any]) -> set[bytes] | None:
        """The feeds report transaction ``tx_hash`` applied (``logs``: the scanned logs,
        its UpdateSkipped among them); None if it is not readable."""
        tx = await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        try:
            report, _ = transmit_arguments(bytes(tx["input"]))
            updates = decode(report).updates
        except (ReportFormatError, ValueError, TypeError):
            return None
        skipped = {
            bytes(e["topics"][1])
            for e in logs
            if bytes(e["transactionHash"]) == tx_hash and self._kind(e) == "UpdateSkipped"
        }
        return {u.feed_id for u in updates} - skipped

    def counts(self, consumer: str) -> dict[str, Any]:
        c = self.consumers.get(consumer)
        if c is None:  # beyond MAX_CONSUMERS
            return {"delivered": None, "failed": None, "skipped": None, "unexplained": None}
        return c.counts()
