// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: the cheatcode handle, `bound` for fuzz inputs, and the target
///         lists forge reads for invariant campaigns.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private _targetContracts;

    /// @dev Maps any `x` into [lo, hi] (inclusive) with a uniform-enough wrap for fuzzing.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (lo == 0 && hi == type(uint256).max) return x;
        return lo + (x % (hi - lo + 1));
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    /// @dev forge calls this to learn which contracts an invariant campaign may call.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }
}
