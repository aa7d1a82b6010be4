"""oracle.reporting.report against LibReport on a real anvil, and its bad inputs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from oracle.chain.deploy import deploy
from oracle.reporting.errors import ReportFormatError
from oracle.reporting.report import (
    MAX_ROUND,
    FeedUpdate,
    Report,
    decode,
    decode_update,
    digest,
    encode,
    encode_update,
    record_value,
)

bytes32 = st.binary(min_size=32, max_size=32)
updates = st.builds(
    FeedUpdate,
    feed_id=bytes32.filter(lambda b: b != bytes(32)),
    value=st.integers(-(1 << 127), (1 << 127) - 1),
    observed_at=st.integers(0, (1 << 64) - 1),
    model_commitment=bytes32,
)
reports = st.builds(
    Report,
    epoch=st.integers(1, (1 << 64) - 1),
    round=st.integers(1, MAX_ROUND),
    updates=st.lists(updates, min_size=1, max_size=6, unique_by=lambda u: u.feed_id).map(tuple),
)


@given(reports)
def test_encode_decode_round_trip(report: Report) -> None:
    assert decode(encode(report)) == report


@given(
    raw=st.binary(min_size=88, max_size=88), kind=st.sampled_from([bytes, bytearray, memoryview])
)
def test_decode_update_equals_the_checked_constructor(raw: bytes, kind: type) -> None:
    """decode_update skips FeedUpdate's field checks (every fixed-size slice is in range):
    what it builds is what the checked constructor builds from the same fields, always of
    type bytes (hashable), and it refuses what the constructor refuses: the zero id."""
    fields = {
        "feed_id": raw[:32],
        "value": int.from_bytes(raw[32:48], "big", signed=True),
        "observed_at": int.from_bytes(raw[48:56], "big"),
        "model_commitment": raw[56:],
    }
    if raw[:32] == bytes(32):
        with pytest.raises(ReportFormatError, match="the zero id is reserved"):
            decode_update(kind(raw))
        return
    u = decode_update(kind(raw))
    assert u == FeedUpdate(**fields)  # type: ignore[arg-type]
    assert type(u.feed_id) is bytes and type(u.model_commitment) is bytes
    assert encode_update(u) == raw and record_value(raw) == u.value
    zero = bytes(32) + raw[32:]
    with pytest.raises(ReportFormatError, match="the zero id is reserved"):
        decode_update(zero)
    with pytest.raises(ReportFormatError, match="87 bytes, expected 88"):
        decode_update(raw[:87])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(report=reports, chain_id=st.integers(1, (1 << 64)))
def test_solidity_decodes_what_python_encodes(w3: Web3, report: Report, chain_id: int) -> None:
    harness = _harness(w3)
    data = encode(report)
    epoch, round_, onchain = harness.functions.decode(data).call()
    assert (epoch, round_) == (report.epoch, report.round)
    assert [tuple(u) for u in onchain] == [
        (u.feed_id, u.value, u.observed_at, u.model_commitment) for u in report.updates
    ]
    oracle = "0x" + bytes(range(20)).hex()
    expected = digest(chain_id, oracle, report.epoch, data)
    assert harness.functions.digest(chain_id, oracle, report.epoch, data).call() == expected


def test_digest_matches_the_deployed_oracle(w3: Web3) -> None:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    u = FeedUpdate(b"\x11" * 32, 123, 1_700_000_000, b"\x22" * 32)
    data = encode(Report(epoch=3, round=9, updates=(u,)))
    onchain = oracle.functions.reportDigest(3, data).call()
    assert onchain == digest(w3.eth.chain_id, oracle.address, 3, data)
    # each bound field changes the digest
    assert digest(w3.eth.chain_id + 1, oracle.address, 3, data) != onchain
    assert digest(w3.eth.chain_id, "0x" + "00" * 20, 3, data) != onchain
    assert digest(w3.eth.chain_id, oracle.address, 4, data) != onchain


_harness_cache: dict[int, object] = {}


def _harness(w3: Web3):  # one deployment per anvil, reused across hypothesis examples
    key = id(w3)
    if key not in _harness_cache:
        _harness_cache.clear()
        _harness_cache[key] = deploy(w3, "ReportCodecHarness")
    return _harness_cache[key]


GOOD = FeedUpdate(b"\x01" * 32, 1, 1, b"\x02" * 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feed_id": b"\x01" * 31}, "feed_id: expected 32 bytes, got 31 bytes"),
        ({"feed_id": "0x01"}, "feed_id: expected 32 bytes, got str"),
        ({"feed_id": bytes(32)}, "zero id is reserved"),
        ({"model_commitment": b""}, "model_commitment: expected 32 bytes"),
        ({"value": 1 << 127}, "value: .* out of range for an int128"),
        ({"value": -(1 << 127) - 1}, "out of range for an int128"),
        ({"value": 1.5}, "value: expected an int128, got float"),
        ({"value": float("nan")}, "value: expected an int128, got float nan"),
        ({"value": "12"}, "value: expected an int128, got str"),
        ({"value": True}, "got bool"),
        ({"observed_at": -1}, "observed_at: -1 is out of range"),
        ({"observed_at": 1 << 64}, "observed_at: .* out of range"),
    ],
)
def test_bad_update_fields(kwargs: dict[str, object], message: str) -> None:
    fields = {
        "feed_id": GOOD.feed_id,
        "value": 1,
        "observed_at": 1,
        "model_commitment": GOOD.model_commitment,
    }
    fields.update(kwargs)
    with pytest.raises(ReportFormatError, match=message):
        FeedUpdate(**fields)  # type: ignore[arg-type]


def test_bad_reports() -> None:
    with pytest.raises(ReportFormatError, match="at least one update"):
        Report(1, 1, ())
    with pytest.raises(ReportFormatError, match="appears twice"):
        Report(1, 1, (GOOD, GOOD))
    with pytest.raises(ReportFormatError, match="round: 0 is out of range"):
        Report(1, 0, (GOOD,))
    with pytest.raises(ReportFormatError, match="round"):
        Report(1, MAX_ROUND + 1, (GOOD,))
    with pytest.raises(ReportFormatError, match="epoch"):
        Report(0, 1, (GOOD,))


@pytest.mark.parametrize("length", [0, 15, 16, 16 + 87, 16 + 89, 16 + 88 * 2 - 1])
def test_decode_rejects_wrong_lengths(length: int) -> None:
    with pytest.raises(ReportFormatError, match=f"{length} bytes is not 16 \\+ 88"):
        decode(b"\x01" * length)


def test_decode_rejects_non_bytes_and_duplicates() -> None:
    with pytest.raises(ReportFormatError, match="expected bytes, got str"):
        decode("00" * 104)  # type: ignore[arg-type]
    data = encode(Report(1, 1, (GOOD,)))
    with pytest.raises(ReportFormatError, match="appears twice"):
        decode(data + data[16:])


def test_digest_rejects_bad_addresses() -> None:
    for bad in ["0x1234", "not an address", b"\x00" * 19, "0x" + "zz" * 20]:
        with pytest.raises(ReportFormatError, match="20-byte address"):
            digest(1, bad, 1, b"")
