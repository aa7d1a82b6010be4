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

        // The event's data is built in place as the ABI encoding of bytes32[]:
        // [0x20][applied][commitment 0]...[commitment applied−1].
        uint256 data;
        assembly ("memory-safe") {
            data := mload(0x40)
            mstore(0x40, add(data, add(0x40, shl(5, k))))
        }
        uint256 applied;
        Window memory w = Window({
            slotIndex: round % RING_SIZE,
            fresh: (uint256(round) << ROUND_SHIFT) | REGISTERED,
            oldest: block.timestamp > maxAge ? block.timestamp - maxAge : 0,
            newest: block.timestamp + maxFutureDrift
        });
        for (uint256 i; i < k;) {
            uint256 p = LibReport.HEADER_SIZE + i * LibReport.UPDATE_SIZE;
            bytes32 feedId;
            uint256 word; // value int128 ‖ observedAt uint64 ‖ first 8 bytes of the commitment
            uint256 slot;
            uint256 entry;
            assembly ("memory-safe") {
                p := add(report.offset, p)
                feedId := calldataload(p)
                word := calldataload(add(p, 32))
                // _rings[feedId][slotIndex]: a fixed array's elements follow its base slot
                mstore(0x00, feedId)
                mstore(0x20, _rings.slot)
                slot := add(keccak256(0x00, 0x40), mload(w))
                entry := sload(slot)
            }
            if (entry == 0) revert FeedNotRegistered(feedId);
            uint256 observedAt = (word >> 64) & U64;
            if (
                round <= (entry >> ROUND_SHIFT) & MAX_ROUND || observedAt <= (entry >> OBSERVED_SHIFT) & U64
                    || observedAt < w.oldest || observedAt > w.newest
            ) {
                _skip(report, i, round, entry, observedAt, w);
            } else {
                assembly ("memory-safe") {
                    // round ‖ observedAt ‖ value: the value's two's-complement bits are word's top 128
                    sstore(slot, or(or(mload(add(w, 0x20)), shl(128, observedAt)), shr(128, word)))
                    mstore(add(data, add(0x40, shl(5, applied))), calldataload(add(p, 56)))
                }
                ++applied;
            }
            unchecked {
                ++i;
            }
        }
        if (applied == 0) revert NoUpdateApplied(epoch, round);
        bytes32 topic = ReportTransmitted.selector;
        assembly ("memory-safe") {
            mstore(data, 0x20)
            mstore(add(data, 0x20), applied)
            log3(data, add(0x40, shl(5, applied)), topic, epoch, round)
        }
    }

    /// @dev What one update of a verified report is checked against.
    struct Window {
        uint256 slotIndex; // ring slot of this round (first field: read with mload(w))
        uint256 fresh; // round and REGISTERED bits of the new entry (second field)
        uint256 oldest; // earliest acceptable observedAt
        uint256 newest; // latest acceptable observedAt
    }

    /// @dev The skip path: find the reason (cheap checks first) and emit it.
    function _skip(
        bytes calldata report,
        uint256 i,
        uint64 round,
        uint256 entry,
        uint256 observedAt,
        Window memory w
    ) private {
        (bytes32 feedId,,,) = LibReport.update(report, i);
        SkipReason reason;
        if (round <= (entry >> ROUND_SHIFT) & MAX_ROUND) {
            reason = _seenBefore(report, i, feedId) ? SkipReason.DuplicateFeed : SkipReason.StaleRound;
        } else if (observedAt > w.newest) {
            reason = SkipReason.FutureTimestamp;
        } else {
            reason = SkipReason.StaleTimestamp;
        }
        emit UpdateSkipped(feedId, round, reason);
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
