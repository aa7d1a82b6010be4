// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";

/// @title MiraFeedProxy
/// @notice One feed of a MiraOracle behind Chainlink's AggregatorV3Interface, so existing
///         consumers read Mira unchanged. Deployed by MiraOracle.registerFeed.
/// @dev Field meanings follow Chainlink's OCR2 aggregator behind its proxy: roundId is
///      phase << 64 | n for the feed's n-th applied update (1, 2, 3, …; the phase starts at 1
///      and moves on when the owner resets the feed); answer is the fixed-point value with
///      `decimals()` decimals; startedAt and updatedAt are the time the nodes observed the value
///      (Mira's observedAt), never after the block's time (so `block.timestamp - updatedAt`
///      cannot underflow); answeredInRound equals roundId. Edge cases: IMiraOracle.getRoundData.
contract MiraFeedProxy is AggregatorV3Interface {
    /// @notice Interface version of this proxy: 2 since round ids are Chainlink's (phase ‖ n).
    uint256 public constant VERSION = 2;

    /// @notice The oracle this proxy reads.
    IMiraOracle public immutable oracle;
    /// @notice The feed it serves: keccak256 of the feed's spec id.
    bytes32 public immutable feedId;
    uint8 private immutable _decimals;

    constructor(IMiraOracle oracle_, bytes32 feedId_, uint8 decimals_) {
        oracle = oracle_;
        feedId = feedId_;
        _decimals = decimals_;
    }

    /// @inheritdoc AggregatorV3Interface
    function decimals() external view returns (uint8) {
        return _decimals;
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external view returns (string memory) {
        return oracle.descriptionOf(feedId);
    }

    /// @inheritdoc AggregatorV3Interface
    function version() external pure returns (uint256) {
        return VERSION;
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts IMiraOracle.NoDataPresent for phase 0 or a phase not begun; see
    ///      IMiraOracle.getRoundData for rounds never made or no longer kept.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return oracle.getRoundData(feedId, _roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return oracle.latestRoundData(feedId);
    }
}

/// @title MiraFeedProxyFactory
/// @notice Deploys MiraFeedProxy contracts for the oracle that calls it. MiraOracle creates one
///         in its constructor, so the proxy's creation code sits in the oracle's init code
///         rather than its runtime code, which must stay under EIP-170's 24,576 bytes.
///         Anyone may call it: a proxy it deploys reads the caller, so a stranger only ever
///         gets proxies of their own contract.
contract MiraFeedProxyFactory {
    /// @notice A proxy serving `feedId` of the calling oracle.
    function deploy(bytes32 feedId, uint8 decimals) external returns (address) {
        return address(new MiraFeedProxy(IMiraOracle(msg.sender), feedId, decimals));
    }
}
