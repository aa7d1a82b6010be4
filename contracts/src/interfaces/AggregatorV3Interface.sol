// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

/// @notice Chainlink's AggregatorV3Interface, declared with the same signatures as
///         Chainlink's shared/interfaces/AggregatorV3Interface.sol (v0.8) so every
///         existing consumer compiles and runs against a Mira feed proxy unchanged.
interface AggregatorV3Interface {
    /// @notice Decimals of `answer`: the value is answer / 10^decimals.
    function decimals() external view returns (uint8);

    /// @notice What the feed measures, e.g. "ETH / USD".
    function description() external view returns (string memory);

    /// @notice Version of the contract behind the interface.
    function version() external view returns (uint256);

    /// @notice The data of round `_roundId` (phase << 64 | aggregator round).
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice The latest round's data.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
