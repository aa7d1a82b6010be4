"""Chain-events source: logs of one event of one contract, read with ``eth_getLogs`` over
bounded block ranges, decoded with the ABI of the forge build: one number per log, or, with
``[sources.fields]``, one record of several numbers per log (an RL agent's step: the arm,
its reward and the context it saw), each field a path into the event's arguments.

A log is rejected (counted, stored with its reason, never learned) when it comes from
another contract than the spec's (an RPC node is not trusted to filter), does not decode,
lacks a field, holds a non-integer, or a value outside the field's ``[sources.limits]``.

Exactly once, and safe across reorgs:

* Only *confirmed* blocks are scanned: a block is read once ``head - number >=
  confirmations``. A reorg shallower than the confirmation depth never touches what was
  ingested.
* Every processed log (accepted or rejected) is recorded in ``chain_logs`` in the same
  transaction as its observation, keyed by (block hash, log index) and by (transaction
  hash, ordinal among this source's matching logs of that transaction). A log already
  recorded under either key is never processed again: not after a restart, not after
  re-scanning a range, not when a reorg re-includes its transaction in another block.
* The scan tip and every block logs were taken from are recorded in ``chain_blocks``
  (a recent window). Before scanning on, the first new block's parent hash is checked
  against the recorded tip. A mismatch is a reorg deeper than the confirmation depth:
  it is logged, counted, the common ancestor is found by comparing the recorded hashes
  with the chain's, and everything after the ancestor is scanned again. Logs of the
  new canonical blocks are ingested once; logs of orphaned blocks that were already
  ingested stay learned (an online model cannot unlearn) and are counted as orphaned.

Observation time is the block's timestamp in milliseconds, moved to 1 ms after the
previous ingested observation when it is not later than that (several matching logs in
one block; L2s such as Arbitrum, and anvil, give consecutive blocks the same timestamp;
a replacement block after a deep reorg). Along one chain this is a function of the
ordered logs only, so every node derives the same times.

The RPC work (:meth:`ChainEventSource.scan`) does no database I/O, so the node runs it
in a worker thread; the caller stores the batch and then calls
:meth:`ChainEventSource.advance`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from web3 import Web3

from oracle.chain.rpc import sync_web3
from oracle.config.feeds import ChainEventSourceSpec
from oracle.errors import Rejected
from oracle.sources.validate import to_number

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str


@dataclass(frozen=True, slots=True)
class LogRef:
    """A log's identity: (block hash, log index), and (tx hash, ordinal) across reorgs."""

    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    tx_ordinal: int

    @property
    def dedup_key(self) -> str:
        return f"{self.block_hash}:{self.log_index}"


@dataclass(frozen=True, slots=True)
class ScannedLog:
    ref: LogRef
    block_time_ms: int
    value: float | None  # None: rejected (or a record source: see ``record``)
    rejection: Rejected | None
    raw: dict[str, Any]
    record: dict[str, float] | None = None  # [sources.fields]: the log's fields, by name


@dataclass(frozen=True, slots=True)
class Reorg:
    """A reorg deeper than the confirmation depth: blocks after ``ancestor`` changed."""

    ancestor: int  # highest recorded block still canonical (-1: none found)
    orphaned: tuple[BlockRef, ...]  # recorded blocks that are no longer canonical


@dataclass
class ScanBatch:
    logs: list[ScannedLog] = field(default_factory=list)
    blocks: list[BlockRef] = field(default_factory=list)  # to record (log blocks and the tip)
    tip: BlockRef | None = None
    reorg: Reorg | None = None

    @property
    def empty(self) -> bool:
        return self.tip is None and self.reorg is None


def scaled(integer: int, decimals: int, where: str = "value") -> float:
    """An event's integer in units of 10**-decimals as the float every member learns:
    ``integral + rest / 10**decimals`` (floor division), exactly this way everywhere,
    since another rounding path (``integer / 10**decimals``) can differ in the last bit."""
    if not decimals:
        return to_number(integer, what=where)
    scale = 10**decimals
    integral, rest = divmod(integer, scale)
    if abs(integral) > 10**30:
        raise Rejected("out_of_range", f"{where} {integer} is out of range")
    return to_number(integral + rest / scale, what=where)


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


