// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraConsumer} from "../consumer/MiraConsumer.sol";

/// @title PriceAlarm
/// @notice Example consumer: emits `Crossed` whenever its feed's value crosses `threshold`,
///         in the same transaction as the update. Subscribe it to `feedId` with a gas limit
///         of ~30,000 (one storage write and one event per report).
contract PriceAlarm is MiraConsumer {
    bytes32 public immutable feedId;
    int128 public immutable threshold;
    /// @notice 0 before the first update, 1 if the last value was at or above the threshold, 2 below.
    uint8 public side;

    /// @notice The feed's value crossed the threshold: now `above` (at or above) or below it.
    event Crossed(bytes32 indexed feedId, int128 value, bool above, uint64 round);

    constructor(address oracle, bytes32 feedId_, int128 threshold_) MiraConsumer(oracle) {
        feedId = feedId_;
        threshold = threshold_;
    }

    function _onMiraUpdate(Update[] calldata updates) internal override {
        for (uint256 i; i < updates.length; ++i) {
            Update calldata u = updates[i];
            if (u.feedId != feedId) continue;
            uint8 now_ = u.value >= threshold ? 1 : 2;
            uint8 before = side;
            if (now_ == before) continue;
            side = now_;
            // the first value only sets the side: a crossing needs a side to cross from
            if (before != 0) emit Crossed(feedId, u.value, now_ == 1, u.round);
        }
    }
}
