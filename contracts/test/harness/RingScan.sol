// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "../lib/Vm.sol";

/// @notice The reference for MiraOracle's head search: the linear scan it used before (one read
///         per slot, the highest seq wins, position 0 when no slot holds one), run over the
///         oracle's own storage through `vm.load`, so it shares no code with the search it checks.
library RingScan {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant REGISTERED = 1 << 255;
    uint256 internal constant DEPTH_SHIFT = 248;
    uint256 internal constant SEQ_SHIFT = 216;

    /// @dev The storage slot of `_rings` (the mapping feedId => uint256[127]), found from a
    ///      registered feed of a known depth: its ring's first word carries the flag and the
    ///      depth. Exactly one candidate slot may match, or the layout is not what this assumes.
    function ringsSlot(address oracle, bytes32 feedId, uint256 depth) internal view returns (uint256 slot) {
        uint256 found;
        for (uint256 i; i < 128; ++i) {
            uint256 w = uint256(vm.load(oracle, keccak256(abi.encode(feedId, i))));
            if (w & REGISTERED != 0 && (w >> DEPTH_SHIFT) & 0x7f == depth) {
                slot = i;
                ++found;
            }
        }
        require(found == 1, "RingScan: _rings slot not found exactly once");
    }

    /// @dev Position and seq of the feed's highest seq, by reading every slot of its ring.
    function head(address oracle, uint256 slot, bytes32 feedId)
        internal
        view
        returns (uint256 position, uint256 seq, uint256 entry)
    {
        uint256 base = uint256(keccak256(abi.encode(feedId, slot)));
        entry = uint256(vm.load(oracle, bytes32(base)));
        seq = (entry >> SEQ_SHIFT) & 0xffffffff;
        uint256 depth = (entry >> DEPTH_SHIFT) & 0x7f;
        for (uint256 i = 1; i < depth; ++i) {
            uint256 e = uint256(vm.load(oracle, bytes32(base + i)));
            uint256 s = (e >> SEQ_SHIFT) & 0xffffffff;
            if (s > seq) (position, seq, entry) = (i, s, e);
        }
    }
}
