// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IMiraConsumer
/// @notice What a contract subscribed to Mira feeds implements (see IMiraSubscriptions). Inherit
///         MiraConsumer rather than implementing this directly: it checks the caller.
interface IMiraConsumer {
    /// @notice One applied feed update, as IMiraOracle.latestRound(feedId) reads it right after.
    /// @param feedId     the feed
    /// @param value      the new value, fixed-point with the feed's decimals
    /// @param observedAt when the committee observed it (unix seconds; may be up to the oracle's
    ///                   maxFutureDrift after block.timestamp)
    /// @param round      the report's round (unix milliseconds of the committee's round slot)
    struct Update {
        bytes32 feedId;
        int128 value;
        uint64 observedAt;
        uint64 round;
    }

    /// @notice Called by the oracle once per report that applied at least one update of a feed
    ///         this contract is subscribed to, with all such updates in report order, under
    ///         exactly the subscription's callback gas limit. Return data is ignored; a revert
    ///         costs only this call (the report and the other consumers go on).
    function miraCallback(Update[] calldata updates) external;

    /// @notice Who may subscribe this contract to feeds (besides the contract itself): the
    ///         oracle creates its subscription only for this address, which then owns it. Read
    ///         with at most 30,000 gas.
    function miraSubscriptionManager() external view returns (address);
}
