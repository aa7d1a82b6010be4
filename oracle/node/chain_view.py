"""What the API shows of the chain (``GET /v1/chain``): the chain id and block, this node's
transmitter balance, and per feed it publishes its proxy and the round it has on-chain.

The API is open to anyone, so a read is shared: at most one set of RPC calls per
``min_interval_s`` however many clients ask (the others get the last answer), and a
failing RPC is an ``error`` field, never an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from web3 import AsyncWeb3

from oracle import artifacts
from oracle.chain.rpc import async_web3

log = structlog.get_logger(__name__)

_ZERO = "0x" + "00" * 20
MAX_CONSUMERS = 200  # listed per read; a feed's subscribers are capped on-chain too
LOG_SPAN = 2000  # blocks of callback events read per read: bounded work per request


@dataclass(frozen=True)
class ChainFeed:
    id: str
    id_bytes32: bytes
    decimals: int


class ChainView:
    def __init__(
        self,
        rpc_url: str,
        oracle: str,
        feeds: Sequence[ChainFeed],
        transmitter: Callable[[], str | None],
        *,
        rpc_timeout_s: float,
        min_interval_s: float = 1.0,
    ) -> None:
        self.w3 = async_web3(rpc_url, timeout_s=rpc_timeout_s)
        self.oracle_address = AsyncWeb3.to_checksum_address(oracle)
        self.oracle = self.w3.eth.contract(
            address=self.oracle_address, abi=artifacts.load("MiraOracle").abi
        )
        self.feeds = list(feeds)
        self.transmitter = transmitter
        self.min_interval_s = min_interval_s
        self._proxies: dict[str, str] = {}
        # callback failures and skips per consumer, from the oracle's events, counted from
        # block ``_scan_from`` (LOG_SPAN before the first read) up to ``_scanned``
        self._scan_from: int | None = None
        self._scanned = -1
        self._callbacks: dict[str, dict[str, int]] = {}
        self._last: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._at < self.min_interval_s:
                return self._last
            try:
                out = await self._read()
            except Exception as exc:  # the RPC is down or the oracle is not there
                log.debug("chain_view.unread", error=str(exc)[:200])
                out = {"error": f"reading the chain: {type(exc).__name__}: {exc}"[:300]}
            out["oracle"] = self.oracle_address
            self._last, self._at = out, time.monotonic()
            return out

    async def _read(self) -> dict[str, Any]:
        eth = self.w3.eth
        block = await eth.get_block("latest")
        out: dict[str, Any] = {
            "chain_id": await eth.chain_id,
            "block": int(block["number"]),
            "block_time": int(block["timestamp"]),
        }
        sender = self.transmitter()
        if sender:
            balance = await eth.get_balance(AsyncWeb3.to_checksum_address(sender))
            out["transmitter"] = {"address": sender, "balance_wei": str(balance)}
        feeds = []
        for feed in self.feeds:
            entry: dict[str, Any] = {
                "id": feed.id,
                "feed_id_bytes32": "0x" + feed.id_bytes32.hex(),
                "decimals": feed.decimals,
            }
            proxy = self._proxies.get(feed.id)
            if proxy is None:
                proxy = str(await self.oracle.functions.proxyOf(feed.id_bytes32).call())
                if proxy.lower() != _ZERO:
                    self._proxies[feed.id] = proxy
            entry["proxy"] = None if proxy.lower() == _ZERO else proxy
            if entry["proxy"] is not None:
                try:
                    rid, answer, _, updated, _ = await self.oracle.functions.latestRoundData(
                        feed.id_bytes32
                    ).call()
                except Exception:  # registered, no round yet: some oracles revert
                    rid, answer, updated = 0, 0, 0
                if int(updated) != 0:
                    entry["round_id"] = str(int(rid))  # phase << 64 | count: > 2^53
                    entry["round"] = int(rid) & (2**64 - 1)
                    entry["value"] = str(int(answer))
                    entry["updated_at"] = int(updated)
            feeds.append(entry)
        out["feeds"] = feeds
        try:
            out["subscriptions"] = await self._subscriptions(feeds, int(block["number"]))
        except Exception as exc:  # an oracle without subscriptions, or the RPC failed
            out["subscriptions"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return out

    async def _subscriptions(self, feeds: list[dict[str, Any]], tip: int) -> dict[str, Any]:
        """Consumers of this node's feeds with their deposits, and the callbacks the oracle
        reported failed or skipped (it emits no event for a delivered one)."""
        fns = self.oracle.functions
        consumers: list[str] = []
        for feed, entry in zip(self.feeds, feeds, strict=True):
            subs = [str(a) for a in await fns.subscribersOf(feed.id_bytes32).call()]
            entry["subscribers"] = len(subs)
            consumers += [a for a in subs if a not in consumers]
        if self._scan_from is None:
            self._scan_from = max(0, tip - LOG_SPAN)
            self._scanned = self._scan_from - 1
        end = min(tip, self._scanned + LOG_SPAN)
        if end > self._scanned:
            for kind, event in (
                ("failed", self.oracle.events.CallbackFailed),
                ("skipped", self.oracle.events.CallbackSkipped),
            ):
                for log_ in await event.get_logs(from_block=self._scanned + 1, to_block=end):
                    who = str(log_["args"]["consumer"])
                    if who in self._callbacks or len(self._callbacks) < MAX_CONSUMERS:
                        counts = self._callbacks.setdefault(who, {"failed": 0, "skipped": 0})
                        counts[kind] += 1
            self._scanned = end
        names = {f.id_bytes32: f.id for f in self.feeds}
        listed = []
        for consumer in consumers[:MAX_CONSUMERS]:
            owner, gas_limit, balance, feed_ids = await fns.subscriptionOf(consumer).call()
            listed.append(
                {
                    "consumer": consumer,
                    "owner": str(owner),
                    "gas_limit": int(gas_limit),
                    "balance_wei": str(int(balance)),
                    "feeds": [names.get(bytes(f), "0x" + bytes(f).hex()) for f in feed_ids],
                    "callbacks": self._callbacks.get(consumer, {"failed": 0, "skipped": 0}),
                }
            )
        return {
            "consumers": listed,
            "more": len(consumers) > MAX_CONSUMERS,
            "callbacks_counted_from_block": self._scan_from,
            "callbacks_counted_to_block": self._scanned,
        }
