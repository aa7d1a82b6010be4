// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SequencerUptimeGuard} from "../../src/SequencerUptimeGuard.sol";
import {AggregatorV3Interface} from "../../src/interfaces/AggregatorV3Interface.sol";

/// @notice A consumer that refuses prices around sequencer outages. Test-only.
contract SequencerGuardedConsumer is SequencerUptimeGuard {
    AggregatorV3Interface public immutable priceFeed;

    constructor(AggregatorV3Interface uptimeFeed, uint256 gracePeriod, AggregatorV3Interface priceFeed_)
        SequencerUptimeGuard(uptimeFeed, gracePeriod)
    {
        priceFeed = priceFeed_;
    }

    function price(uint256 maxAge) external view returns (int256) {
        return _readPrice(priceFeed, maxAge);
    }
}

/// @notice Stands in for an L2's sequencer uptime feed, which only exists on those chains.
contract SequencerUptimeFeedDouble is AggregatorV3Interface {
    int256 public status; // 0 up, 1 down
    uint256 public since;

    function set(int256 status_, uint256 since_) external {
        status = status_;
        since = since_;
    }

    function decimals() external pure returns (uint8) {
        return 0;
    }

    function description() external pure returns (string memory) {
        return "L2 Sequencer Uptime Status Feed";
    }

    function version() external pure returns (uint256) {
        return 1;
    }

    function getRoundData(uint80 r) external view returns (uint80, int256, uint256, uint256, uint80) {
        return (r, status, since, since, r);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (1, status, since, since, 1);
    }
}
