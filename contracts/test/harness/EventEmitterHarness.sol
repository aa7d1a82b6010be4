// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Emits events for the chain-events source tests (oracle/sources/chain_events.py).
/// Test-only.
contract EventEmitterHarness {
    struct Point {
        int256 price;
        uint64 at;
    }

    /// @notice One reading: `value` is the number a feed ingests; `seq` is indexed (a topic).
    event Reading(uint256 indexed seq, int256 value);
    /// @notice A reading carried inside a struct, for nested field paths (`point.price`).
    event PointReading(uint256 indexed seq, Point point);
    /// @notice A non-numeric field, to exercise rejections.
    event Label(uint256 indexed seq, string label);

    /// @notice An RL agent's step, with IMiraPolicyAgent.Step's signature: several values per log.
    event Step(uint256 indexed step, uint256 arm, int256 reward, int256[] context, uint64 policyRound);

    /// @notice Emit one `Step` per arm, in order, in one transaction; every step sees `context`.
    function emitSteps(
        uint256 firstStep,
        uint256[] calldata arms,
        int256[] calldata rewards,
        int256[] calldata context,
        uint64 policyRound
    ) external {
        for (uint256 i; i < arms.length; ++i) {
            emit Step(firstStep + i, arms[i], rewards[i], context, policyRound);
        }
    }

    /// @notice Emit one `Reading` per value, in order, in one transaction.
    function emitReadings(uint256 firstSeq, int256[] calldata values) external {
        for (uint256 i; i < values.length; ++i) {
            emit Reading(firstSeq + i, values[i]);
        }
    }

    function emitPoint(uint256 seq, int256 price, uint64 at) external {
        emit PointReading(seq, Point(price, at));
    }

    function emitLabel(uint256 seq, string calldata label) external {
        emit Label(seq, label);
    }

    /// @notice A log with `Reading`'s topic but data too short to decode.
    function emitMalformedReading(uint256 seq) external {
        bytes32 topic0 = Reading.selector;
        assembly ("memory-safe") {
            mstore(0, 0x1234)
            log2(0, 16, topic0, seq)
        }
    }
}
