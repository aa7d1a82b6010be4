// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {PullFixture} from "./utils/PullFixture.sol";

/// @notice Pull-mode gas under a 10,000-leaf root, metered around the verify call only (so
///         without the 21,000 base and calldata: `mira bench gas` reports whole transactions on
///         anvil). Each test builds its tree unmetered. Not part of `.gas-snapshot` (GasTest).
contract PullGasMeter is PullFixture {
    uint256 internal constant LEAVES = 10_000;

    function setUp() public {
        _deployPull();
    }

    /// @dev The call's data is encoded before metering resumes: the test's memory holds the
    ///      whole tree, and expanding it further would be billed to the metered section.
    function _metered(bytes memory payload) internal {
        bytes memory data = abi.encodeCall(verifier.verify, (payload, 60));
        address target = address(verifier);
        vm.resumeGasMetering();
        (bool ok,) = target.call(data);
        vm.pauseGasMetering();
        require(ok, "verify reverted");
    }

    function _build() internal returns (Tree memory t) {
        vm.pauseGasMetering();
        t = _tree(LEAVES, _nowRound(), uint64(block.timestamp));
    }

    function test_gas_pullOneValueFreshRoot() public {
        Tree memory t = _build();
        _metered(_payload(1, t, _idx1(4321)));
    }

    function test_gas_pullTenAdjacentValuesOneCall() public {
        Tree memory t = _build();
        _metered(_payload(1, t, _range(4321, 10)));
    }

    function test_gas_pullTenSpreadValuesOneCall() public {
        Tree memory t = _build();
        uint256[] memory idx = new uint256[](10);
        for (uint256 i; i < 10; ++i) {
            idx[i] = 17 + i * 997; // spread over the whole tree: ~10 nearly disjoint paths
        }
        _metered(_payload(1, t, idx));
    }

    function test_gas_pullOneValueRootAlreadyVerified() public {
        Tree memory t = _build();
        IMiraOracle.Signature memory sig = _signRoot(1, t);
        bytes memory first =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(10)), sig);
        (bool ok,) = address(verifier).call(abi.encodeCall(verifier.verify, (first, 60)));
        require(ok, "first verify reverted");
        _metered(
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(4321)), sig)
        );
    }
}
