// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraPullVerifier} from "../interfaces/IMiraPullVerifier.sol";
import {MiraPullConsumer} from "../pull/MiraPullConsumer.sol";

/// @title PullLendingMarket
/// @notice Example pull consumer: a market where ether is collateral and debt is counted in a
///         USD unit (the feed's decimals). Every borrow prices the borrower's collateral with an
///         ETH / USD value the borrower brings in the same transaction, no older than
///         `maxPriceAge`; the debt may reach `ltvBps` of the collateral's value. Accounting
///         only: no token moves for the debt, which keeps the example about the price.
contract PullLendingMarket is MiraPullConsumer {
    uint256 internal constant BPS = 10_000;

    bytes32 public immutable priceFeed;
    uint8 public immutable priceDecimals;
    uint256 public immutable maxPriceAge;
    uint256 public immutable ltvBps;

    mapping(address => uint256) public collateralOf; // wei
    mapping(address => uint256) public debtOf; // USD, priceDecimals

    event Borrowed(address indexed borrower, uint256 amount, int128 price, uint64 observedAt);

    /// @notice The pulled price is zero or negative: no collateral value can be derived.
    error NonPositivePrice(int128 price);
    /// @notice The debt would exceed `limit`, ltvBps of the collateral's value.
    error InsufficientCollateral(uint256 debt, uint256 limit);

    constructor(
        IMiraPullVerifier verifier,
        bytes32 priceFeed_,
        uint8 priceDecimals_,
        uint256 maxPriceAge_,
        uint256 ltvBps_
    ) MiraPullConsumer(verifier) {
        priceFeed = priceFeed_;
        priceDecimals = priceDecimals_;
        maxPriceAge = maxPriceAge_;
        ltvBps = ltvBps_;
    }

    function deposit() external payable {
        collateralOf[msg.sender] += msg.value;
    }

    /// @notice Borrow `amount` (USD, priceDecimals) against the caller's collateral, priced by
    ///         the ETH / USD value in `pricePayload`.
    function borrow(uint256 amount, bytes calldata pricePayload) external {
        (int128 price, uint64 observedAt) = _pull(pricePayload, priceFeed, maxPriceAge);
        if (price <= 0) revert NonPositivePrice(price);
        // value (USD, priceDecimals) = collateral (wei) · price / 10^18
        uint256 limit = collateralOf[msg.sender] * uint256(int256(price)) / 1e18 * ltvBps / BPS;
        uint256 debt = debtOf[msg.sender] + amount;
        if (debt > limit) revert InsufficientCollateral(debt, limit);
        debtOf[msg.sender] = debt;
        emit Borrowed(msg.sender, amount, price, observedAt);
    }
}
