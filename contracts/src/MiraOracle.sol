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
    // LibReport's sizes, restated as literals because inline assembly reads only literal
    // constants; the constructor checks they agree.
    uint256 internal constant HEADER_SIZE = 16;
    /// @dev Upper bound of maxAge and maxFutureDrift (about 136 years): keeps the window
    ///      arithmetic in transmit() far from overflow.
    uint256 internal constant MAX_WINDOW = type(uint32).max;
    uint256 internal constant UPDATE_SIZE = 88;

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
        assert(HEADER_SIZE == LibReport.HEADER_SIZE && UPDATE_SIZE == LibReport.UPDATE_SIZE);
        if (maxAge_ > MAX_WINDOW || maxFutureDrift_ > MAX_WINDOW) {
            revert InvalidWindow(maxAge_, maxFutureDrift_);
        }
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

        uint256 oldest = block.timestamp > maxAge ? block.timestamp - maxAge : 0;
        uint256 newest = block.timestamp + maxFutureDrift;
        uint256 span = newest - oldest;
        bytes32 transmitted = ReportTransmitted.selector;
        bytes32 skipped = UpdateSkipped.selector;
        bytes4 notRegistered = FeedNotRegistered.selector;
        bytes4 noneApplied = NoUpdateApplied.selector;
        assembly ("memory-safe") {
            // The event's data is built in place as the ABI encoding of bytes32[]:
            // [0x20][applied][commitment 0]...[commitment applied−1].
            let data := mload(0x40)
            mstore(0x40, add(data, add(0x40, shl(5, k))))
            let out := add(data, 0x40)
            let fresh := or(shl(ROUND_SHIFT, round), REGISTERED)
            let slotIndex := mod(round, RING_SIZE)
            let end := add(report.offset, add(HEADER_SIZE, mul(k, UPDATE_SIZE)))
            for { let p := add(report.offset, HEADER_SIZE) } lt(p, end) { p := add(p, UPDATE_SIZE) } {
                let feedId := calldataload(p)
                let word := calldataload(add(p, 32)) // value int128 ‖ observedAt uint64 ‖ 8 more bytes
                // _rings[feedId][slotIndex]: a fixed array's elements follow its base slot
                mstore(0x00, feedId)
                mstore(0x20, _rings.slot)
                let slot := add(keccak256(0x00, 0x40), slotIndex)
                let entry := sload(slot)
                if iszero(entry) {
                    mstore(0x00, notRegistered)
                    mstore(0x04, feedId)
                    revert(0x00, 0x24)
                }
                let observedAt := and(shr(64, word), U64)
                // The hot path applies the update iff, in one branch:
                //   round > entry's round   ⇔ fresh > entry (the flag bits are equal, the round
                //                             bits sit above observedAt and value);
                //   observedAt > entry's observedAt;
                //   oldest ≤ observedAt ≤ newest ⇔ observedAt − oldest ≤ span, unsigned (an
                //                             observedAt below oldest wraps around to a huge value).
                if and(
                    and(gt(fresh, entry), gt(observedAt, and(shr(OBSERVED_SHIFT, entry), U64))),
                    iszero(gt(sub(observedAt, oldest), span))
                ) {
                    // round ‖ observedAt ‖ value: the value's two's-complement bits are word's top 128
                    sstore(slot, or(or(fresh, shl(OBSERVED_SHIFT, observedAt)), shr(128, word)))
                    mstore(out, calldataload(add(p, 56)))
                    out := add(out, 0x20)
                    continue
                }
                // Skipped: find why, as IMiraOracle.SkipReason (0 StaleRound, 1 DuplicateFeed,
                // 2 StaleTimestamp, 3 FutureTimestamp), and say so.
                let reason := 2
                switch gt(fresh, entry)
                case 0 {
                    reason := 0
                    // a replay or a duplicate: look for the same feed earlier in this report
                    for { let q := add(report.offset, HEADER_SIZE) } lt(q, p) { q := add(q, UPDATE_SIZE) } {
                        if eq(calldataload(q), feedId) {
                            reason := 1
                            break
                        }
                    }
                }
                default { if gt(observedAt, newest) { reason := 3 } }
                mstore(0x00, reason)
                log3(0x00, 0x20, skipped, feedId, round)
            }
            let applied := shr(5, sub(out, add(data, 0x40)))
            if iszero(applied) {
                mstore(0x00, noneApplied)
                mstore(0x04, epoch)
                mstore(0x24, round)
                revert(0x00, 0x44)
            }
            mstore(data, 0x20)
            mstore(add(data, 0x20), applied)
            log3(data, sub(out, data), transmitted, epoch, round)
        }
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
