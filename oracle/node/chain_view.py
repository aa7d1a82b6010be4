"""What the API shows of the chain (``GET /v1/chain``): the chain id and block, this node's
transmitter balance, per feed it publishes (its own specs' and those of the models
registered on-chain that it runs now: ``feeds()`` is read at each read) its proxy and the
round it has on-chain, and the subscriptions to those feeds with their callbacks delivered,
failed and skipped (oracle.node.callbacks).

The API is open to anyone, so a read is shared: at most one set of RPC calls per
``min_interval_s`` however many clients ask (the others get the last answer), and a
failing RPC is an ``error`` field, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from web3 import AsyncWeb3

from oracle import artifacts
from oracle.chain.rpc import async_web3, close_async_web3
from oracle.node.callbacks import MAX_CONSUMERS, CallbackLedger

log = structlog.get_logger(__name__)

_ZERO = "0x" + "00" * 20
COUNT_WAIT_S = 1.0  # a read waits this long for the callback counts to advance
CONCURRENT = 16  # RPC calls of one read at once
MAX_FEEDS = 256  # feeds read per read (a node's own and registered models'): bounded work


async def _bounded(calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``calls`` CONCURRENT at a time; their results in order."""
    out: list[Any] = []
    for i in range(0, len(calls), CONCURRENT):
        out += await asyncio.gather(*(c() for c in calls[i : i + CONCURRENT]))
    return out


