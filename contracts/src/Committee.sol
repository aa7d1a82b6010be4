// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "./Owned.sol";
import {ICommittee} from "./interfaces/ICommittee.sol";
import {LibSchnorr} from "./libraries/LibSchnorr.sol";

/// @notice Epochs of the oracle committee. Kept in the oracle contract itself so transmit()
///         reads the epoch's key hash and validity from one local slot.
abstract contract Committee is ICommittee, Owned {
    uint256 internal constant MAX_MEMBERS = 255;

    /// @dev An EpochKey packed into the one word transmit() reads:
    ///      bits 0..159 keyHash, 160..223 validUntil, 224..239 threshold, 240..255 size.
    ///      Zero for an epoch that never started.
    mapping(uint64 epoch => uint256) internal _epochWords;

    struct GroupKey {
        uint256 px;
        uint8 parity;
    }

    uint64 private _currentEpoch;
    uint64 private _gracePeriod;
    mapping(uint64 epoch => GroupKey) private _groupKeys;
    mapping(uint64 epoch => Member[]) private _members;

    constructor(address initialOwner, uint64 initialGracePeriod) Owned(initialOwner) {
        _gracePeriod = initialGracePeriod;
        emit GracePeriodSet(initialGracePeriod);
    }

    /// @inheritdoc ICommittee
    function startEpoch(uint256 px, uint8 parity, uint16 threshold, Member[] calldata newMembers)
        external
        onlyOwner
        returns (uint64 epoch)
    {
        if (px == 0 || px >= LibSchnorr.N || parity > 1) revert InvalidGroupKey(px, parity);
        uint256 n = newMembers.length;
        if (threshold == 0 || n == 0 || threshold > n || n > MAX_MEMBERS) {
            revert InvalidThreshold(threshold, n);
        }

        uint64 previous = _currentEpoch;
        epoch = previous + 1;
        Member[] storage stored = _members[epoch];
        for (uint256 i; i < n; ++i) {
            Member calldata m = newMembers[i];
            if (m.operator == address(0) || m.identityKey.length != 33) revert InvalidMember(i);
            for (uint256 j; j < i; ++j) {
                if (newMembers[j].operator == m.operator) revert DuplicateMember(m.operator);
            }
            stored.push(m);
        }

        uint64 previousValidUntil;
        if (previous != 0) {
            previousValidUntil = uint64(block.timestamp) + _gracePeriod;
            EpochKey memory old = _unpackEpoch(_epochWords[previous]);
            old.validUntil = previousValidUntil;
            _epochWords[previous] = _packEpoch(old);
        }
        _epochWords[epoch] = _packEpoch(
            EpochKey({
                keyHash: keyHash(px, parity),
                validUntil: type(uint64).max,
                threshold: threshold,
                size: uint16(n)
            })
        );
        _groupKeys[epoch] = GroupKey(px, parity);
        _currentEpoch = epoch;
        emit EpochStarted(epoch, px, parity, threshold, uint16(n), previous, previousValidUntil);
    }

    /// @inheritdoc ICommittee
    function setGracePeriod(uint64 newGracePeriod) external onlyOwner {
        _gracePeriod = newGracePeriod;
        emit GracePeriodSet(newGracePeriod);
    }

    function gracePeriod() external view returns (uint64) {
        return _gracePeriod;
    }

    function currentEpoch() external view returns (uint64) {
        return _currentEpoch;
    }

    function epochKey(uint64 epoch) external view returns (EpochKey memory) {
        return _unpackEpoch(_epochWords[epoch]);
    }

    function groupKey(uint64 epoch) external view returns (uint256 px, uint8 parity) {
        if (_epochWords[epoch] == 0) revert UnknownEpoch(epoch);
        GroupKey storage k = _groupKeys[epoch];
        return (k.px, k.parity);
    }

    function members(uint64 epoch) external view returns (Member[] memory) {
        if (_epochWords[epoch] == 0) revert UnknownEpoch(epoch);
        return _members[epoch];
    }

    /// @dev 160 bits of keccak: forging a key for a stored hash is a second-preimage search
    ///      (~2^160 work), the same security an Ethereum address gives its key.
    function keyHash(uint256 px, uint8 parity) internal pure returns (bytes20 h) {
        assembly ("memory-safe") {
            mstore(0x00, px)
            mstore8(0x20, parity) // px ‖ parity: 33 bytes in scratch space
            h := and(keccak256(0x00, 0x21), not(0xffffffffffffffffffffffff))
        }
    }

    /// @dev Reverts unless (px, parity) is `epoch`'s key and the epoch is still valid.
    ///      One SLOAD and one 33-byte keccak: the cheapest way to authenticate the key.
    function _checkEpochKey(uint64 epoch, uint256 px, uint8 parity) internal view {
        uint256 word = _epochWords[epoch];
        if (word == 0) revert UnknownEpoch(epoch);
        uint64 validUntil = uint64(word >> 160);
        if (block.timestamp > validUntil) revert EpochExpired(epoch, validUntil);
        if (uint160(word) != uint160(keyHash(px, parity))) revert WrongGroupKey(epoch);
    }

    function _packEpoch(EpochKey memory k) private pure returns (uint256) {
        return uint256(uint160(k.keyHash)) | (uint256(k.validUntil) << 160) | (uint256(k.threshold) << 224)
            | (uint256(k.size) << 240);
    }

    function _unpackEpoch(uint256 word) private pure returns (EpochKey memory k) {
        k.keyHash = bytes20(uint160(word));
        k.validUntil = uint64(word >> 160);
        k.threshold = uint16(word >> 224);
        k.size = uint16(word >> 240);
    }
}
