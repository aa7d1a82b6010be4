// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Compiled against Chainlink's own interface file, not Mira's copy: what an existing
// consumer looks like. Mira's proxies must work with it unchanged.
import {
    AggregatorV3Interface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @notice The shape of Chainlink's "DataConsumerV3" documentation example. Test-only.
contract ChainlinkStyleConsumer {
    AggregatorV3Interface internal immutable dataFeed;

    constructor(address feed) {
        dataFeed = AggregatorV3Interface(feed);
    }

    function getChainlinkDataFeedLatestAnswer() public view returns (int256) {
        (, int256 answer,,,) = dataFeed.latestRoundData();
        return answer;
    }

    function describe() external view returns (string memory, uint8, uint256) {
        return (dataFeed.description(), dataFeed.decimals(), dataFeed.version());
    }
}
