// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraOracle} from "../interfaces/IMiraOracle.sol";
import {AgentBound} from "./AgentBound.sol";

/// @title StockMarket
/// @notice A real-data market: arm i is a stock whose price is the Mira feed `priceFeeds[i]`
///         (e.g. the SP500Stocks tickers, replayed). Taking an arm holds that stock for one step:
///         the next act closes the holding and pays its realised return,
///         (exit − entry) / entry in fixed point (8 decimals), both prices read from the feed.
///         So the environment is delayed: act(arm) returns the return of the previous holding.
contract StockMarket is AgentBound {
    /// @notice The holding of `arm` closed: bought at `entry`, sold at `exit` (the feed's units).
    event ReturnRealised(uint256 indexed pull, uint256 arm, int128 entry, int128 exit, int256 reward);

    /// @notice A price feed's latest value is not positive.
    error BadPrice(bytes32 feedId, int128 price);
    /// @notice A price feed's latest value is older than `maxPriceAge`, or there is none.
    error StalePrice(bytes32 feedId, uint64 observedAt, uint256 maxAge);
    /// @notice No price feeds, or a max age of zero.
    error InvalidMarket();

    IMiraOracle public immutable oracle;
    /// @notice The oldest price the market trades at, in seconds.
    uint256 public immutable maxPriceAge;
    bytes32[] private _priceFeeds;

    /// @notice The open holding: its arm + 1 (0: none), the pull that opened it and its entry price.
    uint256 public heldArmPlusOne;
    uint256 public heldSince;
    int128 public entryPrice;

    constructor(IMiraOracle oracle_, bytes32[] memory priceFeeds_, uint256 maxPriceAge_) {
        if (priceFeeds_.length == 0 || maxPriceAge_ == 0) revert InvalidMarket();
        for (uint256 i; i < priceFeeds_.length; ++i) {
            oracle_.decimalsOf(priceFeeds_[i]); // registered
        }
        oracle = oracle_;
        _priceFeeds = priceFeeds_;
        maxPriceAge = maxPriceAge_;
    }

    /// @inheritdoc AgentBound
    function armCount() public view override returns (uint256) {
        return _priceFeeds.length;
    }

    /// @notice Delayed: a holding is paid when it closes, at the next act.
    function delayed() external pure returns (bool) {
        return true;
    }

    function priceFeeds() external view returns (bytes32[] memory) {
        return _priceFeeds;
    }

    function act(uint256 arm) external returns (bool settled, int256 reward) {
        uint256 pull = _pull(arm);
        int128 price = priceOf(arm);
        uint256 held = heldArmPlusOne;
        if (held != 0) {
            int128 exit = priceOf(held - 1);
            int128 entry = entryPrice;
            // |exit − entry| < 2^128 and 1e8 < 2^27: the product fits an int256
            reward = (int256(exit) - int256(entry)) * int256(10 ** REWARD_DECIMALS) / int256(entry);
            settled = true;
            emit ReturnRealised(heldSince, held - 1, entry, exit, reward);
            _pay(heldSince, held - 1, reward);
        }
        heldArmPlusOne = arm + 1;
        heldSince = pull;
        entryPrice = price;
    }

    /// @notice Arm `arm`'s latest price, checked fresh and positive.
    function priceOf(uint256 arm) public view returns (int128 price) {
        bytes32 id = _priceFeeds[arm];
        uint64 observedAt;
        uint64 round;
        (round, price, observedAt) = oracle.latestRound(id);
        if (round == 0 || block.timestamp - observedAt > maxPriceAge) {
            revert StalePrice(id, observedAt, maxPriceAge);
        }
        if (price <= 0) revert BadPrice(id, price);
    }
}
