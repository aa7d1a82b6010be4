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
from web3.providers.rpc import AsyncHTTPProvider

from oracle import artifacts

log = structlog.get_logger(__name__)

_ZERO = "0x" + "00" * 20


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
        self.w3 = AsyncWeb3(
            AsyncHTTPProvider(
                rpc_url,
                request_kwargs={"timeout": rpc_timeout_s},
                exception_retry_configuration=None,
            )
        )
        self.oracle_address = AsyncWeb3.to_checksum_address(oracle)
        self.oracle = self.w3.eth.contract(
            address=self.oracle_address, abi=artifacts.load("MiraOracle").abi
        )
        self.feeds = list(feeds)
        self.transmitter = transmitter
        self.min_interval_s = min_interval_s
        self._proxies: dict[str, str] = {}
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
        return out