class ChainEventSource:
    """Reads one event of one contract; holds the recent scanned blocks in memory."""

    def __init__(self, spec: ChainEventSourceSpec, w3: Web3 | None = None) -> None:
        self.spec = spec
        self.w3 = w3 or sync_web3(spec.rpc_url, timeout_s=10, retries=True)
        abi = json.loads(spec.event_abi)
        self._event = self.w3.eth.contract(abi=[abi]).events[spec.event]()
        self._path = self._index_path(abi, spec.field) if spec.field else ()
        self._paths = tuple((name, self._index_path(abi, p)) for name, p in spec.fields)
        self._limits = {name: (low, high) for name, low, high in spec.limits}
        self._decimals = dict(spec.field_decimals)
        self._address = spec.address.lower()
        self.recent: dict[int, BlockRef] = {}  # block number → what was scanned there
        self.window = max(256, 4 * spec.confirmations)

    @staticmethod
    def _index_path(abi: dict[str, Any], path: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        """(name, position) per part; an array index (checked by the spec reader) is
        (index, index)."""
        out: list[tuple[str, int]] = []
        inputs = abi.get("inputs", [])
        for part in path:
            if part.isdigit():
                out.append((part, int(part)))
                continue
            i = next(k for k, inp in enumerate(inputs) if inp.get("name") == part)
            out.append((part, i))
            inputs = inputs[i].get("components", [])
        return tuple(out)

    def load(self, blocks: Sequence[BlockRef]) -> None:
        self.recent = {b.number: b for b in blocks}

    @property
    def tip(self) -> BlockRef | None:
        return self.recent[max(self.recent)] if self.recent else None

    # -- RPC (no storage): safe to run in a worker thread -------------------------------------

    def start_time_ms(self) -> int | None:
        """The time of ``from_block`` (ms) once it is confirmed, else None: a moment every
        member reads the same (a policy's prior is published as observed then)."""
        eth = self.w3.eth
        if int(eth.block_number) - self.spec.confirmations < self.spec.from_block:
            return None
        return int(eth.get_block(self.spec.from_block)["timestamp"]) * 1000

    def scan(self) -> ScanBatch:
        """Check for a reorg below the confirmation depth, then read the next confirmed
        ranges (at most ``max_ranges_per_poll`` of ``max_block_range`` blocks)."""
        spec = self.spec
        eth = self.w3.eth
        safe = int(eth.block_number) - spec.confirmations
        batch = ScanBatch()
        tip = self.tip
        start = spec.from_block if tip is None else tip.number + 1
        if tip is not None:
            if safe >= start:
                first = eth.get_block(start)
                moved = _hex(first["parentHash"]) != tip.hash
            elif safe >= tip.number:
                moved = _hex(eth.get_block(tip.number)["hash"]) != tip.hash
            else:
                moved = False  # the chain is shorter than what we scanned: wait for it
            if moved:
                batch.reorg = self._find_ancestor()
                start = batch.reorg.ancestor + 1 if batch.reorg.ancestor >= 0 else spec.from_block
        if safe < start:
            return batch
        end = min(safe, start + spec.max_block_range * spec.max_ranges_per_poll - 1)
        raw_logs: list[Any] = []
        for lo in range(start, end + 1, spec.max_block_range):
            hi = min(end, lo + spec.max_block_range - 1)
            raw_logs.extend(
                eth.get_logs(
                    {
                        "address": spec.address,  # type: ignore[typeddict-item]
                        "topics": [spec.topic0],
                        "fromBlock": lo,
                        "toBlock": hi,
                    }
                )
            )
        headers: dict[str, Any] = {}
        per_tx: dict[str, int] = {}
        raw_logs.sort(key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
        for lg in raw_logs:
            block_hash = _hex(lg["blockHash"])
            if block_hash not in headers:
                headers[block_hash] = eth.get_block(lg["blockHash"])
                header = headers[block_hash]
                batch.blocks.append(
                    BlockRef(int(header["number"]), block_hash, _hex(header["parentHash"]))
                )
            header = headers[block_hash]
            tx_hash = _hex(lg["transactionHash"])
            tx_ordinal = per_tx.get(tx_hash, 0)
            per_tx[tx_hash] = tx_ordinal + 1
            ref = LogRef(
                int(lg["blockNumber"]), block_hash, int(lg["logIndex"]), tx_hash, tx_ordinal
            )
            block_time_ms = int(header["timestamp"]) * 1000
            raw = {
                "block": ref.block_number,
                "log_index": ref.log_index,
                "tx": tx_hash,
                "data": _hex(lg["data"]),
                "topics": [_hex(t) for t in lg["topics"]],
            }
            try:
                if self._paths:
                    record = self.decode_record(lg)
                    batch.logs.append(ScannedLog(ref, block_time_ms, None, None, raw, record))
                else:
                    value = self.decode(lg)
                    batch.logs.append(ScannedLog(ref, block_time_ms, value, None, raw))
            except Rejected as exc:
                batch.logs.append(ScannedLog(ref, block_time_ms, None, exc, raw))
        end_header = eth.get_block(end)
        batch.tip = BlockRef(end, _hex(end_header["hash"]), _hex(end_header["parentHash"]))
        if all(b.number != end for b in batch.blocks):
            batch.blocks.append(batch.tip)
        return batch

    def decode(self, lg: Any) -> float:
        """The spec's field of one log as a float, or Rejected with the reason."""
        args = self._args(lg)
        where = f"{self.spec.event}.{'.'.join(self.spec.field)}"
        return self._number(args, self._path, where, "value")

    def decode_record(self, lg: Any) -> dict[str, float]:
        """Every ``[sources.fields]`` field of one log, by record field name (sorted), or
        Rejected with the reason of the first bad field."""
        args = self._args(lg)
        return {
            name: self._number(
                args, path, f"{self.spec.event}.{'.'.join(p for p, _ in path)}", name
            )
            for name, path in self._paths
        }

    def _args(self, lg: Any) -> Any:
        if lg.get("removed"):
            raise Rejected("removed_log", "the node reports this log as removed by a reorg")
        emitter = str(lg.get("address", "")).lower()
        if emitter != self._address:
            raise Rejected(
                "wrong_contract",
                f"log {lg.get('logIndex')} of block {lg.get('blockNumber')} comes from "
                f"{lg.get('address')}, not {self.spec.address} ({self.spec.contract})",
            )
        try:
            return self._event.process_log(lg)["args"]
        except Exception as exc:  # web3/eth_abi raise several unrelated types here
            raise Rejected(
                "undecodable_log",
                f"{self.spec.contract}.{self.spec.event}: cannot decode log "
                f"{lg.get('logIndex')} of block {lg.get('blockNumber')}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc

    def _number(self, args: Any, path: tuple[tuple[str, int], ...], where: str, name: str) -> float:
        current: Any = args
        for part, index in path:
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, tuple | list) and index < len(current):
                current = current[index]
            else:
                raise Rejected("missing_field", f"{where}: {part} is missing from the log")
        if isinstance(current, bool) or not isinstance(current, int):
            raise Rejected("not_a_number", f"{where} decoded to a {type(current).__name__}")
        value = scaled(current, self._decimals.get(name, self.spec.scale_decimals), where)
        bounds = self._limits.get(name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise Rejected(
                "out_of_range",
                f"{where} = {value!r} is outside its limits [{bounds[0]!r}, {bounds[1]!r}]",
            )
        return value

    def _find_ancestor(self) -> Reorg:
        eth = self.w3.eth
        orphaned: list[BlockRef] = []
        for number in sorted(self.recent, reverse=True):
            ref = self.recent[number]
            if _hex(eth.get_block(number)["hash"]) == ref.hash:
                return Reorg(number, tuple(orphaned))
            orphaned.append(ref)
        return Reorg(-1, tuple(orphaned))

    # -- after the batch is stored -------------------------------------------------------------

    def advance(self, batch: ScanBatch) -> None:
        """Make ``batch`` (already stored) the new scan state."""
        if batch.reorg is not None:
            for number in [n for n in self.recent if n > batch.reorg.ancestor]:
                del self.recent[number]
        for block in batch.blocks:
            self.recent[block.number] = block
        if self.recent:
            floor = max(self.recent) - self.window
            for number in [n for n in self.recent if n < floor]:
                del self.recent[number]
