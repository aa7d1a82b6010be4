"""A client of a node's report stream that trusts nothing the node says until the chain
backs it.

:class:`ReportVerifier` checks one streamed payload: the report bytes decode (the one codec,
``oracle.reporting.report``) to exactly the epoch, round and updates the payload claims, the
signature is the report's under its epoch's group key *as registered on-chain* (the one
Schnorr verification, ``oracle.crypto.suites.MIRA_EVM``, the mirror of LibSchnorr), and that
key was still valid when the chain last moved (a retired committee's key cannot sign new
reports the contract would take); and the transaction the node names landed exactly this
report, in the block it says, skipping exactly the updates it says (``read_landed``, the
node's own reader of landed reports). Anything else is :class:`UntrustedReport`.

:class:`ReportStreamClient` reads ``GET /v1/reports/stream`` and yields only verified reports::

    client = ReportStreamClient("http://127.0.0.1:8080", rpc_url, oracle, feeds=["ETH/USD"])
    async for landed in client.reports():
        print(landed.round, [(u.feed_id.hex(), u.value) for u in landed.decoded.updates])

A node that streams a report that does not verify has lied: ``reports()`` raises
UntrustedReport, and the caller moves to another node.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound

from oracle import artifacts
from oracle.chain.rpc import async_web3, close_async_web3
from oracle.crypto.errors import CryptoError
from oracle.crypto.group import Point
from oracle.crypto.suites import MIRA_EVM
from oracle.errors import MiraError
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.landed import LandedReport, from_json, read_landed
from oracle.reporting.report import digest

MAX_EVENT_BYTES = 1 << 20  # a 255-feed report streams as ~110 kB of JSON
_NEVER_EXPIRES = (1 << 64) - 1


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class UntrustedReport(MiraError, ValueError):
    """A streamed report that does not verify; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"untrusted report: {reason}")


class StreamError(MiraError):
    """The node refused the stream (unknown feed, too many clients) or ended it."""


class ReportVerifier:
    """Verifies streamed payloads against the oracle at ``oracle`` on the chain ``w3`` reads.
    ``expiry_slack_s``: how long after its epoch's key expired a report is still taken (a
    report read late from a stream landed before the expiry)."""

    def __init__(self, w3: AsyncWeb3[Any], oracle: str, *, expiry_slack_s: int = 600) -> None:
        self.w3 = w3
        self.oracle = AsyncWeb3.to_checksum_address(oracle)
        self.contract = w3.eth.contract(address=self.oracle, abi=artifacts.load("MiraOracle").abi)
        self.expiry_slack_s = expiry_slack_s
        self._chain_id: int | None = None
        self._keys: dict[int, Point] = {}  # epoch → group key (registered once, never changes)

    async def _group_key(self, epoch: int) -> Point:
        key = self._keys.get(epoch)
        if key is None:
            try:
                px, parity = await self.contract.functions.groupKey(epoch).call()
                key = Point.deserialize(bytes([2 + int(parity)]) + int(px).to_bytes(32, "big"))
            except ContractLogicError as exc:  # UnknownEpoch
                raise UntrustedReport(f"epoch {epoch} is unknown to the oracle") from exc
            except (CryptoError, ValueError) as exc:
                raise UntrustedReport(f"epoch {epoch} has no group key on-chain") from exc
            if len(self._keys) > 256:
                self._keys.clear()
            self._keys[epoch] = key
        return key

    async def _check_validity(self, epoch: int) -> None:
        info = await self.contract.functions.epochKey(epoch).call()
        valid_until = int(info[1])
        if valid_until == _NEVER_EXPIRES:
            return
        latest = await self.w3.eth.get_block("latest")
        if int(latest["timestamp"]) > valid_until + self.expiry_slack_s:
            raise UntrustedReport(
                f"epoch {epoch}'s key expired at {valid_until}; the chain is at "
                f"{int(latest['timestamp'])}"
            )

    async def verify(self, payload: Any) -> LandedReport:
        """The payload as a :class:`LandedReport` if it verifies; UntrustedReport if not."""
        try:
            landed = from_json(payload)
        except ReportFormatError as exc:
            raise UntrustedReport(str(exc)) from exc
        if self._chain_id is None:
            self._chain_id = int(await self.w3.eth.chain_id)
        key = await self._group_key(landed.epoch)
        sig = landed.signature
        if (sig.px, sig.parity) != (key.x, key.parity):
            raise UntrustedReport(f"signed for another key than epoch {landed.epoch}'s")
        message = digest(self._chain_id, self.oracle, landed.epoch, landed.report)
        if not 0 <= sig.z < 1 << 256:
            raise UntrustedReport("signature.z is not a uint256")
        encoded = bytes.fromhex(sig.commitment[2:]) + sig.z.to_bytes(32, "big")
        if not MIRA_EVM.verify(key, message, encoded):
            raise UntrustedReport(
                f"the signature of epoch {landed.epoch} round {landed.round} does not verify"
            )
        await self._check_validity(landed.epoch)
        await self._check_landing(landed)
        return landed

    async def _check_landing(self, landed: LandedReport) -> None:
        """The transaction the node names landed exactly this report, in the block it says,
        skipping exactly the updates it says: all read back from the chain."""
        where = f"transaction {_hex(landed.tx_hash)}"
        try:
            onchain = await read_landed(self.w3, self.oracle, landed.tx_hash)
        except ReportFormatError as exc:
            raise UntrustedReport(str(exc)) from exc
        except TransactionNotFound as exc:
            raise UntrustedReport(f"{where} is not on the chain") from exc
        if (onchain.report, onchain.signature) != (landed.report, landed.signature):
            raise UntrustedReport(f"{where} landed another report")
        if onchain.block_number != landed.block_number:
            raise UntrustedReport(
                f"{where} is in block {onchain.block_number}, not {landed.block_number}"
            )
        if onchain.skipped != landed.skipped:
            raise UntrustedReport(f"{where}: the applied flags differ from the chain's")


