// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Committee} from "./Committee.sol";
import {MiraFeedProxy} from "./MiraFeedProxy.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";
import {LibReport} from "./libraries/LibReport.sol";
import {LibSchnorr} from "./libraries/LibSchnorr.sol";

/// @title MiraOracle
/// @notice Verifies one FROST signature per report and applies its batched feed updates.
/// @dev Storage per feed: a ring of RING_SIZE slots, _rings[feedId][seq % RING_SIZE] holding the
///      feed's seq-th applied update (seq = 1, 2, 3, … per feed), each slot packing:
///
///          bit  255      REGISTERED (set for every slot at registration)
///          bits 216..254 seq (39 bits, 5·10^11 updates; 0 = empty)
///          bits 168..215 round (48 bits: ms, bounded by the block's time)
///          bits 128..167 observedAt (40 bits: seconds, bounded by the block's time)
///          bits   0..127 value (int128, two's complement)
///
///      Registration pre-writes the flag into every slot, so an update is always a
///      non-zero → non-zero write and an unregistered feed reads as 0.
///
///      The latest entry (the head: the highest seq) is where every update is checked (its
///      round and observedAt must both be exceeded), and the update is written to the slot after
///      it. To find the head without reading every slot, the transmitter appends one hint byte
///      per update to the calldata (after the ABI-encoded arguments: the last k bytes), the
///      head's position, from `ringHints`. A hint is checked, never trusted: position h holds the
///      head iff its seq s has s % RING_SIZE == h and the next position holds seq s + 1 − RING_SIZE
///      (or is empty while s < RING_SIZE) — a later head would sit there instead. A wrong or
///      missing hint costs its sender a scan of the ring, nothing else. Cost per update: two
///      cold reads and one write (see docs/contracts.md, "Gas").
contract MiraOracle is IMiraOracle, Committee {
    uint256 public constant RING_SIZE = 4;
    uint256 internal constant REGISTERED = 1 << 255;
    uint256 internal constant MAX_ROUND = (1 << 48) - 1;
    uint256 internal constant SEQ_SHIFT = 216;
    uint256 internal constant ROUND_SHIFT = 168;
    uint256 internal constant OBSERVED_SHIFT = 128;
    uint256 internal constant U39 = 0x7fffffffff;
    uint256 internal constant U40 = 0xffffffffff;
    uint256 internal constant U48 = 0xffffffffffff;
    uint256 internal constant U64 = 0xffffffffffffffff;
    uint256 internal constant U128 = 0xffffffffffffffffffffffffffffffff;
    /// @dev Rounds are milliseconds (the start of the round's slot, see IMiraOracle).
    uint256 internal constant ROUNDS_PER_SECOND = 1000;
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
    mapping(bytes32 feedId => uint64) internal _resetEtas;
    bytes32[] internal _feedIds;

    constructor(
        address initialOwner,
        uint64 initialGracePeriod,
        uint64 changeDelay_,
        uint256 maxAge_,
        uint256 maxFutureDrift_
    ) Committee(initialOwner, initialGracePeriod, changeDelay_) {
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
        // A round is a time (ms). One from the future would pin every feed it touches until the
        // clock catches up with it: at most maxFutureDrift ahead, like observedAt. The cap at the
        // 48-bit round field is reached in the year 10889.
        uint256 maxRound = (block.timestamp + maxFutureDrift) * ROUNDS_PER_SECOND;
        if (maxRound > MAX_ROUND) maxRound = MAX_ROUND;
        if (round == 0 || round > maxRound) revert RoundOutOfRange(round, maxRound);

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
        bytes4 noneApplied = NoUpdateApplied.selector;
        assembly ("memory-safe") {
            // The event's data is built in place as the ABI encoding of bytes32[]:
            // [0x20][applied][commitment 0]...[commitment applied−1].
            let data := mload(0x40)
            mstore(0x40, add(data, add(0x40, shl(5, k))))
            let out := add(data, 0x40)
            let fresh := or(shl(ROUND_SHIFT, round), REGISTERED)
            let hints := sub(calldatasize(), k) // the last k bytes: one head position per update
            let end := add(report.offset, add(HEADER_SIZE, mul(k, UPDATE_SIZE)))
            for { let p := add(report.offset, HEADER_SIZE) } lt(p, end) { p := add(p, UPDATE_SIZE) } {
                let feedId := calldataload(p)
                let word := calldataload(add(p, 32)) // value int128 ‖ observedAt uint64 ‖ 8 more bytes
                // _rings[feedId]: a fixed array's elements follow its base slot
                mstore(0x00, feedId)
                mstore(0x20, _rings.slot)
                let base := keccak256(0x00, 0x40)
                let h := mod(byte(0, calldataload(hints)), RING_SIZE)
                hints := add(hints, 1)
                let head := sload(add(base, h))
                let seq := and(shr(SEQ_SHIFT, head), U39)
                let next := mod(add(seq, 1), RING_SIZE)
                // The hint names the head iff seq ≡ h and the next slot holds the entry written
                // RING_SIZE − 1 updates earlier (seq + 1 − RING_SIZE), or nothing yet.
                let older := 0
                if gt(add(seq, 1), RING_SIZE) { older := sub(add(seq, 1), RING_SIZE) }
                if iszero(
                    and(
                        eq(h, mod(seq, RING_SIZE)),
                        eq(and(shr(SEQ_SHIFT, sload(add(base, next))), U39), older)
                    )
                ) {
                    // no valid hint: scan the ring for the highest seq
                    head := sload(base)
                    seq := and(shr(SEQ_SHIFT, head), U39)
                    for { let j := 1 } lt(j, RING_SIZE) { j := add(j, 1) } {
                        let e := sload(add(base, j))
                        let es := and(shr(SEQ_SHIFT, e), U39)
                        if gt(es, seq) {
                            head := e
                            seq := es
                        }
                    }
                    next := mod(add(seq, 1), RING_SIZE)
                }
                let observedAt := and(shr(64, word), U64)
                let later := gt(round, and(shr(ROUND_SHIFT, head), U48))
                // The hot path applies the update iff, in one branch:
                //   the feed is registered (head ≠ 0: every slot carries the flag);
                //   round > head's round and observedAt > head's observedAt, so the feed's latest
                //                             round and time never go backwards;
                //   oldest ≤ observedAt ≤ newest ⇔ observedAt − oldest ≤ span, unsigned (an
                //                             observedAt below oldest wraps around to a huge value).
                if and(
                    and(gt(head, 0), later),
                    and(
                        gt(observedAt, and(shr(OBSERVED_SHIFT, head), U40)),
                        iszero(gt(sub(observedAt, oldest), span))
                    )
                ) {
                    // seq ‖ round ‖ observedAt ‖ value: the value's two's-complement bits are word's top 128
                    sstore(
                        add(base, next),
                        or(
                            or(or(fresh, shl(SEQ_SHIFT, add(seq, 1))), shl(OBSERVED_SHIFT, observedAt)),
                            shr(128, word)
                        )
                    )
                    mstore(out, calldataload(add(p, 56)))
                    out := add(out, 0x20)
                    continue
                }
                // Skipped: find why, as IMiraOracle.SkipReason (0 StaleRound, 1 DuplicateFeed,
                // 2 StaleTimestamp, 3 FutureTimestamp, 4 UnregisteredFeed), and say so.
                let reason := 2
                switch later
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
                if iszero(head) { reason := 4 }
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
        if (isRegistered(feedId)) revert FeedAlreadyRegistered(feedId);
        _clear(feedId);
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
        (round, value, observedAt) = _unpack(_rings[feedId][_head(feedId)]);
    }

    /// @inheritdoc IMiraOracle
    function ringHints(bytes32[] calldata feedIds) external view returns (bytes memory hints) {
        hints = new bytes(feedIds.length);
        for (uint256 i; i < feedIds.length; ++i) {
            hints[i] = bytes1(uint8(_head(feedIds[i])));
        }
    }

    /// @dev Position of the feed's highest seq (0 for an empty or unregistered feed).
    function _head(bytes32 feedId) private view returns (uint256 position) {
        uint256[RING_SIZE] storage ring = _rings[feedId];
        uint256 best;
        for (uint256 i; i < RING_SIZE; ++i) {
            uint256 seq = (ring[i] >> SEQ_SHIFT) & U39;
            if (seq > best) (best, position) = (seq, i);
        }
    }

    /// @inheritdoc IMiraOracle
    function roundData(bytes32 feedId, uint64 round) external view returns (int128 value, uint64 observedAt) {
        _requireRegistered(feedId);
        uint256[RING_SIZE] storage ring = _rings[feedId];
        for (uint256 i; round != 0 && i < RING_SIZE; ++i) {
            uint64 stored;
            (stored, value, observedAt) = _unpack(ring[i]);
            if (stored == round) return (value, observedAt);
        }
        revert NoDataPresent(feedId, round);
    }

    /// @inheritdoc IMiraOracle
    /// @dev Delayed like the committee's changes: a reset erases what consumers read.
    function scheduleFeedReset(bytes32 feedId) external onlyOwner returns (uint64 eta) {
        _requireRegistered(feedId);
        eta = _eta();
        _resetEtas[feedId] = eta;
        emit FeedResetScheduled(feedId, eta);
    }

    /// @inheritdoc IMiraOracle
    function cancelFeedReset(bytes32 feedId) external onlyOwner {
        if (_resetEtas[feedId] == 0) revert FeedResetNotScheduled(feedId);
        delete _resetEtas[feedId];
        emit FeedResetCancelled(feedId);
    }

    /// @inheritdoc IMiraOracle
    /// @dev After the reset the next update applies whatever its round (a report's round is
    ///      bounded by the block's time, so nothing signed can pin the feed for longer than
    ///      maxFutureDrift afterwards); a replay is bounded by maxAge like any update.
    function executeFeedReset(bytes32 feedId) external onlyOwner {
        uint64 eta = _resetEtas[feedId];
        if (eta == 0) revert FeedResetNotScheduled(feedId);
        _requireReady(eta);
        delete _resetEtas[feedId];
        _clear(feedId);
        emit FeedReset(feedId);
    }

    /// @inheritdoc IMiraOracle
    function feedResetEta(bytes32 feedId) external view returns (uint64) {
        return _resetEtas[feedId];
    }

    /// @dev Every slot of the feed to "registered, empty".
    function _clear(bytes32 feedId) private {
        uint256[RING_SIZE] storage slots = _rings[feedId];
        for (uint256 i; i < RING_SIZE; ++i) {
            slots[i] = REGISTERED;
        }
    }

    function _requireRegistered(bytes32 feedId) private view {
        if (!isRegistered(feedId)) revert FeedNotRegistered(feedId);
    }

    /// @dev observedAt may be up to maxFutureDrift after the block that stored it; it is served
    ///      as at most block.timestamp so consumers' `block.timestamp - updatedAt` never underflows.
    function _unpack(uint256 entry) private view returns (uint64 round, int128 value, uint64 observedAt) {
        round = uint64((entry >> ROUND_SHIFT) & U48);
        observedAt = uint64((entry >> OBSERVED_SHIFT) & U40);
        if (observedAt > block.timestamp) observedAt = uint64(block.timestamp);
        value = int128(uint128(entry & U128));
    }
}
