// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Committee} from "./Committee.sol";
import {MiraFeedProxy} from "./MiraFeedProxy.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";
import {LibReport} from "./libraries/LibReport.sol";
import {LibSchnorr} from "./libraries/LibSchnorr.sol";

/// @title MiraOracle
/// @notice Verifies one FROST signature per report and applies its batched feed updates.
/// @dev Storage per feed: RING_SIZE slots, each packing one round's update:
///
///          bit  255      REGISTERED (set for every slot at registration)
///          bits 192..254 round (63 bits; 0 = empty)
///          bits 128..191 observedAt (uint64)
///          bits   0..127 value (int128, two's complement)
///
///      Registration pre-writes the flag into every slot, so an update is always a
///      non-zero → non-zero write (5,000 gas cold) and an unregistered feed reads as 0.
contract MiraOracle is IMiraOracle, Committee {
    uint256 public constant RING_SIZE = 4;
    uint256 internal constant REGISTERED = 1 << 255;
    uint256 internal constant MAX_ROUND = (1 << 63) - 1;
    uint256 internal constant ROUND_SHIFT = 192;
    uint256 internal constant OBSERVED_SHIFT = 128;
    uint256 internal constant U64 = 0xffffffffffffffff;
    uint256 internal constant U128 = 0xffffffffffffffffffffffffffffffff;

    /// @notice An update observed more than this many seconds ago is skipped as stale.
    uint256 public immutable maxAge;
    /// @notice An update observed more than this many seconds after the block is skipped.
    uint256 public immutable maxFutureDrift;

    struct FeedInfo {
        uint8 decimals;
        address proxy;
    }

    mapping(bytes32 feedId => uint256[RING_SIZE]) internal _rings;
    mapping(bytes32 feedId => FeedInfo) internal _feeds;
    mapping(bytes32 feedId => string) internal _descriptions;
    bytes32[] internal _feedIds;

    constructor(address initialOwner, uint64 initialGracePeriod, uint256 maxAge_, uint256 maxFutureDrift_)
        Committee(initialOwner, initialGracePeriod)
    {
        maxAge = maxAge_;
        maxFutureDrift = maxFutureDrift_;
    }

    /// @inheritdoc IMiraOracle
    function transmit(bytes calldata report, Signature calldata signature) external {
        uint256 k = LibReport.count(report);
        if (k == 0) revert MalformedReport(report.length);
        (uint64 epoch, uint64 round) = LibReport.header(report);
        if (round == 0 || round > MAX_ROUND) revert RoundOutOfRange(round);

        _checkEpochKey(epoch, signature.px, signature.parity);
        bytes32 digest = LibReport.digest(block.chainid, address(this), epoch, report);
        if (!LibSchnorr.verify(signature.px, signature.parity, digest, signature.commitment, signature.z)) {
            revert InvalidSignature();
        }

        bytes32[] memory commitments = new bytes32[](k);
        uint256 applied;
        for (uint256 i; i < k; ++i) {
            (bool ok, bytes32 modelCommitment) = _apply(report, i, round);
            if (ok) {
                commitments[applied] = modelCommitment;
                unchecked {
                    ++applied;
                }
            }
        }
        if (applied == 0) revert NoUpdateApplied(epoch, round);
        assembly ("memory-safe") {
            mstore(commitments, applied) // shrink to the applied updates
        }
        emit ReportTransmitted(epoch, round, msg.sender, commitments);
    }

    /// @dev Applies update `i` of an already verified report, or emits why it is skipped.
    ///      Exactly one storage read and at most one write: the ring slot of `round`.
    function _apply(bytes calldata report, uint256 i, uint64 round)
        private
        returns (bool applied, bytes32 modelCommitment)
    {
        bytes32 feedId;
        int128 value;
        uint64 observedAt;
        (feedId, value, observedAt, modelCommitment) = LibReport.update(report, i);
        uint256[RING_SIZE] storage ring = _rings[feedId];
        uint256 slotIndex = round % RING_SIZE;
        uint256 entry = ring[slotIndex];
        if (entry == 0) revert FeedNotRegistered(feedId);

        SkipReason reason;
        if (uint256(round) <= (entry >> ROUND_SHIFT) & MAX_ROUND) {
            reason = _seenBefore(report, i, feedId) ? SkipReason.DuplicateFeed : SkipReason.StaleRound;
        } else if (observedAt <= (entry >> OBSERVED_SHIFT) & U64 || observedAt + maxAge < block.timestamp) {
            reason = SkipReason.StaleTimestamp;
        } else if (observedAt > block.timestamp + maxFutureDrift) {
            reason = SkipReason.FutureTimestamp;
        } else {
            // int128 → uint128 keeps the two's-complement bits; _unpack inverts it
            ring[slotIndex] = (uint256(round) << ROUND_SHIFT) | REGISTERED
                | (uint256(observedAt) << OBSERVED_SHIFT) | uint256(uint128(value));
            return (true, modelCommitment);
        }
        emit UpdateSkipped(feedId, round, reason);
        return (false, modelCommitment);
    }

    /// @dev Only on the skip path: tells a duplicate in this report from a replayed round.
    function _seenBefore(bytes calldata report, uint256 i, bytes32 feedId) private pure returns (bool) {
        for (uint256 j; j < i; ++j) {
            (bytes32 earlier,,,) = LibReport.update(report, j);
            if (earlier == feedId) return true;
        }
        return false;
    }

    /// @inheritdoc IMiraOracle
    function registerFeed(bytes32 feedId, uint8 decimals, string calldata description)
        external
        onlyOwner
        returns (address proxy)
    {
        if (feedId == bytes32(0)) revert InvalidFeedId();
        uint256[RING_SIZE] storage ring = _rings[feedId];
        if (ring[0] != 0) revert FeedAlreadyRegistered(feedId);
        for (uint256 i; i < RING_SIZE; ++i) {
            ring[i] = REGISTERED;
        }
        proxy = address(new MiraFeedProxy(this, feedId, decimals));
        _feeds[feedId] = FeedInfo({decimals: decimals, proxy: proxy});
        _descriptions[feedId] = description;
        _feedIds.push(feedId);
        emit FeedRegistered(feedId, decimals, description, proxy);
    }

    /// @inheritdoc IMiraOracle
    function reportDigest(uint64 epoch, bytes calldata report) external view returns (bytes32) {
        return LibReport.digest(block.chainid, address(this), epoch, report);
    }

    function isRegistered(bytes32 feedId) public view returns (bool) {
        return _rings[feedId][0] != 0;
    }

    function proxyOf(bytes32 feedId) external view returns (address) {
        return _feeds[feedId].proxy;
    }

    function feedCount() external view returns (uint256) {
        return _feedIds.length;
    }

    function feedIdAt(uint256 index) external view returns (bytes32) {
        return _feedIds[index];
    }

    function decimalsOf(bytes32 feedId) external view returns (uint8) {
        _requireRegistered(feedId);
        return _feeds[feedId].decimals;
    }

    function descriptionOf(bytes32 feedId) external view returns (string memory) {
        _requireRegistered(feedId);
        return _descriptions[feedId];
    }

    /// @inheritdoc IMiraOracle
    function latestRound(bytes32 feedId)
        external
        view
        returns (uint64 round, int128 value, uint64 observedAt)
    {
        _requireRegistered(feedId);
        uint256[RING_SIZE] storage ring = _rings[feedId];
        uint256 best;
        for (uint256 i; i < RING_SIZE; ++i) {
            uint256 entry = ring[i];
            // the flag bit is common to all entries, so comparing whole words compares rounds
            if (entry > best) best = entry;
        }
        return _unpack(best);
    }

    /// @inheritdoc IMiraOracle
    function roundData(bytes32 feedId, uint64 round) external view returns (int128 value, uint64 observedAt) {
        _requireRegistered(feedId);
        uint256 entry = _rings[feedId][round % RING_SIZE];
        uint64 stored;
        (stored, value, observedAt) = _unpack(entry);
        if (round == 0 || stored != round) revert NoDataPresent(feedId, round);
    }

    function _requireRegistered(bytes32 feedId) private view {
        if (!isRegistered(feedId)) revert FeedNotRegistered(feedId);
    }

    function _unpack(uint256 entry) private pure returns (uint64 round, int128 value, uint64 observedAt) {
        round = uint64((entry >> ROUND_SHIFT) & MAX_ROUND);
        observedAt = uint64((entry >> OBSERVED_SHIFT) & U64);
        value = int128(uint128(entry & U128));
    }
}
