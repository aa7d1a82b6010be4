// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    AggregatorV3Interface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @notice Reads a feed the way lending protocols read Chainlink (Liquity's PriceFeed, Aave's
///         and Compound's wrappers): latestRoundData with staleness and answeredInRound checks,
///         the previous round for a deviation check with a fallback to the last good price,
///         a TWAP over the last N rounds, and scaling from `decimals()` to 18 decimals.
///         Compiled against Chainlink's own interface (the npm package's).
contract LendingStyleConsumer {
    error StaleRound(uint80 roundId, uint80 answeredInRound);
    error Stale(uint256 updatedAt);
    error BadAnswer(int256 answer);
    error RoundIncomplete(uint80 roundId);

    AggregatorV3Interface public immutable feed;
    uint256 public immutable maxDelay;
    /// @dev 50%, as Liquity's MAX_PRICE_DEVIATION_FROM_PREVIOUS_ROUND
    uint256 internal constant MAX_DEVIATION = 5e17;

    constructor(AggregatorV3Interface feed_, uint256 maxDelay_) {
        feed = feed_;
        maxDelay = maxDelay_;
    }

    /// @notice The latest answer scaled to 18 decimals, after the usual checks.
    function price() public view returns (uint256) {
        (uint80 roundId, int256 answer,, uint256 updatedAt, uint80 answeredInRound) = feed.latestRoundData();
        if (answeredInRound < roundId) revert StaleRound(roundId, answeredInRound);
        if (updatedAt == 0 || block.timestamp - updatedAt > maxDelay) revert Stale(updatedAt);
        if (answer <= 0) revert BadAnswer(answer);
        return _scale(answer);
    }

    /// @notice Liquity-style: the latest price unless it moved more than 50% from the previous
    ///         round, in which case the previous round's price (the "last good price").
    function priceWithDeviationCheck() external view returns (uint256) {
        uint256 current = price();
        (uint80 roundId,,,,) = feed.latestRoundData();
        (, int256 prevAnswer,, uint256 prevUpdatedAt,) = feed.getRoundData(roundId - 1);
        if (prevUpdatedAt == 0 || prevAnswer <= 0) return current; // no previous round: no check
        uint256 prev = _scale(prevAnswer);
        uint256 hi = current > prev ? current : prev;
        uint256 lo = current > prev ? prev : current;
        return (hi - lo) * 1e18 / hi > MAX_DEVIATION ? prev : current;
    }

    /// @notice Mean of the last `n` rounds' answers (18 decimals); reverts on a missing round.
    function twap(uint256 n) external view returns (uint256 sum) {
        (uint80 roundId,,,,) = feed.latestRoundData();
        for (uint256 i; i < n; ++i) {
            (, int256 answer,, uint256 updatedAt,) = feed.getRoundData(roundId - uint80(i));
            if (updatedAt == 0) revert RoundIncomplete(roundId - uint80(i));
            sum += _scale(answer);
        }
        return sum / n;
    }

    function _scale(int256 answer) internal view returns (uint256) {
        uint8 d = feed.decimals();
        return d < 18 ? uint256(answer) * 10 ** (18 - d) : uint256(answer) / 10 ** (d - 18);
    }
}
