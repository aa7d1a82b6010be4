// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice Fixed scenarios whose gas `.gas-snapshot` records. These tests assert nothing
///         themselves: their assertion is `forge snapshot --match-contract GasTest --check`
///         (run by `make test-contracts` and CI), which fails when a figure differs from the
///         recorded one, so a change to the hot path shows up as a diff that must be re-recorded
///         (`make gas-snapshot`) and justified. Full-transaction figures, with calldata and the
///         21,000 base, come from `mira bench gas` on anvil.
contract GasTest is OracleFixture {
    bytes32[] internal ids;
    /// @dev the head-position hints, read here: reading them inside the metered test would
    ///      warm the very slots transmit reads (EIP-2929) and understate its gas
    bytes internal hints;

    function setUp() public {
        _deploy();
        ids = _register(100);
        hints = oracle.ringHints(ids);
    }

    /// @dev Builds and signs a k-feed report unmetered, then meters only the transmit call.
    function _transmitMetered(uint256 k) internal {
        vm.pauseGasMetering();
        bytes32[] memory sub = new bytes32[](k);
        for (uint256 i; i < k; ++i) {
            sub[i] = ids[i];
        }
        Update[] memory updates = _updates(sub, 300_000_000_000, uint64(block.timestamp));
        bytes memory report = _encode(1, 5, updates);
        IMiraOracle.Signature memory sig = _sign(1, report);
        bytes memory h = new bytes(k);
        for (uint256 i; i < k; ++i) {
            h[i] = hints[i];
        }
        bytes memory data = abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), h);
        vm.resumeGasMetering();
        (bool ok,) = address(oracle).call(data);
        vm.pauseGasMetering();
        require(ok, "transmit reverted");
        vm.resumeGasMetering();
    }

    function test_gas_transmitOneFeed() public {
        _transmitMetered(1);
    }

    function test_gas_transmitTenFeeds() public {
        _transmitMetered(10);
    }

    function test_gas_transmitHundredFeeds() public {
        _transmitMetered(100);
    }
}