class ReportStreamClient:
    """Reads a node's report stream and yields the reports that verify (see module doc)."""

    def __init__(
        self,
        node_url: str,
        rpc_url: str,
        oracle: str,
        *,
        feeds: Sequence[str] = (),
        rpc_timeout_s: float = 10.0,
    ) -> None:
        self.url = node_url.rstrip("/") + "/v1/reports/stream"
        self.feeds = list(feeds)
        w3 = async_web3(rpc_url, timeout_s=rpc_timeout_s, retries=True)
        self.verifier = ReportVerifier(w3, oracle)

    async def reports(self) -> AsyncIterator[LandedReport]:
        """The node's landed reports, each verified on-chain before it is yielded. The
        chain client's connections are closed when the stream ends, however it ends (the
        next call opens new ones)."""
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            params = [("feed", f) for f in self.feeds]
            async with (
                aiohttp.ClientSession(timeout=timeout, read_bufsize=MAX_EVENT_BYTES) as http,
                http.get(self.url, params=params) as resp,
            ):
                if resp.status != 200:
                    body = (await resp.content.read(4096)).decode(errors="replace")
                    raise StreamError(f"{self.url}: HTTP {resp.status}: {body}")
                # a genuine report replayed, or streamed out of order, is a lie too
                last_block, seen = 0, set[bytes]()
                async for event, data in _events(resp.content):
                    if event == "report":
                        try:
                            payload = json.loads(data)
                        except ValueError as exc:
                            raise UntrustedReport("the event's data is not JSON") from exc
                        landed = await self.verifier.verify(payload)
                        if landed.block_number < last_block or landed.tx_hash in seen:
                            raise UntrustedReport(
                                f"transaction {_hex(landed.tx_hash)} was streamed before, or "
                                "out of the chain's order"
                            )
                        last_block = landed.block_number
                        if len(seen) >= 4096:
                            seen.clear()  # bounded; the block order still refuses old ones
                        seen.add(landed.tx_hash)
                        yield landed
                    elif event == "lagged":
                        raise StreamError(f"{self.url}: the node dropped this slow client: {data}")
        finally:
            await close_async_web3(self.verifier.w3)


async def _events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each Server-Sent Event, each at most MAX_EVENT_BYTES."""
    event, size = "message", 0
    data: list[str] = []
    while True:
        try:
            raw = await content.readline()
        except ValueError as exc:  # a line above the reader's limit
            raise StreamError(f"an event line exceeds {MAX_EVENT_BYTES} bytes") from exc
        if not raw:
            return
        size += len(raw)
        if size > MAX_EVENT_BYTES:
            raise StreamError(f"an event exceeds {MAX_EVENT_BYTES} bytes")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, size = "message", [], 0
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
