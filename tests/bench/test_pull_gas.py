"""``mira bench pull-gas`` runs its cases against a real anvil (the figures themselves are the
benchmark's to report, not this test's to assert)."""

from __future__ import annotations

from web3 import Web3

from oracle.bench import pull_gas


def test_every_case_verifies_and_the_second_pull_skips_the_signature(w3: Web3) -> None:
    result = pull_gas.measure(w3)
    cases = result["cases"]
    assert set(cases) == {
        "one_value_fresh_root",
        "ten_adjacent_values_one_call",
        "ten_spread_values_one_call",
        "one_value_root_verified_in_same_tx",
        "one_value_stored_root_later_tx",
    }
    assert result["leaves"] == pull_gas.LEAVES
    for case in cases.values():
        assert case["gas_beyond_base"] > 0
    second = cases["one_value_root_verified_in_same_tx"]
    # the committee call (cold account and slot) and ecrecover alone are over 7,000 gas
    assert second["verify_call_gas"] + 7000 < second["first_verify_call_gas"]
    later = cases["one_value_stored_root_later_tx"]["gas_beyond_base"]
    assert later < cases["one_value_fresh_root"]["gas_beyond_base"]
