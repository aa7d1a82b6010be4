// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraConsumer} from "./IMiraConsumer.sol";

/// @title MiraConsumer
/// @notice Base of a contract called back by a MiraOracle on the updates of the feeds it is
///         subscribed to (IMiraSubscriptions.subscribe). Override `_onMiraUpdate`; only the
///         oracle given at construction can reach it. Its deployer is its subscription manager:
///         the only address besides the contract itself that can subscribe it.
abstract contract MiraConsumer is IMiraConsumer {
    /// @notice The oracle whose callbacks this contract accepts.
    address public immutable miraOracle;
    /// @dev The deployer (for a factory or a CREATE2 deployer proxy, that contract: override
    ///      miraSubscriptionManager to name another).
    address private immutable _subscriptionManager = msg.sender;

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

    /// @inheritdoc IMiraConsumer
    function miraSubscriptionManager() public view virtual returns (address) {
        return _subscriptionManager;
    }

    /// @notice Act on a report's updates of this contract's feeds (report order, at least one).
    ///         Runs under the subscription's callback gas limit; a revert here costs only this
    ///         callback.
    function _onMiraUpdate(Update[] calldata updates) internal virtual;
}
