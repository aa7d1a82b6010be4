"""Reports that landed on-chain, read back from the chain, and their one JSON form.

A node streams every report the oracle applied (``oracle.api.stream``), whoever
transmitted it: :class:`LandedScanner` follows ``ReportTransmitted`` logs of the oracle,
reads the report bytes and the signature back from the transaction's ``transmit`` call
data, and marks which updates the contract skipped (``UpdateSkipped`` logs of the same
transaction). :func:`to_json` / :func:`from_json` are the one definition of the stream's
payload, used by the node that serves it and the client that verifies it
(``oracle.api.stream_client``).

Reports are streamed at inclusion, not after a confirmation depth: a subscriber that needs
finality waits for ``block_number`` to be deep enough. A report is streamed once (by its
hash) even if a reorg re-includes its transaction in another block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak
from web3 import AsyncWeb3

from oracle.chain.oracle_calls import SignatureStruct
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.report import FeedUpdate, Report, decode

log = structlog.get_logger(__name__)

_TRANSMITTED = "0x" + keccak(b"ReportTransmitted(uint64,uint64,bytes32[])").hex()
_SKIPPED = "0x" + keccak(b"UpdateSkipped(bytes32,uint64,uint8)").hex()
_TRANSMIT = keccak(b"transmit(bytes,(uint256,uint256,address,uint8))")[:4]
_TRANSMIT_ARGS = ["bytes", "(uint256,uint256,address,uint8)"]
MAX_BLOCK_RANGE = 500  # blocks per eth_getLogs call: what public RPCs accept
_SEEN = 4096  # report hashes remembered against a reorg re-including a transaction


@dataclass(frozen=True)
class LandedReport:
    """A report as it landed: its bytes and signature as sent, what they decode to, where
    it landed, and the feeds whose update the contract skipped (stale, future, unknown)."""

    report: bytes
    signature: SignatureStruct
    decoded: Report
    tx_hash: bytes
    block_number: int
    skipped: frozenset[bytes] = frozenset()

    @property
    def epoch(self) -> int:
        return self.decoded.epoch

    @property
    def round(self) -> int:
        return self.decoded.round

    def feed_ids(self) -> frozenset[bytes]:
        return frozenset(u.feed_id for u in self.decoded.updates)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def to_json(landed: LandedReport) -> dict[str, Any]:
    """The stream's payload for ``landed``. Integers that can exceed 2^53 (values,
    signature scalars) are strings, so a JavaScript client reads them exactly."""
    sig = landed.signature
    return {
        "epoch": landed.epoch,
        "round": landed.round,
        "report": _hex(landed.report),
        "signature": {
            "px": hex(sig.px),
            "z": hex(sig.z),
            "commitment": sig.commitment,
            "parity": sig.parity,
        },
        "updates": [
            {
                "feed_id": _hex(u.feed_id),
                "value": str(u.value),
                "observed_at": u.observed_at,
                "model_commitment": _hex(u.model_commitment),
                "applied": u.feed_id not in landed.skipped,
            }
            for u in landed.decoded.updates
        ],
        "tx_hash": _hex(landed.tx_hash),
        "block_number": landed.block_number,
    }


def _bytes(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ReportFormatError(f"{what}: expected a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ReportFormatError(f"{what}: not hex") from exc
    if size is not None and len(raw) != size:
        raise ReportFormatError(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def _int(value: Any, what: str, *, base: int = 10) -> int:
    if isinstance(value, bool):
        raise ReportFormatError(f"{what}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) <= 80:
        try:
            return int(value, base)
        except ValueError:
            pass
    raise ReportFormatError(f"{what}: expected an integer")


def from_json(payload: Any) -> LandedReport:
    """A streamed payload back into a :class:`LandedReport`. The decoded report comes from
    the report bytes alone; the payload's own epoch, round and updates must say the same,
    or ReportFormatError names what differs (a node that misdescribes a report is not
    trusted for the rest either). Nothing here checks the signature: see
    ``oracle.api.stream_client``."""
    if not isinstance(payload, dict):
        raise ReportFormatError("payload: expected a JSON object")
    report = _bytes(payload.get("report"), "report")
    decoded = decode(report)
    sig = payload.get("signature")
    if not isinstance(sig, dict):
        raise ReportFormatError("signature: expected an object")
    commitment = _bytes(sig.get("commitment"), "signature.commitment", 20)
    signature = SignatureStruct(
        px=_int(sig.get("px"), "signature.px", base=16),
        z=_int(sig.get("z"), "signature.z", base=16),
        commitment=AsyncWeb3.to_checksum_address(commitment),
        parity=_int(sig.get("parity"), "signature.parity"),
    )
    if _int(payload.get("epoch"), "epoch") != decoded.epoch:
        raise ReportFormatError("epoch: differs from the report bytes' epoch")
    if _int(payload.get("round"), "round") != decoded.round:
        raise ReportFormatError("round: differs from the report bytes' round")
    updates = payload.get("updates")
    if not isinstance(updates, list) or len(updates) != len(decoded.updates):
        raise ReportFormatError("updates: differ from the report bytes' updates")
    skipped = set()
    for i, (claimed, real) in enumerate(zip(updates, decoded.updates, strict=True)):
        if not isinstance(claimed, dict):
            raise ReportFormatError(f"updates[{i}]: expected an object")
        described = FeedUpdate(
            feed_id=_bytes(claimed.get("feed_id"), f"updates[{i}].feed_id", 32),
            value=_int(claimed.get("value"), f"updates[{i}].value"),
            observed_at=_int(claimed.get("observed_at"), f"updates[{i}].observed_at"),
            model_commitment=_bytes(
                claimed.get("model_commitment"), f"updates[{i}].model_commitment", 32
            ),
        )
        if described != real:
            raise ReportFormatError(f"updates[{i}]: differs from the report bytes' update")
        if claimed.get("applied") is False:
            skipped.add(real.feed_id)
    return LandedReport(
        report=report,
        signature=signature,
        decoded=decoded,
        tx_hash=_bytes(payload.get("tx_hash"), "tx_hash", 32),
        block_number=_int(payload.get("block_number"), "block_number"),
        skipped=frozenset(skipped),
    )


def transmit_arguments(call_data: bytes) -> tuple[bytes, SignatureStruct]:
    """(report, signature) of a ``transmit`` call's data. Nodes append ring hints after the
    ABI-encoded arguments (``ChainReader.transmit_data``); the decoder reads by offset and
    ignores them."""
    if call_data[:4] != _TRANSMIT:
        raise ReportFormatError("transaction: not a call of transmit(bytes, Signature)")
    report, (px, z, commitment, parity) = abi_decode(_TRANSMIT_ARGS, call_data[4:])
    sig = SignatureStruct(int(px), int(z), AsyncWeb3.to_checksum_address(commitment), int(parity))
    return bytes(report), sig


class LandedScanner:
    """Follows the oracle's ``ReportTransmitted`` logs from where it starts (the head at its
    first :meth:`poll`); each poll returns the reports landed since the last one, oldest
    first."""

    def __init__(self, w3: AsyncWeb3[Any], oracle: str) -> None:
        self.w3 = w3
        self.oracle = AsyncWeb3.to_checksum_address(oracle)
        self.next_block: int | None = None
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    async def poll(self) -> list[LandedReport]:
        head = int(await self.w3.eth.block_number)
        if self.next_block is None:
            self.next_block = head + 1
            return []
        out: list[LandedReport] = []
        while self.next_block <= head:
            last = min(head, self.next_block + MAX_BLOCK_RANGE - 1)
            logs = await self.w3.eth.get_logs(
                {
                    "address": self.oracle,
                    "topics": [_TRANSMITTED],
                    "fromBlock": self.next_block,
                    "toBlock": last,
                }
            )
            for entry in logs:
                landed = await self._read(bytes(entry["transactionHash"]))
                if landed is not None:
                    out.append(landed)
            self.next_block = last + 1
        return out

    async def _read(self, tx_hash: bytes) -> LandedReport | None:
        try:
            landed = await read_landed(self.w3, self.oracle, tx_hash)
        except ReportFormatError as exc:
            # transmit reached through another contract (a multicall): its call data is not
            # transmit's; the report is on-chain all the same, but not in a form to stream
            log.warning("landed.unreadable", tx=tx_hash.hex(), error=str(exc)[:200])
            return None
        key = keccak(landed.report)
        if key in self._seen:
            return None
        self._seen[key] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return landed


async def read_landed(w3: AsyncWeb3[Any], oracle: str, tx_hash: bytes) -> LandedReport:
    """The report transaction ``tx_hash`` landed on ``oracle``, read from the chain alone: its
    call data's report and signature, its block, and the updates the contract skipped.
    ReportFormatError if the transaction is not a successful ``transmit`` of that oracle
    with its ``ReportTransmitted`` log (unknown, reverted, another contract's)."""
    receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    if int(receipt["status"]) != 1 or not _has_log(receipt["logs"], oracle, _TRANSMITTED):
        raise ReportFormatError(f"transaction 0x{tx_hash.hex()} landed no report on {oracle}")
    tx = await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    if str(tx.get("to", "")).lower() != oracle.lower():
        raise ReportFormatError(f"transaction 0x{tx_hash.hex()} does not call {oracle}")
    try:
        report, signature = transmit_arguments(bytes(tx["input"]))
    except (ValueError, TypeError) as exc:  # eth_abi's decoding errors
        raise ReportFormatError(f"transaction 0x{tx_hash.hex()}: {exc}") from exc
    return LandedReport(
        report=report,
        signature=signature,
        decoded=decode(report),
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        skipped=_skipped(receipt["logs"], oracle),
    )


def _has_log(logs: Sequence[Any], oracle: str, topic: str) -> bool:
    return any(
        str(e["address"]).lower() == oracle.lower()
        and e["topics"]
        and "0x" + bytes(e["topics"][0]).hex() == topic
        for e in logs
    )


def _skipped(logs: Sequence[Any], oracle: str) -> frozenset[bytes]:
    """Feeds with an ``UpdateSkipped`` log of the oracle in a receipt's logs."""
    out = set()
    for entry in logs:
        topics = entry["topics"]
        if (
            str(entry["address"]).lower() == oracle.lower()
            and len(topics) >= 2
            and "0x" + bytes(topics[0]).hex() == _SKIPPED
        ):
            out.add(bytes(topics[1]))
    return frozenset(out)
