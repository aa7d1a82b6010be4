"""Pure parts: replacement-fee arithmetic, revert decoding, config and send-error checks."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from oracle import artifacts
from oracle.transmission import TxManagerConfig
from oracle.transmission.client import Sent, classify_send_error
from oracle.transmission.fees import Estimate, FeeEstimator, Fees
from oracle.transmission.revert import RevertDecoder
from oracle.transmission.rpc import Invalid, parse_data, parse_quantity, redact_url

CONFIG = TxManagerConfig(chain_id=1, rpc_urls=("http://x",))
GWEI = 10**9


@given(
    max_fee=st.integers(1, 10**13),
    tip_share=st.integers(0, 100),
    current=st.integers(1, 10**13),
    cap=st.integers(1, 10**14),
)
def test_bump_raises_both_fees_by_at_least_12_5_percent_or_refuses(
    max_fee: int, tip_share: int, current: int, cap: int
) -> None:
    estimator = FeeEstimator(None, CONFIG)  # type: ignore[arg-type]
    previous = Fees(max_fee, max_fee * tip_share // 100)
    bumped = estimator.bump(previous, Estimate(current // 3, Fees(current, current // 3)), cap)
    if bumped is None:
        assert cap * 1000 < previous.max_fee_per_gas * 1125 + 1000  # no room under the cap
        return
    assert bumped.max_fee_per_gas <= cap
    assert bumped.max_priority_fee_per_gas <= bumped.max_fee_per_gas
    assert bumped.max_fee_per_gas * 1000 >= previous.max_fee_per_gas * 1125
    assert bumped.max_fee_per_gas > previous.max_fee_per_gas
    assert bumped.max_priority_fee_per_gas * 1000 >= previous.max_priority_fee_per_gas * 1125
    assert bumped.max_priority_fee_per_gas > previous.max_priority_fee_per_gas


def test_bump_follows_the_market_when_it_moved_more() -> None:
    estimator = FeeEstimator(None, CONFIG)  # type: ignore[arg-type]
    bumped = estimator.bump(
        Fees(10 * GWEI, GWEI), Estimate(40 * GWEI, Fees(81 * GWEI, GWEI)), 500 * GWEI
    )
    assert bumped == Fees(81 * GWEI, 1_125_000_000)


def test_revert_decoder_names_custom_errors_from_the_abi() -> None:
    decoder = RevertDecoder([artifacts.load("MiraOracle").abi])
    selector = keccak(text="NoUpdateApplied(uint64,uint64)")[:4]
    assert decoder.describe(selector + encode(["uint64", "uint64"], [3, 9])) == (
        "NoUpdateApplied(epoch=3, round=9)"
    )
    error = keccak(text="Error(string)")[:4] + encode(["string"], ["nope"])
    assert decoder.describe(error) == "Error(message=nope)"
    assert decoder.describe(b"\xde\xad\xbe\xef").startswith("unknown custom error 0xdeadbeef")
    assert decoder.describe(selector + b"\x01").startswith("NoUpdateApplied(<undecodable")
    assert decoder.describe(b"") == "reverted without data"


def test_send_errors_are_classified() -> None:
    assert classify_send_error("transaction already imported") is Sent.KNOWN
    assert classify_send_error("already known") is Sent.KNOWN
    assert classify_send_error("nonce too low") is Sent.NONCE_TOO_LOW
    assert classify_send_error("replacement transaction underpriced") is Sent.UNDERPRICED
    assert classify_send_error("max fee per gas less than block base fee") is Sent.UNDERPRICED
    assert classify_send_error("Insufficient funds for gas * price + value") is Sent.NO_FUNDS
    assert classify_send_error("intrinsic gas too low") is Sent.REJECTED


def test_rpc_values_are_parsed_strictly() -> None:
    assert parse_quantity("0x1f", "x") == 31
    for bad in (31, "1f", "0xzz", None, "0x" + "f" * 80):
        with pytest.raises(Invalid):
            parse_quantity(bad, "x")
    assert parse_data("0x00ff", "d") == b"\x00\xff"
    with pytest.raises(Invalid, match="expected 32"):
        parse_data("0x00", "d", 32)
    assert redact_url("https://user:secret@rpc.example/v2/APIKEY?x=1") == "https://rpc.example"


def test_config_names_the_bad_knob() -> None:
    with pytest.raises(ValueError, match="bump_permille"):
        TxManagerConfig(chain_id=1, rpc_urls=("http://x",), bump_permille=50)
    with pytest.raises(ValueError, match="confirmation_depth"):
        TxManagerConfig(chain_id=1, rpc_urls=("http://x",), confirmation_depth=0)
    with pytest.raises(ValueError, match="rpc_urls"):
        TxManagerConfig(chain_id=1, rpc_urls=())
