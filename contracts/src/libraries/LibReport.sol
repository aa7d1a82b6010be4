// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title LibReport
/// @notice The one Solidity decoder of Mira's report format; oracle/reporting/report.py is the
///         one encoder, and tests/reporting checks the two against each other.
///
///     report = epoch uint64 ‖ round uint64 ‖ update[k],  k ≥ 1
///     update = feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ modelCommitment bytes32
///
///     All integers big-endian; value is two's complement. Packed rather than ABI-encoded: an
///     update is 88 bytes instead of 128, which is calldata the transmitter pays for on every
///     report.
library LibReport {
    uint256 internal constant HEADER_SIZE = 16;
    uint256 internal constant UPDATE_SIZE = 88;
    string internal constant DOMAIN = "MIRA-REPORT-v1";

    /// @notice Number of updates, or 0 if `report`'s length is not HEADER_SIZE + k·UPDATE_SIZE, k ≥ 1.
    function count(bytes calldata report) internal pure returns (uint256 k) {
        uint256 len = report.length;
        if (len < HEADER_SIZE + UPDATE_SIZE) return 0;
        unchecked {
            uint256 body = len - HEADER_SIZE;
            if (body % UPDATE_SIZE != 0) return 0;
            return body / UPDATE_SIZE;
        }
    }

    /// @notice The report's epoch and round (its first HEADER_SIZE bytes).
    function header(bytes calldata report) internal pure returns (uint64 epoch, uint64 round) {
        assembly ("memory-safe") {
            let word := calldataload(report.offset)
            epoch := shr(192, word)
            round := and(shr(128, word), 0xffffffffffffffff)
        }
    }

    /// @notice The `i`-th update's fields.
    /// @dev Caller guarantees i < count(report).
    function update(bytes calldata report, uint256 i)
        internal
        pure
        returns (bytes32 feedId, int128 value, uint64 observedAt, bytes32 modelCommitment)
    {
        assembly ("memory-safe") {
            let p := add(report.offset, add(HEADER_SIZE, mul(i, UPDATE_SIZE)))
            feedId := calldataload(p)
            // the next word holds value (16 bytes) then observedAt (8 bytes)
            let w := calldataload(add(p, 32))
            value := sar(128, w)
            observedAt := and(shr(64, w), 0xffffffffffffffff)
            modelCommitment := calldataload(add(p, 56))
        }
    }

    /// @notice The message the committee signs: binds the domain, chain, contract, epoch and report:
    ///         keccak256("MIRA-REPORT-v1" ‖ chainId uint256 ‖ oracle address ‖ epoch uint64 ‖ keccak256(report)).
    function digest(uint256 chainId, address oracle, uint64 epoch, bytes calldata report)
        internal
        pure
        returns (bytes32 d)
    {
        assembly ("memory-safe") {
            // Scratch past the free pointer: first the report (for its hash), then the
            // 106-byte preimage 14 ‖ 32 ‖ 20 ‖ 8 ‖ 32, each field written left to right so a
            // later mstore overwrites the previous one's padding.
            let m := mload(0x40)
            calldatacopy(m, report.offset, report.length)
            let reportHash := keccak256(m, report.length)
            mstore(m, "MIRA-REPORT-v1")
            mstore(add(m, 14), chainId)
            mstore(add(m, 46), shl(96, oracle))
            mstore(add(m, 66), shl(192, epoch))
            mstore(add(m, 74), reportHash)
            d := keccak256(m, 106)
        }
    }
}
