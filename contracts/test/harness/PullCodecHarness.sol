// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibPull} from "../../src/libraries/LibPull.sol";

/// @notice Exposes LibPull to the Python ↔ Solidity differential tests. Test-only.
contract PullCodecHarness {
    /// @notice The leaf of `leaf` (88 bytes: feedId ‖ value ‖ observedAt ‖ modelCommitment) in `round`.
    function leafHash(bytes calldata leaf, uint64 round) external pure returns (bytes32) {
        require(leaf.length == LibPull.LEAF_SIZE, "88 bytes");
        uint256 at;
        assembly ("memory-safe") {
            at := leaf.offset
        }
        return LibPull.leafHash(at, round);
    }

    /// @notice (k, m, well-formed) of a payload's layout.
    function layout(bytes calldata payload) external pure returns (uint256 k, uint256 m, bool wellFormed) {
        (k, m,,,) = LibPull.layout(payload);
        wellFormed = k != 0;
        if (!wellFormed) m = 0;
    }

    /// @notice The root a well-formed payload's leaves and multiproof lead to (in the payload's
    ///         round), and whether the multiproof is consistent; reverts on a malformed layout.
    function root(bytes calldata payload) external pure returns (bytes32 computed, bool ok) {
        (uint256 k, uint256 m, uint256 flags, uint256 leaves, uint256 proof) = LibPull.layout(payload);
        require(k != 0, "malformed");
        uint64 round;
        assembly ("memory-safe") {
            round := shr(192, calldataload(add(payload.offset, 36)))
        }
        return LibPull.processMultiproof(k, m, flags, leaves, proof, round);
    }

    function digest(
        uint256 chainId,
        address verifier,
        uint64 epoch,
        uint64 round,
        bytes32 root_,
        uint32 leafCount
    ) external pure returns (bytes32) {
        return LibPull.digest(chainId, verifier, epoch, round, root_, leafCount);
    }
}
