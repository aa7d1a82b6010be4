// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    AggregatorV3Interface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @notice Chainlink's documented L2 pattern ("L2 Sequencer Uptime Feeds"): the sequencer
///         uptime feed first (answer 0 = up, startedAt = when its status last changed, a grace
///         period after it comes back), then the price with a staleness check.
contract L2GuardedConsumer {
    error SequencerDown();
    error GracePeriodNotOver();
    error StalePrice(uint256 updatedAt);

    AggregatorV3Interface public immutable sequencerUptimeFeed;
    AggregatorV3Interface public immutable dataFeed;
    uint256 public constant GRACE_PERIOD_TIME = 3600;

    constructor(AggregatorV3Interface uptime, AggregatorV3Interface feed) {
        sequencerUptimeFeed = uptime;
        dataFeed = feed;
    }

    function getChainlinkDataFeedLatestAnswer() external view returns (int256) {
        (, int256 answer, uint256 startedAt,,) = sequencerUptimeFeed.latestRoundData();
        if (answer != 0) revert SequencerDown();
        if (block.timestamp - startedAt <= GRACE_PERIOD_TIME) revert GracePeriodNotOver();
        (, int256 price,, uint256 updatedAt,) = dataFeed.latestRoundData();
        if (block.timestamp - updatedAt > 1 hours) revert StalePrice(updatedAt);
        return price;
    }
}
