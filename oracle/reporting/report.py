"""The one Python codec of Mira's report format; contracts/src/libraries/LibReport.sol is the
one Solidity decoder, and tests/reporting checks the two agree bit for bit.

::

    report = epoch uint64 ‖ round uint64 ‖ update[k]              k ≥ 1
    update = feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ modelCommitment bytes32

Big-endian integers, ``value`` in two's complement. The committee signs

    keccak256("MIRA-REPORT-v1" ‖ chainid uint256 ‖ oracle address ‖ epoch uint64
              ‖ keccak256(report))

which binds the chain, the contract, the epoch and the content.

>>> u = FeedUpdate(feed_id=b"\\x01" * 32, value=-5, observed_at=1_700_000_000,
...                model_commitment=b"\\x02" * 32)
>>> data = encode(Report(epoch=1, round=7, updates=(u,)))
>>> len(data)
104
>>> decode(data).updates[0].value
-5
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.crypto.keccak import keccak
from oracle.reporting.errors import ReportFormatError

DOMAIN = b"MIRA-REPORT-v1"
HEADER_SIZE = 16
UPDATE_SIZE = 88
MAX_ROUND = (1 << 63) - 1  # the contract packs rounds into 63 bits
_U64 = (1 << 64) - 1
_I128_MIN, _I128_MAX = -(1 << 127), (1 << 127) - 1


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """One feed's new value: fixed-point ``value`` with the feed's decimals."""

    feed_id: bytes
    value: int
    observed_at: int
    model_commitment: bytes

    def __post_init__(self) -> None:
        _check_bytes32("feed_id", self.feed_id)
        _check_bytes32("model_commitment", self.model_commitment)
        _check_int("value", self.value, _I128_MIN, _I128_MAX, "an int128")
        _check_int("observed_at", self.observed_at, 0, _U64, "a uint64 unix time")
        if self.feed_id == bytes(32):
            raise ReportFormatError("feed_id: the zero id is reserved")


@dataclass(frozen=True, slots=True)
class Report:
    """All due feed updates of one round, signed once by the epoch's group key."""

    epoch: int
    round: int
    updates: tuple[FeedUpdate, ...]

    def __post_init__(self) -> None:
        _check_int("epoch", self.epoch, 1, _U64, "a uint64 ≥ 1")
        _check_int("round", self.round, 1, MAX_ROUND, "a round in [1, 2^63)")
        if not self.updates:
            raise ReportFormatError("updates: a report carries at least one update")
        seen: set[bytes] = set()
        for u in self.updates:
            if not isinstance(u, FeedUpdate):
                raise ReportFormatError(f"updates: expected FeedUpdate, got {type(u).__name__}")
            if u.feed_id in seen:
                raise ReportFormatError(f"updates: feed 0x{u.feed_id.hex()} appears twice")
            seen.add(u.feed_id)


def encode_update(u: FeedUpdate) -> bytes:
    """One update's ``UPDATE_SIZE`` bytes: the one place the update layout is written (a
    report's updates and a round's observations both use it)."""
    return (
        u.feed_id
        + u.value.to_bytes(16, "big", signed=True)
        + u.observed_at.to_bytes(8, "big")
        + u.model_commitment
    )


_ZERO_ID = bytes(32)
_new = object.__new__
_set = object.__setattr__


def decode_update(raw: bytes) -> FeedUpdate:
    """The update in ``raw`` (exactly ``UPDATE_SIZE`` bytes); ReportFormatError if not."""
    if type(raw) is not bytes:
        raw = bytes(raw)
    if len(raw) != UPDATE_SIZE:
        raise ReportFormatError(f"update: {len(raw)} bytes, expected {UPDATE_SIZE}")
    feed_id = raw[0:32]
    if feed_id == _ZERO_ID:
        raise ReportFormatError("feed_id: the zero id is reserved")
    # Every field read from its fixed-size slice is in range by construction (32-byte
    # ids and commitments, an int128, a uint64), so __post_init__'s checks are skipped:
    # a pull round decodes tens of thousands of updates, and they cost more than the
    # decoding (tests/reporting/test_report_codec.py: equal to the checked constructor).
    u = _new(FeedUpdate)
    _set(u, "feed_id", feed_id)
    _set(u, "value", int.from_bytes(raw[32:48], "big", signed=True))
    _set(u, "observed_at", int.from_bytes(raw[48:56], "big"))
    _set(u, "model_commitment", raw[56:88])
    return u


def record_value(record: bytes) -> int:
    """The value of an encoded update, without decoding the rest."""
    return int.from_bytes(record[32:48], "big", signed=True)


def encode(report: Report) -> bytes:
    """The report's bytes, exactly as LibReport reads them."""
    header = report.epoch.to_bytes(8, "big") + report.round.to_bytes(8, "big")
    return header + b"".join(encode_update(u) for u in report.updates)


def decode(data: bytes) -> Report:
    """Parse report bytes; raise ReportFormatError saying what is wrong."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ReportFormatError(f"report: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    body = len(data) - HEADER_SIZE
    if body < UPDATE_SIZE or body % UPDATE_SIZE:
        raise ReportFormatError(
            f"report: {len(data)} bytes is not {HEADER_SIZE} + {UPDATE_SIZE}·k for some k ≥ 1"
        )
    updates = [
        decode_update(data[off : off + UPDATE_SIZE])
        for off in range(HEADER_SIZE, len(data), UPDATE_SIZE)
    ]
    return Report(
        epoch=int.from_bytes(data[0:8], "big"),
        round=int.from_bytes(data[8:16], "big"),
        updates=tuple(updates),
    )


def digest(chain_id: int, oracle: str | bytes, epoch: int, report_bytes: bytes) -> bytes:
    """The 32-byte message the committee signs for ``report_bytes`` on ``oracle``."""
    _check_int("chain_id", chain_id, 1, (1 << 256) - 1, "a positive uint256")
    _check_int("epoch", epoch, 1, _U64, "a uint64 ≥ 1")
    address = _address_bytes(oracle)
    return keccak(
        DOMAIN
        + chain_id.to_bytes(32, "big")
        + address
        + epoch.to_bytes(8, "big")
        + keccak(report_bytes)
    )


def _address_bytes(oracle: str | bytes) -> bytes:
    if isinstance(oracle, bytes):
        raw = oracle
    elif isinstance(oracle, str) and oracle.startswith("0x"):
        try:
            raw = bytes.fromhex(oracle[2:])
        except ValueError:
            raw = b""
    else:
        raw = b""
    if len(raw) != 20:
        raise ReportFormatError(f"oracle: expected a 20-byte address, got {oracle!r}")
    return raw


def _check_bytes32(name: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ReportFormatError(f"{name}: expected 32 bytes, got {got}")


def _check_int(name: str, value: object, lo: int, hi: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportFormatError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ReportFormatError(f"{name}: {value} is out of range for {what}")
