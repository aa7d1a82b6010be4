// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";

/// @title MiraFeedProxy
/// @notice One feed of a MiraOracle behind Chainlink's AggregatorV3Interface, so existing
///         consumers read Mira unchanged. Deployed by MiraOracle.registerFeed.
/// @dev Field meanings follow Chainlink: roundId is the report round that last wrote the
///      answer (increasing, with gaps where the feed was not due); answer is the fixed-point
///      value with `decimals()` decimals; startedAt and updatedAt are the time the nodes
///      observed the value (Mira's observedAt), never after the block's time (the oracle caps
///      it, so `block.timestamp - updatedAt` cannot underflow); answeredInRound equals roundId.
contract MiraFeedProxy is AggregatorV3Interface {
    /// @notice Interface version of this proxy.
    uint256 public constant VERSION = 1;

    IMiraOracle public immutable oracle;
    bytes32 public immutable feedId;
    uint8 private immutable _decimals;

    constructor(IMiraOracle oracle_, bytes32 feedId_, uint8 decimals_) {
        oracle = oracle_;
        feedId = feedId_;
        _decimals = decimals_;
    }

    function decimals() external view returns (uint8) {
        return _decimals;
    }

    function description() external view returns (string memory) {
        return oracle.descriptionOf(feedId);
    }

    function version() external pure returns (uint256) {
        return VERSION;
    }

    /// @dev Reverts with IMiraOracle.NoDataPresent for a round no longer (or never) stored.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (_roundId > type(uint64).max) revert IMiraOracle.NoDataPresent(feedId, _roundId);
        (int128 value, uint64 observedAt) = oracle.roundData(feedId, uint64(_roundId));
        return (_roundId, value, observedAt, observedAt, _roundId);
    }

    /// @dev All zero before the first update, as Chainlink's OCR2 aggregator returns.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (uint64 round, int128 value, uint64 observedAt) = oracle.latestRound(feedId);
        return (round, value, observedAt, observedAt, round);
    }
}
