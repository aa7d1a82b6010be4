// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Two-step ownership: a transfer only completes when the new owner accepts, so a
///         typo can never hand the committee to an address nobody controls.
///         Hand-written rather than OpenZeppelin's Ownable2Step: that one also lets the owner
///         renounce, leaving feeds that can never be reset or rotated; this keeps only the
///         two-step transfer (OpenZeppelin's names and events, so tools read it the same).
abstract contract Owned {
    /// @notice The address allowed to call `onlyOwner` functions (committee changes, feed
    ///         registration and resets, all delayed where they can hurt consumers).
    address public owner;
    /// @notice The address a transfer was started to; zero when none is pending.
    address public pendingOwner;

    /// @notice The owner started a transfer to `newOwner`; it completes when they accept.
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    /// @notice `newOwner` is the owner from now on.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice `caller` is not the owner.
    error NotOwner(address caller);
    /// @notice `caller` is not the pending owner.
    error NotPendingOwner(address caller);

    constructor(address initialOwner) {
        owner = initialOwner;
        emit OwnershipTransferred(address(0), initialOwner);
    }

    modifier onlyOwner() {
        _checkOwner();
        _;
    }

    /// @dev A function rather than the modifier's body: the modifier is inlined at each of
    ///      MiraOracle's many owner functions, and this keeps one copy of the check and its revert
    ///      (MiraOracle is close to EIP-170's size limit).
    function _checkOwner() internal view {
        if (msg.sender != owner) revert NotOwner(msg.sender);
    }

    /// @notice Owner: start a transfer to `newOwner` (replacing any pending one; address(0)
    ///         cancels it). Nothing changes until `newOwner` calls acceptOwnership.
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice Pending owner: complete the transfer.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }
}
