// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Stands in for the OP Stack GasPriceOracle predeploy
///         (0x420000000000000000000000000000000000000F) in tests: anvil_setCode puts this
///         runtime code there. Only `getL1Fee(bytes)` is served, with a fee that depends on
///         the length of the transaction so the test can check what was passed in. Test-only.
contract GasPriceOracleStub {
    uint256 public constant BASE_FEE = 7_000_000_000_000;
    uint256 public constant FEE_PER_BYTE = 1_000_000_000;

    function getL1Fee(bytes calldata data) external pure returns (uint256) {
        return BASE_FEE + FEE_PER_BYTE * data.length;
    }
}
