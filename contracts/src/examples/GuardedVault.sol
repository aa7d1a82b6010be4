// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraConsumer} from "../consumer/MiraConsumer.sol";

/// @title GuardedVault
/// @notice Example consumer: an ether vault whose withdrawals pause, in the same transaction as
///         the update that shows it, when its feed jumps by more than `maxDeviationBps` from the
///         previous value or arrives already older than `maxStaleness`; withdrawals also refuse
///         while no update came for `maxStaleness` (a silent feed sends no callback, so that
///         check runs at withdrawal). Only `guardian` resumes.
contract GuardedVault is MiraConsumer {
    enum PauseReason {
        Deviation,
        Stale
    }

    bytes32 public immutable feedId;
    uint256 public immutable maxDeviationBps;
    uint256 public immutable maxStaleness;
    address public immutable guardian;
    bool public paused;
    int128 public lastValue;
    uint64 public lastObservedAt;
    mapping(address => uint256) public balanceOf;

    event Paused(PauseReason reason, int128 value, uint64 observedAt);
    event Resumed();

    error WithdrawalsPaused();
    error FeedStale(uint64 lastObservedAt);
    error NotGuardian(address caller);
    error InsufficientBalance(uint256 requested, uint256 balance);
    error TransferFailed();

    constructor(address oracle, bytes32 feedId_, uint256 maxDeviationBps_, uint256 maxStaleness_, address guardian_)
        MiraConsumer(oracle)
    {
        feedId = feedId_;
        maxDeviationBps = maxDeviationBps_;
        maxStaleness = maxStaleness_;
        guardian = guardian_;
    }

    function deposit() external payable {
        balanceOf[msg.sender] += msg.value;
    }

    function withdraw(uint256 amount) external {
        if (paused) revert WithdrawalsPaused();
        if (block.timestamp > uint256(lastObservedAt) + maxStaleness) revert FeedStale(lastObservedAt);
        uint256 balance = balanceOf[msg.sender];
        if (amount > balance) revert InsufficientBalance(amount, balance);
        balanceOf[msg.sender] = balance - amount;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    function resume() external {
        if (msg.sender != guardian) revert NotGuardian(msg.sender);
        paused = false;
        emit Resumed();
    }

    function _onMiraUpdate(Update[] calldata updates) internal override {
        for (uint256 i; i < updates.length; ++i) {
            Update calldata u = updates[i];
            if (u.feedId != feedId) continue;
            int128 previous = lastValue;
            lastValue = u.value;
            lastObservedAt = u.observedAt;
            if (paused) continue;
            if (u.observedAt + maxStaleness < block.timestamp) {
                _pause(PauseReason.Stale, u);
            } else if (previous != 0 && _deviationBps(previous, u.value) > maxDeviationBps) {
                _pause(PauseReason.Deviation, u);
            }
        }
    }

    function _pause(PauseReason reason, Update calldata u) private {
        paused = true;
        emit Paused(reason, u.value, u.observedAt);
    }

    /// @dev |now − previous| / |previous| in basis points (int128 values: no overflow in int256).
    function _deviationBps(int128 previous, int128 value) private pure returns (uint256) {
        int256 diff = int256(value) - int256(previous);
        uint256 absDiff = uint256(diff < 0 ? -diff : diff);
        uint256 absPrev = uint256(previous < 0 ? -int256(previous) : int256(previous));
        return absDiff * 10_000 / absPrev;
    }
}
