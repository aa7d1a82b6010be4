"""Following a ModelRegistry's events (IModelRegistry), the way chain-events sources
follow theirs (oracle.sources.chain_events): only blocks ``confirmations`` deep are read,
in bounded ``eth_getLogs`` ranges, sorted into canonical (block, log index) order and
decoded by :func:`oracle.chain.registry.decode_log` (the ABI of the forge build).

The caller stores each batch's events with the new tip in one transaction
(oracle.storage.registry), so a restart resumes after the last stored block. Before
reading on, the first new block's parent hash is checked against the stored tip: a
mismatch is a reorg deeper than the confirmation depth; it is logged and counted, and the
last :data:`RESCAN` blocks are read again from the new chain; events already stored are
skipped, and applying an event twice changes nothing (oracle.registry.state). What the node
already started stays started: a model cannot unlearn, as a chain-events feed cannot. A log
that does not decode is logged, counted and skipped.

The RPC work (:meth:`RegistryFollower.scan`) does no database I/O: the node runs it in a
worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from web3 import Web3

from oracle.chain import registry
from oracle.chain.deploy import at
from oracle.storage.registry import EventRow

log = structlog.get_logger(__name__)

RESCAN = 256  # blocks read again after a reorg deeper than the confirmation depth
# Only what governance decided is followed. Proposals and published versions are anyone's to
# make, as many as they pay gas for: a node that stored each would let a spammer grow its
# memory and database without bound. An approval names its model and version; the spec
# hash, URI, author and declared feeds are read from the registry then (all immutable once
# proposed, so reading them at the latest block gives what was approved). A deactivation
# matters only for a model that was approved.
EVENTS = ("VersionApproved", "ModelDeactivated")


@dataclass
class RegistryBatch:
    events: list[EventRow] = field(default_factory=list)
    tip: tuple[int, str] | None = None  # the last block scanned (number, hash)
    deep_reorg: bool = False
    undecodable: list[str] = field(default_factory=list)


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


class RegistryFollower:
    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        confirmations: int,
        max_block_range: int = 1000,
        max_ranges: int = 10,
        from_block: int = 0,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.confirmations = confirmations
        self.max_block_range = max_block_range
        self.max_ranges = max_ranges
        self.from_block = from_block
        self.contract = at(w3, "ModelRegistry", self.address)  # no RPC call until a scan
        self._topics = [str(self.contract.events[name]().topic) for name in EVENTS]

    def scan(self, tip: tuple[int, str] | None) -> RegistryBatch:
        eth = self.w3.eth
        safe = int(eth.block_number) - self.confirmations
        batch = RegistryBatch()
        start = self.from_block if tip is None else tip[0] + 1
        if safe < start:
            return batch
        if tip is not None and _hex(eth.get_block(start)["parentHash"]) != tip[1]:
            # the recorded tip is gone: read the last RESCAN blocks again, so events the new
            # chain holds there are not missed (the caller skips those already stored)
            batch.deep_reorg = True
            start = max(self.from_block, tip[0] - RESCAN + 1)
            log.error(
                "registry.deep_reorg",
                tip=tip[0],
                rescan_from=start,
                confirmations=self.confirmations,
            )
        end = min(safe, start + self.max_block_range * self.max_ranges - 1)
        raw: list[Any] = []
        for lo in range(start, end + 1, self.max_block_range):
            hi = min(end, lo + self.max_block_range - 1)
            raw.extend(
                eth.get_logs(
                    {
                        "address": self.address,
                        "topics": [self._topics],
                        "fromBlock": lo,
                        "toBlock": hi,
                    }
                )
            )
        raw.sort(key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
        times: dict[str, int] = {}
        for lg in raw:
            block_hash = _hex(lg["blockHash"])
            if block_hash not in times:
                times[block_hash] = int(eth.get_block(lg["blockHash"])["timestamp"]) * 1000
            try:
                row = self._decode(lg, block_hash, times[block_hash])
                if row is not None:
                    batch.events.append(row)
            except Exception as exc:  # web3/eth_abi raise several unrelated types
                where = f"log {lg.get('logIndex')} of block {lg.get('blockNumber')}"
                batch.undecodable.append(where)
                log.error("registry.undecodable_log", where=where, error=str(exc)[:300])
        end_header = eth.get_block(end)
        batch.tip = (end, _hex(end_header["hash"]))
        return batch

    def _decode(self, lg: Any, block_hash: str, time_ms: int) -> EventRow | None:
        """One log as the row it is stored as (None: a deactivation of a model never
        approved); decoding is oracle.chain.registry's."""
        if lg.get("removed"):
            raise ValueError("the RPC reports this log as removed by a reorg")
        event = registry.decode_log(self.contract, lg)
        if isinstance(event, registry.UndecodableLog):
            raise ValueError(event.reason)
        common: dict[str, Any] = {
            "block_number": event.ref.block_number,
            "block_hash": block_hash,
            "log_index": event.ref.log_index,
            "block_time_ms": time_ms,
            "kind": type(event).__name__,
            "model_id": event.model_id,
        }
        if isinstance(event, registry.VersionApproved):
            model = registry.model(self.contract, event.model_id)
            version = registry.version(self.contract, event.model_id, event.version)
            declared = registry.feeds(self.contract, event.model_id)
            return EventRow(
                **common,
                version=event.version,
                spec_hash=event.spec_hash,
                spec_uri=version.spec_uri,
                feed_ids=json.dumps(["0x" + f.feed_id.hex() for f in declared]),
                actor=model.author,
            )
        if isinstance(event, registry.ModelDeactivated):
            # approvals cannot follow a deactivation, so "approved at the latest block" is
            # "approved before it was deactivated"
            if registry.model(self.contract, event.model_id).approved_version == 0:
                return None
            return EventRow(**common, version=0, actor=event.by)
        raise ValueError(f"{type(event).__name__} is not followed")
