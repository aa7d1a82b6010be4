"""How a signed report reaches the chain, behind a narrow protocol.

The round protocol decides *who* transmits *when*; a :class:`ReportTransmitter` makes one
attempt and says what became of it. :class:`ManagedTransmitter`, the one implementation,
hands the call to the transaction manager (``oracle.transmission``: simulation, nonces,
fee bumps, reorgs, RPC failover) under the report hash as its idempotency key, and maps
the manager's fate of it onto :class:`Fate`.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError

from oracle import artifacts
from oracle.chain.oracle_calls import SignatureStruct
from oracle.chain.rpc import async_web3
from oracle.reporting.report import decode
from oracle.reporting.store import report_hash
from oracle.transmission import (
    IdempotencyConflict,
    State,
    Transmission,
    TransmissionError,
    TransmissionManager,
)

log = structlog.get_logger(__name__)

_NOT_REGISTERED = keccak(b"FeedNotRegistered(bytes32)")[:4]
# Gas per callback beyond the consumer's limit that a transmit's worst case budgets: the
# contract's own work around each call (the deposit and reimbursement accounting, the
# event of a failure), with room to spare: the bar for it is 12,000.
CALLBACK_SLACK_GAS = 25_000
# The contract's callback gas budget bounds this worst case: it counts every subscription as
# its limit + 25,000 per feed, so limits·64/63 + consumers·CALLBACK_SLACK_GAS stays under
# budget·64/63 (10.2M at the default 10M), and the estimate (the transmit itself, under 1M
# for a 100-feed report, plus what the callbacks use, at most the budget) under 11M: with
# the manager's 25 % margin at most ~26.5M, below its default max_gas_limit of 30M.


def _report_of(call_data: bytes) -> bytes:
    """The report argument of transmit call data (selector, ABI arguments, ring hints)."""
    body = call_data[4:]
    offset = int.from_bytes(body[0:32], "big")
    length = int.from_bytes(body[offset : offset + 32], "big")
    return body[offset + 32 : offset + 32 + length]


class Fate(enum.Enum):
    LANDED = "landed"  # our transaction applied the report
    ALREADY_APPLIED = "already_applied"  # simulation: nothing left to apply (someone else did)
    REVERTED = "reverted"  # the transaction was mined but reverted
    REJECTED = "rejected"  # simulation reverted for another reason: sending would waste gas
    UNKNOWN = "unknown"  # sent, no receipt yet
    FAILED = "failed"  # RPC failure: retry later


@dataclass(frozen=True)
class Submission:
    fate: Fate
    tx_hash: bytes | None = None
    tx_nonce: int | None = None
    gas_used: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class OnChainValue:
    round: int
    value: int
    observed_at: int
    # False for a feed the oracle never registered: the contract skips its updates
    # (UpdateSkipped UnregisteredFeed), so it is never due and never waited for.
    registered: bool = True


NOT_REGISTERED = OnChainValue(0, 0, 0, registered=False)


def _is_not_registered(exc: BaseException) -> bool:
    data = getattr(exc, "data", None)
    return (
        isinstance(exc, ContractLogicError)
        and isinstance(data, str)
        and data.startswith("0x")
        and bytes.fromhex(data[2:10]) == _NOT_REGISTERED
    )


class ReportTransmitter(Protocol):
    """What the round protocol needs from the chain side.

    ``submit`` must be idempotent per report: the transmitter stores each report's
    transmission durably under the report hash, and a repeated ``submit`` of a report (a
    retry, or the duty resumed after a restart) is the same transmission, never a second
    send."""

    @property
    def sender(self) -> str: ...

    async def submit(
        self, report: bytes, signature: SignatureStruct, round_: int
    ) -> Submission: ...

    async def latest(self, feed_ids: Sequence[bytes]) -> dict[bytes, OnChainValue]: ...


_FEED_LIST_BATCH = 256  # feedIdAt calls in flight at once while catching up


class ChainReader:
    """Reads of the MiraOracle contract over JSON-RPC (what every transmitter shares)."""

    def __init__(self, rpc_url: str, oracle: str, *, rpc_timeout: float = 3.0) -> None:
        # No hidden retries inside web3: a call fails after rpc_timeout, and the protocol's
        # own loops retry, count and log, so an outage is visible and bounded.
        self.w3 = async_web3(rpc_url, timeout_s=rpc_timeout)
        self.contract = self.w3.eth.contract(
            address=AsyncWeb3.to_checksum_address(oracle), abi=artifacts.load("MiraOracle").abi
        )
        self._chain_id: int | None = None
        self._unregistered: set[bytes] = set()  # logged once each, until registered
        self._feed_list: list[bytes] = []  # the oracle's feedIdAt(0…), as far as read
        self._feed_set: set[bytes] = set()

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.w3.eth.chain_id)
        return self._chain_id

    def encode(self, report: bytes, signature: SignatureStruct) -> bytes:
        """transmit's ABI-encoded call data (selector and arguments)."""
        return bytes.fromhex(self.contract.encode_abi("transmit", args=[report, signature])[2:])

    async def transmit_data(self, report: bytes, signature: SignatureStruct) -> bytes:
        """transmit's call data as a node sends it: the ABI call, then one byte per update, the
        ring position of the feed's latest entry (IMiraOracle.ringHints), which spares the
        contract a scan of the ring. The contract checks every hint: a stale one (another
        report landed meanwhile) or none at all (this read failed) costs only gas."""
        data = self.encode(report, signature)
        try:
            feeds = [u.feed_id for u in decode(report).updates]
            hints = bytes(await self.contract.functions.ringHints(feeds).call())
        except Exception as exc:
            log.debug("transmit.hints_unavailable", error=str(exc)[:200])
            return data
        return data + hints

    async def callback_gas(self, sender: str, data: bytes) -> tuple[int, int] | None:
        """(consumers, worst-case gas) of sending transmit call ``data`` from ``sender`` when
        its report calls consumers back; None when it calls none, or when either read fails
        (the transaction manager then estimates the call itself, as for any call).

        eth_estimateGas alone is not enough: it measures what each consumer's callback uses
        *now*, and the contract gives every consumer exactly its gas limit or reverts the
        whole transmit (IMiraSubscriptions.InsufficientGasForCallback). A consumer that uses
        little in the estimate and its whole limit on-chain (its code can tell them apart)
        would otherwise make the report revert for lack of gas. So the worst case is the
        estimate plus every consumer's whole limit, with EIP-150's 1/64 withheld on each call
        and CALLBACK_SLACK_GAS for the contract's own work around each callback."""
        try:
            feeds = [u.feed_id for u in decode(_report_of(data)).updates]
            consumers, limits = await self.contract.functions.callbackGasOf(feeds).call()
            if int(consumers) == 0:
                return None
            estimate = await self.w3.eth.estimate_gas(
                {"from": sender, "to": self.contract.address, "data": "0x" + data.hex()}  # type: ignore[typeddict-item]
            )
        except Exception as exc:
            log.debug("transmit.callback_gas_unavailable", error=str(exc)[:200])
            return None
        withheld = -(-int(limits) * 64 // 63)  # ⌈limits · 64/63⌉
        return int(consumers), int(estimate) + withheld + int(consumers) * CALLBACK_SLACK_GAS

    async def latest(self, feed_ids: Sequence[bytes]) -> dict[bytes, OnChainValue]:
        """Each feed's latest on-chain value; NOT_REGISTERED for a feed the oracle does not
        know, so one such feed cannot fail the others. Any other failure (RPC down,
        timeout) still raises: the caller retries and counts.

        Only registered feeds cost a call each: the oracle's feed list is append-only
        (``feedCount``, ``feedIdAt``), so it is followed with one call a read plus one per
        newly registered feed, and a node carrying 10,000 pull-only feeds reads two values
        a poll instead of 10,000 reverting calls."""
        registered = await self._registered()
        known = [f for f in feed_ids if f in registered]
        calls = [self.contract.functions.latestRound(f).call() for f in known]
        results = await asyncio.gather(*calls, return_exceptions=True)
        out: dict[bytes, OnChainValue] = {}
        unknown = [f for f in feed_ids if f not in registered]
        for f, r in zip(known, results, strict=True):
            if isinstance(r, BaseException):
                if not _is_not_registered(r):
                    raise r
                unknown.append(f)
            else:
                self._unregistered.discard(f)
                out[f] = OnChainValue(int(r[0]), int(r[1]), int(r[2]))
        for f in unknown:
            out[f] = NOT_REGISTERED
        new = [f for f in unknown if f not in self._unregistered]
        if new:  # logged once each, until registered (one line for 10,000 pull-only feeds)
            self._unregistered.update(new)
            log.warning("chain.feeds_not_registered", count=len(new), first=new[0].hex())
        return out

    async def _registered(self) -> set[bytes]:
        """The oracle's registered feed ids, followed incrementally (a batch at a time)."""
        fns = self.contract.functions
        count = int(await fns.feedCount().call())
        if count < len(self._feed_list):  # a reorg dropped a registration: read it anew
            self._feed_list, self._feed_set = [], set()
        while len(self._feed_list) < count:
            start = len(self._feed_list)
            batch = range(start, min(count, start + _FEED_LIST_BATCH))
            ids = await asyncio.gather(*(fns.feedIdAt(i).call() for i in batch))
            self._feed_list.extend(bytes(i) for i in ids)
            self._feed_set.update(bytes(i) for i in ids)
        return self._feed_set


def _reverted_with(error: str | None, name: str) -> bool:
    """Whether the manager's recorded error is the decoded custom error ``name``."""
    return error is not None and f"{name}(" in error


def fate_of(t: Transmission) -> Submission | None:
    """The protocol's :class:`Fate` of a transmission the manager holds; None while it is
    still on its way (queued, simulated, sent, or dropped by a reorg and re-sent)."""
    if (t.state is State.INCLUDED and t.receipt_status == 1) or t.state is State.CONFIRMED:
        return Submission(Fate.LANDED, t.tx_hash, t.nonce, t.gas_used)
    if t.state is State.INCLUDED:  # mined, reverted; the confirmer will mark it failed
        return Submission(Fate.REVERTED, t.tx_hash, t.nonce, t.gas_used, t.error or "")
    if t.state in (State.FAILED, State.SUPERSEDED):
        detail = t.error or t.state.value
        if _reverted_with(t.error, "NoUpdateApplied"):
            # the simulation (or the re-simulation after a reorg) found nothing left to
            # apply: another member's transmission landed the report first
            return Submission(Fate.ALREADY_APPLIED, t.tx_hash, t.nonce, detail=detail)
        if t.receipt_status == 0:
            return Submission(Fate.REVERTED, t.tx_hash, t.nonce, t.gas_used, detail)
        # would revert for another reason, or cancelled: sending again would waste gas
        return Submission(Fate.REJECTED, t.tx_hash, t.nonce, detail=detail)
    return None


class ManagedTransmitter(ChainReader):
    """Reports go out through the transaction manager: ``submit`` enqueues the
    ``MiraOracle.transmit`` call keyed by the report hash (the same report is one
    transmission however often it is submitted) and waits up to ``wait_s`` for its fate.
    The manager is looked up on every call: it exists once its service has started.
    Its row in ``transmissions`` (keyed by the report hash) is the report's record."""

    def __init__(
        self,
        rpc_url: str,
        oracle: str,
        sender: str,
        manager: Callable[[], TransmissionManager | None],
        *,
        rpc_timeout: float = 3.0,
        wait_s: float = 15.0,
        poll_s: float = 0.1,
    ) -> None:
        super().__init__(rpc_url, oracle, rpc_timeout=rpc_timeout)
        self._sender = sender
        self._manager = manager
        self.wait_s = wait_s
        self.poll_s = poll_s

    @property
    def sender(self) -> str:
        return self._sender

    async def submit(self, report: bytes, signature: SignatureStruct, round_: int) -> Submission:
        data = await self.transmit_data(report, signature)
        return await self._enqueue_and_wait(
            data,
            report_hash(report),
            f"round {round_}",
            same_report=True,
            gas_limit=await self._gas_limit(data),
        )

    async def _gas_limit(self, data: bytes) -> int | None:
        """The gas limit of a transmit that calls consumers back: its worst case
        (:meth:`callback_gas`) plus the manager's margin, at most its ceiling; None (the
        manager estimates) when the report calls no consumer back."""
        manager = self._manager()
        worst = None if manager is None else await self.callback_gas(self.sender, data)
        if manager is None or worst is None:
            return None
        consumers, gas = worst
        cfg = manager.config
        limit = gas + gas * cfg.gas_limit_margin_percent // 100
        if limit > cfg.max_gas_limit:
            # the sum of the consumers' limits does not fit: send what may, and say so (if
            # they all use their whole limit, the transmit reverts InsufficientGasForCallback)
            log.warning(
                "transmit.callback_gas_above_ceiling",
                consumers=consumers,
                worst_case=limit,
                ceiling=cfg.max_gas_limit,
            )
            return cfg.max_gas_limit
        return limit

    async def call(self, function: str, args: Sequence[Any], *, key: bytes) -> Submission:
        """Any MiraOracle call through the manager, enqueued once per ``key``."""
        data = bytes.fromhex(self.contract.encode_abi(function, args=list(args))[2:])
        return await self._enqueue_and_wait(data, key, function)

    async def _enqueue_and_wait(
        self,
        data: bytes,
        key: bytes,
        label: str,
        *,
        same_report: bool = False,
        gas_limit: int | None = None,
    ) -> Submission:
        manager = self._manager()
        if manager is None:
            return Submission(Fate.FAILED, detail="the transaction manager is not running yet")
        try:
            tid = manager.enqueue(str(self.contract.address), data, key=key, gas_limit=gas_limit)
        except IdempotencyConflict as exc:
            if not same_report:
                return Submission(Fate.FAILED, detail=f"enqueue: IdempotencyConflict: {exc}")
            # The key is the report hash: the stored call is this report's transmit, sent
            # with the ring hints of its first submission (they only spare gas): it is ours.
            tid = exc.existing_id
        except TransmissionError as exc:  # queue full, idempotency conflict, bad call
            return Submission(Fate.FAILED, detail=f"enqueue: {type(exc).__name__}: {exc}")
        except Exception as exc:  # the database
            return Submission(Fate.FAILED, detail=f"enqueue: {type(exc).__name__}: {exc}")
        deadline = time.monotonic() + self.wait_s
        t = manager.fate(tid)
        while True:
            result = fate_of(t)
            if result is not None:
                log.info("transmit.fate", what=label, id=tid, state=t.state.value)
                return result
            if time.monotonic() >= deadline:
                return Submission(
                    Fate.UNKNOWN, t.tx_hash, t.nonce, detail=f"transmission {tid}: {t.state}"
                )
            await asyncio.sleep(self.poll_s)
            t = manager.fate(tid)
