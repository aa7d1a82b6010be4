// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";

/// @title SequencerUptimeGuard
/// @notice For consumers on an L2: refuse prices while the sequencer is down and for a grace
///         period after it comes back, when stale prices could still be traded against.
/// @dev Chainlink's L2 sequencer uptime feed convention: answer 0 = up, 1 = down; startedAt
///      is when the status last changed (0 on some chains before the first status round).
abstract contract SequencerUptimeGuard {
    /// @notice The sequencer reports down.
    error SequencerDown();
    /// @notice The uptime feed has no status yet (startedAt = 0).
    error SequencerStatusUnknown();
    /// @notice The sequencer is up, but came back less than the grace period ago.
    error SequencerGracePeriodNotOver(uint256 upSince, uint256 usableFrom);
    /// @notice A price feed's answer is older than the consumer accepts.
    error StalePrice(uint256 updatedAt, uint256 maxAge);
    /// @notice A price feed returned a non-positive answer.
    error InvalidPrice(int256 answer);

    AggregatorV3Interface public immutable sequencerUptimeFeed;
    uint256 public immutable sequencerGracePeriod;

    /// @param uptimeFeed the chain's sequencer uptime feed; address(0) on chains without one
    constructor(AggregatorV3Interface uptimeFeed, uint256 gracePeriod) {
        sequencerUptimeFeed = uptimeFeed;
        sequencerGracePeriod = gracePeriod;
    }

    /// @notice Reverts unless the sequencer is up and has been for the whole grace period.
    function _requireSequencerUp() internal view {
        if (address(sequencerUptimeFeed) == address(0)) return;
        (, int256 answer, uint256 startedAt,,) = sequencerUptimeFeed.latestRoundData();
        if (answer != 0) revert SequencerDown();
        if (startedAt == 0) revert SequencerStatusUnknown();
        uint256 usableFrom = startedAt + sequencerGracePeriod;
        if (block.timestamp <= usableFrom) revert SequencerGracePeriodNotOver(startedAt, usableFrom);
    }

    /// @notice The sequencer check, then a positive answer no older than `maxAge` seconds.
    function _readPrice(AggregatorV3Interface feed, uint256 maxAge) internal view returns (int256 answer) {
        _requireSequencerUp();
        uint256 updatedAt;
        (, answer,, updatedAt,) = feed.latestRoundData();
        if (answer <= 0) revert InvalidPrice(answer);
        if (updatedAt + maxAge < block.timestamp) revert StalePrice(updatedAt, maxAge);
    }
}
