// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICommittee} from "../interfaces/ICommittee.sol";
import {IMiraPullVerifier} from "../interfaces/IMiraPullVerifier.sol";
import {LibPull} from "../libraries/LibPull.sol";
import {LibSchnorr} from "../libraries/LibSchnorr.sol";

/// @title MiraPullVerifier
/// @notice Verifies pull payloads against the committee of a MiraOracle. Holds the transient
///         record of the roots whose signatures it checked in this transaction, and the roots
///         `verifyAndStore` recorded for later ones.
contract MiraPullVerifier is IMiraPullVerifier {
    uint256 private constant CHECK = 0; // verify
    uint256 private constant STORE = 1; // verifyAndStore
    uint256 private constant STORED = 2; // verifyStored

    /// @dev keccak256(digest ‖ signature bytes) → recorded by verifyAndStore
    mapping(bytes32 => bool) private _storedRoots;

    /// @inheritdoc IMiraPullVerifier
    ICommittee public immutable committee;
    /// @inheritdoc IMiraPullVerifier
    uint256 public immutable maxFutureDrift;

    constructor(ICommittee committee_, uint256 maxFutureDrift_) {
        committee = committee_;
        maxFutureDrift = maxFutureDrift_;
    }

    /// @inheritdoc IMiraPullVerifier
    function verify(bytes calldata payload, uint256 maxAge) external returns (Value[] memory) {
        return _verify(payload, maxAge, CHECK);
    }

    /// @inheritdoc IMiraPullVerifier
    function verifyAndStore(bytes calldata payload, uint256 maxAge) external returns (Value[] memory) {
        return _verify(payload, maxAge, STORE);
    }

    /// @inheritdoc IMiraPullVerifier
    function verifyStored(bytes calldata payload, uint256 maxAge) external returns (Value[] memory) {
        return _verify(payload, maxAge, STORED);
    }

    function _verify(bytes calldata payload, uint256 maxAge, uint256 mode)
        private
        returns (Value[] memory values)
    {
        (uint256 k, uint256 m, uint256 flags, uint256 leaves, uint256 proof) = LibPull.layout(payload);
        if (k == 0) revert MalformedPayload(payload.length);

        uint256 chainId;
        address verifier;
        uint64 epoch;
        uint64 round;
        uint32 leafCount;
        bytes32 claimedRoot;
        assembly ("memory-safe") {
            let p := payload.offset
            chainId := shr(192, calldataload(p))
            verifier := shr(96, calldataload(add(p, 8)))
            epoch := shr(192, calldataload(add(p, 28)))
            round := shr(192, calldataload(add(p, 36)))
            leafCount := shr(224, calldataload(add(p, 44)))
            claimedRoot := calldataload(add(p, 48))
        }
        if (chainId != block.chainid) revert WrongChain(block.chainid, chainId);
        if (verifier != address(this)) revert WrongVerifier(address(this), verifier);
        if (leafCount < k) revert InvalidLeafCount(leafCount, k);

        // Rounds are unix milliseconds. Bound the round from above first, so that its age in
        // seconds cannot underflow: a round up to maxFutureDrift ahead counts as age 0.
        uint256 roundSeconds = round / 1000;
        if (roundSeconds > block.timestamp + maxFutureDrift) revert RoundInFuture(round);
        if (roundSeconds < block.timestamp && block.timestamp - roundSeconds > maxAge) {
            revert StaleRoot(round, maxAge);
        }

        (bytes32 root, bool ok) = LibPull.processMultiproof(k, m, flags, leaves, proof, round);
        if (!ok) revert InvalidMultiproof();
        if (root != claimedRoot) revert RootMismatch(root, claimedRoot);

        bytes32 digest = LibPull.digest(block.chainid, address(this), epoch, round, root, leafCount);
        bytes32 slot = _checkSignature(payload, digest, epoch, mode);
        if (mode == STORE && !_storedRoots[slot]) {
            _storedRoots[slot] = true;
            emit RootStored(epoch, round, root, leafCount);
        }

        values = new Value[](k);
        bytes32 previous;
        for (uint256 i; i < k; ++i) {
            Value memory v = values[i];
            uint256 at = leaves + i * LibPull.LEAF_SIZE;
            bytes32 feedId;
            int128 value;
            uint64 observedAt;
            bytes32 commitment;
            assembly ("memory-safe") {
                feedId := calldataload(at)
                let w := calldataload(add(at, 32)) // value int128 ‖ observedAt uint64 ‖ …
                value := sar(128, w)
                observedAt := and(shr(64, w), 0xffffffffffffffff)
                commitment := calldataload(add(at, 56))
            }
            // Strictly ascending: the tree's order, and no leaf twice (siblings could otherwise
            // be swapped under the same root, the commutative hash cannot tell).
            if (i != 0 && feedId <= previous) revert LeavesNotSorted(i);
            previous = feedId;
            if (observedAt < block.timestamp) {
                if (block.timestamp - observedAt > maxAge) revert StaleValue(feedId, observedAt, maxAge);
            } else {
                if (observedAt > block.timestamp + maxFutureDrift) revert ValueInFuture(feedId, observedAt);
                observedAt = uint64(block.timestamp);
            }
            v.feedId = feedId;
            v.value = value;
            v.observedAt = observedAt;
            v.modelCommitment = commitment;
        }
    }

    /// @inheritdoc IMiraPullVerifier
    function rootDigest(uint64 epoch, uint64 round, bytes32 root, uint32 leafCount)
        external
        view
        returns (bytes32)
    {
        return LibPull.digest(block.chainid, address(this), epoch, round, root, leafCount);
    }

    /// @dev Verify the payload's signature of `digest` once per transaction, or (mode STORED)
    ///      find it recorded; returns slot = keccak256(digest ‖ signature bytes), the key of both
    ///      records: a later call with the same root but other signature bytes checks them
    ///      again, so every byte of an accepted payload was checked. The contract keeps nothing
    ///      else in transient storage, and a hash cannot collide with another slot in use.
    function _checkSignature(bytes calldata payload, bytes32 digest, uint64 epoch, uint256 mode)
        private
        returns (bytes32 slot)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, digest)
            calldatacopy(add(p, 0x20), add(payload.offset, 80), 85)
            slot := keccak256(p, 117)
        }
        if (mode == STORED) {
            if (!_storedRoots[slot]) revert RootNotStored(digest);
            return slot;
        }
        uint256 seen;
        assembly ("memory-safe") {
            seen := tload(slot)
        }
        if (seen != 0) return slot;

        uint256 px;
        uint8 parity;
        address commitment;
        uint256 z;
        assembly ("memory-safe") {
            let p := add(payload.offset, 80)
            px := calldataload(p)
            parity := byte(0, calldataload(add(p, 32)))
            commitment := shr(96, calldataload(add(p, 33)))
            z := calldataload(add(p, 53))
        }
        // committee.epochKey(epoch), called and decoded by hand: the high-level call's memory
        // struct and decoder cost ~400 gas of the 30,000 a fresh pull may spend. Its first two
        // words are keyHash (bytes20, left-aligned) and validUntil.
        bytes20 keyHash;
        uint64 validUntil;
        bytes20 presented;
        address target = address(committee);
        bytes4 selector = ICommittee.epochKey.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, selector)
            mstore(add(p, 4), epoch)
            // (two statements: Yul evaluates arguments right to left, so returndatasize() inside
            // the same expression would be read before the call)
            let ok := staticcall(gas(), target, p, 36, p, 0x40)
            if iszero(and(ok, iszero(lt(returndatasize(), 0x80)))) {
                returndatacopy(p, 0, returndatasize())
                revert(p, returndatasize())
            }
            keyHash := and(mload(p), not(0xffffffffffffffffffffffff))
            validUntil := and(mload(add(p, 0x20)), 0xffffffffffffffff)
            // keyHash(px, parity) = bytes20(keccak256(px ‖ parity)), as Committee computes it
            mstore(0x00, px)
            mstore8(0x20, parity)
            presented := and(keccak256(0x00, 0x21), not(0xffffffffffffffffffffffff))
        }
        if (keyHash == bytes20(0)) revert UnknownEpoch(epoch);
        if (block.timestamp > validUntil) revert EpochRetired(epoch, validUntil);
        if (keyHash != presented) revert WrongGroupKey(epoch);
        if (!LibSchnorr.verify(px, parity, digest, commitment, z)) revert InvalidSignature();
        assembly ("memory-safe") {
            tstore(slot, 1)
        }
    }
}
