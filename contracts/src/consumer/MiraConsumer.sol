// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraConsumer} from "./IMiraConsumer.sol";

/// @title MiraConsumer
/// @notice Base of a contract called back by a MiraOracle on the updates of the feeds it is
///         subscribed to (IMiraSubscriptions.subscribe). Override `_onMiraUpdate`; only the
///         oracle given at construction can reach it.
abstract contract MiraConsumer is IMiraConsumer {
    /// @notice The oracle whose callbacks this contract accepts.
    address public immutable miraOracle;

    /// @notice `caller` is not the oracle this consumer was built for.
    error OnlyMiraOracle(address caller);

    constructor(address oracle) {
        miraOracle = oracle;
    }

    /// @inheritdoc IMiraConsumer
    function miraCallback(Update[] calldata updates) external {
        if (msg.sender != miraOracle) revert OnlyMiraOracle(msg.sender);
        _onMiraUpdate(updates);
    }

    /// @notice Act on a report's updates of this contract's feeds (report order, at least one).
    ///         Runs under the subscription's callback gas limit; a revert here costs only this
    ///         callback.
    function _onMiraUpdate(Update[] calldata updates) internal virtual;
}