class SharedRead:
    """One read shared by every caller (the API is open to anyone: clients cannot multiply
    the RPC calls), and no caller waits for the RPC once there is an answer: an answer older
    than ``min_interval_s`` is served while one background read (at a time) replaces it, so
    a slow RPC makes the answer older (its ``block`` says how old), never the API slow.
    Only the first read is waited for (:meth:`warm` starts it early). A failure is an
    ``error`` field."""

    def __init__(
        self, read: Callable[[], Awaitable[dict[str, Any]]], min_interval_s: float
    ) -> None:
        self._read = read
        self.min_interval_s = min_interval_s
        self._last: dict[str, Any] | None = None
        self._at = 0.0
        self._task: asyncio.Task[dict[str, Any]] | None = None

    async def read(self) -> dict[str, Any]:
        if self._last is not None:
            if time.monotonic() - self._at >= self.min_interval_s:
                self.warm()
            return self._last
        return await asyncio.shield(self.warm())

    def warm(self) -> asyncio.Task[dict[str, Any]]:
        """Start a read unless one is under way; the task that reads."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh())
        return self._task

    async def _refresh(self) -> dict[str, Any]:
        try:
            out = await self._read()
        except Exception as exc:  # the RPC is down or the contract is not there
            log.debug("chain_view.unread", error=str(exc)[:200])
            out = {"error": f"reading the chain: {type(exc).__name__}: {exc}"[:300]}
        self._last, self._at = out, time.monotonic()
        return out

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


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
        feeds: Callable[[], Sequence[ChainFeed]],
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
        self.feeds = feeds
        self.transmitter = transmitter
        self._proxies: dict[str, str] = {}
        self.callbacks = CallbackLedger(self.w3, self.oracle)
        self.callbacks_error: str | None = None  # the last count's failure, if it failed
        self._counting: asyncio.Task[None] | None = None
        self._shared = SharedRead(self._read, min_interval_s)

    async def read(self) -> dict[str, Any]:
        return {**await self._shared.read(), "oracle": self.oracle_address}

    def warm(self) -> None:
        self._shared.warm()

    def current_feeds(self) -> list[ChainFeed]:
        """The feeds the node publishes now, each once, at most MAX_FEEDS."""
        seen: dict[str, ChainFeed] = {}
        for feed in self.feeds():
            if feed.id not in seen and len(seen) < MAX_FEEDS:
                seen[feed.id] = feed
        return list(seen.values())

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
        current = self.current_feeds()
        # proxies of feeds no longer run (a registered model deactivated) are forgotten
        ids = {f.id for f in current}
        self._proxies = {k: v for k, v in self._proxies.items() if k in ids}
        feeds = await _bounded(
            [lambda f=f: self._feed(f) for f in current]  # type: ignore[misc]
        )
        out["feeds"] = feeds
        out["feeds_more"] = len({f.id for f in self.feeds()}) > len(current)
        try:
            out["subscriptions"] = await self._subscriptions(current, feeds, int(block["number"]))
        except Exception as exc:  # an oracle without subscriptions, or the RPC failed
            out["subscriptions"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        for entry in feeds:
            entry.pop("_consumers", None)
        return out

    async def _count_callbacks(self, tip: int, consumers: list[str]) -> None:
        """Advance the callback counts towards ``tip``, waiting for that at most
        ``COUNT_WAIT_S``: a long catch-up goes on in the background (one at a time) and the
        answer says how far the counts go, so no client waits for it."""
        if self._counting is None or self._counting.done():
            self._counting = asyncio.create_task(self.callbacks.advance(tip, consumers))
        task = self._counting
        # a count that fails (the RPC) is said in callbacks_error; the next read tries again
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), COUNT_WAIT_S)
        if task.done() and not task.cancelled():
            err = task.exception()
            self.callbacks_error = None if err is None else f"{type(err).__name__}: {err}"[:300]

    async def close(self) -> None:
        """Stop a background read or count and close the RPC client's connections (the
        node is stopping)."""
        self._shared.close()
        if self._counting is not None:
            self._counting.cancel()
        await close_async_web3(self.w3)

    async def _feed(self, feed: ChainFeed) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": feed.id,
            "feed_id_bytes32": "0x" + feed.id_bytes32.hex(),
            "decimals": feed.decimals,
        }
        fns = self.oracle.functions
        proxy = self._proxies.get(feed.id)
        if proxy is None:
            proxy = str(await fns.proxyOf(feed.id_bytes32).call())
            if proxy.lower() != _ZERO:
                self._proxies[feed.id] = proxy
        entry["proxy"] = None if proxy.lower() == _ZERO else proxy
        if entry["proxy"] is not None:
            try:
                rid, answer, _, updated, _ = await fns.latestRoundData(feed.id_bytes32).call()
            except Exception:  # registered, no round yet: some oracles revert
                rid, answer, updated = 0, 0, 0
            if int(updated) != 0:
                entry["round_id"] = str(int(rid))  # phase << 64 | count: > 2^53
                entry["round"] = int(rid) & (2**64 - 1)
                entry["value"] = str(int(answer))
                entry["updated_at"] = int(updated)
        subs = [str(a) for a in await fns.subscribersOf(feed.id_bytes32).call()]
        entry["subscribers"] = len(subs)
        entry["_consumers"] = subs
        return entry

    async def _subscriptions(
        self, current: list[ChainFeed], feeds: list[dict[str, Any]], tip: int
    ) -> dict[str, Any]:
        """Consumers of this node's feeds with their deposits, and their callbacks delivered,
        failed and skipped over the blocks scanned (oracle.node.callbacks)."""
        fns = self.oracle.functions
        consumers: list[str] = []
        for entry in feeds:
            consumers += [a for a in entry.pop("_consumers") if a not in consumers]
        consumers = consumers[:MAX_CONSUMERS]
        await self._count_callbacks(tip, consumers)
        # the counts and how far they go, as one snapshot (a background count goes on)
        led = self.callbacks
        counts = {c: led.counts(c) for c in consumers}
        scan = (led.scan_from, led.scanned, led.unreadable_reports)
        names = {f.id_bytes32: f.id for f in current}

        async def one(consumer: str) -> dict[str, Any]:
            owner, gas_limit, balance, feed_ids = await fns.subscriptionOf(consumer).call()
            return {
                "consumer": consumer,
                "owner": str(owner),
                "gas_limit": int(gas_limit),
                "balance_wei": str(int(balance)),
                "feeds": [names.get(bytes(f), "0x" + bytes(f).hex()) for f in feed_ids],
                "callbacks": counts[consumer],
            }

        listed = await _bounded([lambda c=c: one(c) for c in consumers])  # type: ignore[misc]
        return {
            "consumers": listed,
            "more": len(consumers) > MAX_CONSUMERS,
            "callbacks_counted_from_block": scan[0],
            "callbacks_counted_to_block": scan[1],
            "unreadable_reports": scan[2],
            "callbacks_error": self.callbacks_error,
        }
