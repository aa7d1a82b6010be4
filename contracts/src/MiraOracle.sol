// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Committee} from "./Committee.sol";
import {MiraFeedProxyFactory} from "./MiraFeedProxy.sol";
import {MiraSubscriptions} from "./MiraSubscriptions.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";
import {LibReport} from "./libraries/LibReport.sol";
import {LibSchnorr} from "./libraries/LibSchnorr.sol";

/// @title MiraOracle
/// @notice Verifies one FROST signature per report and applies its batched feed updates.
/// @dev Storage per feed: a ring of `depth` slots (2 ≤ depth ≤ MAX_HISTORY_DEPTH, chosen at
///      registration), _rings[feedId][seq % depth] holding the feed's seq-th applied update
///      (seq = 1, 2, 3, … per feed: Chainlink's aggregator round id), each slot packing:
///
///          bit  255      REGISTERED (set for every slot at registration)
///          bits 248..254 depth (7 bits; the same in every slot of the feed; 0 in a slot at or
///                        beyond the depth, which is never written)
///          bits 216..247 seq (32 bits, as Chainlink's OCR2 aggregator's uint32 round ids;
///                        4.3·10^9 updates per phase: 136 years at one a second, 34 at one
///                        every 250 ms block; 0 = empty)
///          bits 168..215 round (48 bits: ms, bounded by the block's time)
///          bit  167      SUBSCRIBED (meaningful in the head: the feed has subscribers)
///          bits 128..166 observedAt (39 bits: seconds, bounded by the block's time, so below
///                        2^39 until the year 19,400)
///          bits   0..127 value (int128, two's complement)
///
///      Registration pre-writes flag and depth into every slot, so an update is always a
///      non-zero → non-zero write, the hot path learns the depth from the slot it reads anyway,
///      and an unregistered feed reads as 0.
///
///      The latest entry (the head: the highest seq) is where every update is checked (its
///      round and observedAt must both be exceeded), and the update is written to the slot after
///      it. To find the head without reading every slot, the transmitter appends one hint byte
///      per update to the calldata (after the ABI-encoded arguments: the last k bytes), the
///      head's position, from `ringHints`. A hint is checked, never trusted: position h holds the
///      head iff its seq s has s % depth == h and the next position holds no seq above s (it
///      holds s + 1 − depth, or nothing while s < depth; a later head would have written s + 1
///      there). A position at or
///      beyond depth reads as 0 and fails the check. A wrong or missing hint costs its sender a
///      scan of the ring, nothing else. Cost per update: two cold reads and one write (see
///      docs/contracts.md, "Gas"). Reads (latestRoundData, ringHints) find the head by a binary
///      search instead (_head: 1 + ⌈log2 depth⌉ reads).
///
///      Subscriptions (MiraSubscriptions): whether a feed has subscribers is the SUBSCRIBED bit
///      of its head, read by transmit anyway and carried into each new head like the depth, so
///      a feed without subscribers pays one AND per update for them. (Un)subscribing the first
///      (last) consumer sets (clears) it in the head, which it finds by _head's search;
///      a reset rewrites every slot with it.
///
///      Consumers read Chainlink round ids through the proxy: phase << 64 | seq, the phase
///      starting at 1 and moving on at each feed reset (which restarts seq), as Chainlink's
///      proxies move to a new phase with a new aggregator. The current phase's ring always lives
///      at _rings[feedId], so transmit finds it from the feedId alone (no storage read for the
///      phase); a reset copies the ended phase's entries to _pastRings[feedId][phase], which
///      transmit never addresses, and serves them from there as Chainlink's proxy keeps serving
///      an earlier phase from that phase's aggregator.
contract MiraOracle is IMiraOracle, Committee, MiraSubscriptions {
    /// @notice The most entries a feed can keep (7 bits in every slot; hints stay one byte).
    uint256 public constant MAX_HISTORY_DEPTH = 127;
    /// @notice The fewest: the latest entry and the one before it, which consumers compare.
    uint256 public constant MIN_HISTORY_DEPTH = 2;
    /// @notice Depth of `registerFeed` without one: a one-hour TWAP at a 60-second heartbeat.
    uint256 public constant DEFAULT_HISTORY_DEPTH = 61;
    uint256 internal constant REGISTERED = 1 << 255;
    uint256 internal constant DEPTH_SHIFT = 248;
    uint256 internal constant U7 = 0x7f;
    uint256 internal constant PHASE_OFFSET = 64;
    /// @dev The flag and the round bits of a slot (a literal: assembly reads only literals;
    ///      the constructor checks it).
    uint256 internal constant FLAG_AND_ROUND =
        0x8000000000ffffffffffff000000000000000000000000000000000000000000;
    uint256 internal constant MAX_ROUND = (1 << 48) - 1;
    uint256 internal constant SEQ_SHIFT = 216;
    uint256 internal constant ROUND_SHIFT = 168;
    uint256 internal constant OBSERVED_SHIFT = 128;
    uint256 internal constant U32 = 0xffffffff;
    uint256 internal constant U39 = 0x7fffffffff;
    uint256 internal constant SUBSCRIBED = 1 << 167;
    /// @dev What a new head takes over from the old one: the depth and the SUBSCRIBED bit
    ///      (a literal for assembly; the constructor checks it).
    uint256 internal constant CARRIED = 0x7f00000000000000000000800000000000000000000000000000000000000000;
    uint256 internal constant U48 = 0xffffffffffff;
    uint256 internal constant U64 = 0xffffffffffffffff;
    /// @dev Rounds are milliseconds (the start of the round's slot, see IMiraOracle).
    uint256 internal constant ROUNDS_PER_SECOND = 1000;
    // LibReport's sizes, restated as literals because inline assembly reads only literal
    // constants; the constructor checks they agree.
    uint256 internal constant HEADER_SIZE = 16;
    /// @dev Upper bound of maxAge and maxFutureDrift (about 136 years): keeps the window
    ///      arithmetic in transmit() far from overflow.
    uint256 internal constant MAX_WINDOW = type(uint32).max;
    uint256 internal constant UPDATE_SIZE = 88;

    /// @dev Deploys each feed's proxy (keeps the proxy's creation code out of this runtime code).
    MiraFeedProxyFactory internal immutable _proxyFactory;
    /// @notice An update observed more than this many seconds ago is skipped as stale.
    uint256 public immutable maxAge;
    /// @notice An update observed more than this many seconds after the block is skipped.
    uint256 public immutable maxFutureDrift;

    struct FeedInfo {
        uint8 decimals;
        address proxy;
        /// @dev Chainlink's phase: 1 at registration, + 1 at each reset (seq restarts at 1).
        uint16 phase;
    }

    mapping(bytes32 feedId => uint256[MAX_HISTORY_DEPTH]) internal _rings;
    mapping(bytes32 feedId => FeedInfo) internal _feeds;
    mapping(bytes32 feedId => string) internal _descriptions;
    mapping(bytes32 feedId => uint64) internal _resetEtas;
    /// @inheritdoc IMiraOracle
    address public feedRegistrar;
    bytes32[] internal _feedIds;
    /// @dev The rings of ended phases, frozen at the reset that ended each: only
    ///      executeFeedReset writes here and only getRoundData reads. Keyed by (feedId, phase), not
    ///      at an offset from _rings[feedId], so no one-byte hint (an offset below 128 from the
    ///      current ring's base) can address one.
    mapping(bytes32 feedId => mapping(uint256 phase => uint256[MAX_HISTORY_DEPTH])) internal _pastRings;

    constructor(
        address initialOwner,
        uint64 initialGracePeriod,
        uint64 changeDelay_,
        uint256 maxAge_,
        uint256 maxFutureDrift_
    ) Committee(initialOwner, initialGracePeriod, changeDelay_) {
        assert(HEADER_SIZE == LibReport.HEADER_SIZE && UPDATE_SIZE == LibReport.UPDATE_SIZE);
        assert(FLAG_AND_ROUND == REGISTERED | (U48 << ROUND_SHIFT));
        assert(CARRIED == (U7 << DEPTH_SHIFT) | SUBSCRIBED && SUBSCRIBED >> OBSERVED_SHIFT == U39 + 1);
        if (maxAge_ > MAX_WINDOW || maxFutureDrift_ > MAX_WINDOW) {
            revert InvalidWindow(maxAge_, maxFutureDrift_);
        }
        maxAge = maxAge_;
        maxFutureDrift = maxFutureDrift_;
        _proxyFactory = new MiraFeedProxyFactory();
    }

    /// @inheritdoc IMiraOracle
    function transmit(bytes calldata report, Signature calldata signature) external {
        _requireNotInCallbacks();
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
        // [subscribed, subscribedEnd): the calldata offsets of applied updates of feeds with
        // subscribers, for the callbacks after every update is stored. The region's start is
        // not kept on the stack through the loop (it would not fit): it is the k words below
        // the free memory pointer, found again after the loop.
        uint256 subscribedEnd;
        assembly ("memory-safe") {
            // The event's data is built in place as the ABI encoding of bytes32[]:
            // [0x20][applied][commitment 0]...[commitment applied−1].
            let data := mload(0x40)
            subscribedEnd := add(data, add(0x40, shl(5, k)))
            mstore(0x40, add(subscribedEnd, shl(5, k)))
            let out := add(data, 0x40)
            let roundKey := shl(ROUND_SHIFT, round)
            let fresh := or(roundKey, REGISTERED)
            let hints := sub(calldatasize(), k) // the last k bytes: one head position per update
            let end := add(report.offset, add(HEADER_SIZE, mul(k, UPDATE_SIZE)))
            mstore(0x20, _rings.slot)
            for { let p := add(report.offset, HEADER_SIZE) } lt(p, end) { p := add(p, UPDATE_SIZE) } {
                let feedId := calldataload(p)
                let word := calldataload(add(p, 32)) // value int128 ‖ observedAt uint64 ‖ 8 more bytes
                // _rings[feedId]: a fixed array's elements follow its base slot (0x20 holds
                // _rings.slot for the whole loop: only 0x00 is written in it)
                mstore(0x00, feedId)
                let base := keccak256(0x00, 0x40)
                // a position beyond the ring (≥ depth) reads 0 and fails the check below
                let h := and(byte(0, calldataload(hints)), U7)
                hints := add(hints, 1)
                let head := sload(add(base, h))
                let depth := and(shr(DEPTH_SHIFT, head), U7)
                let seq := and(shr(SEQ_SHIFT, head), U32)
                let next := mod(add(seq, 1), depth)
                // The hint names the head iff seq ≡ h (mod depth) and the next slot holds no later
                // seq. Why that suffices: updates are numbered without gaps and seq n sits at
                // n % depth, so the next slot holds the highest seq ≡ seq + 1 written so far: seq + 1
                // or later if any update followed this one, else seq + 1 − depth or nothing (0).
                // (An unregistered feed passes at h = 0 with head = 0, and is skipped below.)
                if iszero(
                    and(
                        eq(h, mod(seq, depth)),
                        iszero(gt(and(shr(SEQ_SHIFT, sload(add(base, next))), U32), seq))
                    )
                ) {
                    // no valid hint: scan the ring for the highest seq (slot 0 gives the depth)
                    head := sload(base)
                    depth := and(shr(DEPTH_SHIFT, head), U7)
                    seq := and(shr(SEQ_SHIFT, head), U32)
                    for { let j := 1 } lt(j, depth) { j := add(j, 1) } {
                        let e := sload(add(base, j))
                        let es := and(shr(SEQ_SHIFT, e), U32)
                        if gt(es, seq) {
                            head := e
                            seq := es
                        }
                    }
                    next := mod(add(seq, 1), depth)
                }
                let observedAt := and(shr(64, word), U64)
                // The head's round in place (bits 168..215), or, for an unregistered feed
                // (head = 0: flag clear), 2^255, above any round: one compare tests both.
                let later := gt(roundKey, xor(and(head, FLAG_AND_ROUND), REGISTERED))
                // The hot path applies the update iff, in one branch:
                //   `later`: the feed is registered (head ≠ 0: every slot carries the flag) and
                //                             round > head's round;
                //   observedAt > head's observedAt, so the feed's latest round and time never go
                //                             backwards;
                //   oldest ≤ observedAt ≤ newest ⇔ observedAt − oldest ≤ span, unsigned (an
                //                             observedAt below oldest wraps around to a huge value).
                if and(
                    later,
                    and(
                        gt(observedAt, and(shr(OBSERVED_SHIFT, head), U39)),
                        iszero(gt(sub(observedAt, oldest), span))
                    )
                ) {
                    // flag ‖ depth ‖ seq ‖ round ‖ subscribed ‖ observedAt ‖ value: depth and
                    // subscribed bits are the head's, the value's two's-complement bits are
                    // word's top 128 (observedAt ≤ newest < 2^39 never reaches the subscribed bit)
                    sstore(
                        add(base, next),
                        or(
                            or(
                                or(fresh, and(head, CARRIED)),
                                or(shl(SEQ_SHIFT, add(seq, 1)), shl(OBSERVED_SHIFT, observedAt))
                            ),
                            shr(128, word)
                        )
                    )
                    mstore(out, calldataload(add(p, 56)))
                    out := add(out, 0x20)
                    if and(head, SUBSCRIBED) {
                        mstore(subscribedEnd, p)
                        subscribedEnd := add(subscribedEnd, 0x20)
                    }
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
        uint256 subscribed;
        assembly ("memory-safe") {
            // k again, from the report's ABI length word (the decoder checked it is report.length)
            let count := div(sub(calldataload(sub(report.offset, 0x20)), HEADER_SIZE), UPDATE_SIZE)
            subscribed := sub(mload(0x40), shl(5, count))
        }
        if (subscribedEnd != subscribed) _callBack(subscribed, subscribedEnd, round);
    }

    /// @inheritdoc IMiraOracle
    function registerFeed(bytes32 feedId, uint8 decimals, string calldata description)
        external
        returns (address proxy)
    {
        return _register(feedId, decimals, description, DEFAULT_HISTORY_DEPTH);
    }

    /// @inheritdoc IMiraOracle
    function registerFeed(bytes32 feedId, uint8 decimals, string calldata description, uint256 historyDepth)
        external
        returns (address proxy)
    {
        return _register(feedId, decimals, description, historyDepth);
    }

    function _register(bytes32 feedId, uint8 decimals, string calldata description, uint256 depth)
        private
        returns (address proxy)
    {
        // the owner or the registrar: one check for both overloads (a modifier is inlined twice)
        if (msg.sender != feedRegistrar) _checkOwner();
        if (feedId == bytes32(0)) revert InvalidFeedId();
        if (isRegistered(feedId)) revert FeedAlreadyRegistered(feedId);
        if (depth < MIN_HISTORY_DEPTH || depth > MAX_HISTORY_DEPTH) revert InvalidHistoryDepth(depth);
        _clear(feedId, depth);
        proxy = _proxyFactory.deploy(feedId, decimals);
        _feeds[feedId] = FeedInfo({decimals: decimals, proxy: proxy, phase: 1});
        _descriptions[feedId] = description;
        _feedIds.push(feedId);
        emit FeedRegistered(feedId, decimals, description, proxy);
    }

    /// @inheritdoc IMiraOracle
    function setFeedRegistrar(address registrar) external onlyOwner {
        feedRegistrar = registrar;
        emit FeedRegistrarSet(registrar);
    }

    /// @inheritdoc IMiraOracle
    function reportDigest(uint64 epoch, bytes calldata report) external view returns (bytes32) {
        return LibReport.digest(block.chainid, address(this), epoch, report);
    }

    /// @inheritdoc IMiraOracle
    function isRegistered(bytes32 feedId) public view returns (bool) {
        return _rings[feedId][0] != 0;
    }

    /// @inheritdoc IMiraOracle
    function proxyOf(bytes32 feedId) external view returns (address) {
        return _feeds[feedId].proxy;
    }

    /// @inheritdoc IMiraOracle
    function feedCount() external view returns (uint256) {
        return _feedIds.length;
    }

    /// @inheritdoc IMiraOracle
    function feedIdAt(uint256 index) external view returns (bytes32) {
        return _feedIds[index];
    }

    /// @inheritdoc IMiraOracle
    function decimalsOf(bytes32 feedId) external view returns (uint8) {
        _requireRegistered(feedId);
        return _feeds[feedId].decimals;
    }

    /// @inheritdoc IMiraOracle
    function descriptionOf(bytes32 feedId) external view returns (string memory) {
        _requireRegistered(feedId);
        return _descriptions[feedId];
    }

    /// @inheritdoc IMiraOracle
    function historyDepthOf(bytes32 feedId) external view returns (uint256) {
        _requireRegistered(feedId);
        return _depth(_rings[feedId][0]);
    }

    /// @inheritdoc IMiraOracle
    function phaseOf(bytes32 feedId) external view returns (uint16) {
        _requireRegistered(feedId);
        return _feeds[feedId].phase;
    }

    /// @inheritdoc IMiraOracle
    function latestRound(bytes32 feedId)
        external
        view
        returns (uint64 round, int128 value, uint64 observedAt)
    {
        _requireRegistered(feedId);
        (, uint256 entry) = _head(feedId);
        (, round, value, observedAt) = _unpack(entry);
    }

    /// @inheritdoc IMiraOracle
    function ringHints(bytes32[] calldata feedIds) external view returns (bytes memory hints) {
        hints = new bytes(feedIds.length);
        for (uint256 i; i < feedIds.length; ++i) {
            (uint256 position,) = _head(feedIds[i]);
            hints[i] = bytes1(uint8(position));
        }
    }

    /// @inheritdoc IMiraOracle
    /// @dev As OCR2Aggregator.latestRoundData behind a Chainlink proxy: before the first update
    ///      (or after a reset) the aggregator round is 0 and every field but the phase is 0.
    function latestRoundData(bytes32 feedId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        _requireRegistered(feedId);
        (, uint256 entry) = _head(feedId);
        (uint256 seq,, int128 value, uint64 observedAt) = _unpack(entry);
        roundId = _roundId(_feeds[feedId].phase, seq);
        return (roundId, value, observedAt, observedAt, roundId);
    }

    /// @inheritdoc IMiraOracle
    /// @dev Chainlink's edge cases, one by one (OCR2Aggregator.getRoundData behind
    ///      AggregatorProxy.getRoundData, which splits the id into phase ‖ uint64):
    ///        - a phase with no aggregator (0, or after the feed's current phase): the proxy
    ///          calls address(0) and reverts; here NoDataPresent;
    ///        - an aggregator round above uint32: OCR2 returns all zeros, the proxy adds the
    ///          phase: (phase << 64, 0, 0, 0, phase << 64);
    ///        - a round of an earlier phase: what that phase's ring held when the reset ended it,
    ///          as Chainlink's proxy asks the earlier phase's aggregator (which keeps serving);
    ///        - round 0, a round never made in its phase and, Mira only, a round no longer kept
    ///          in its phase's ring: OCR2 returns (roundId, 0, 0, 0, roundId) for a round it has
    ///          no transmission for, so do we — updatedAt = 0 is Chainlink's "round not
    ///          complete", which consumers check.
    function getRoundData(bytes32 feedId, uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        _requireRegistered(feedId);
        uint256 phase = roundId_ >> PHASE_OFFSET;
        uint256 current = _feeds[feedId].phase;
        if (phase == 0 || phase > current) revert NoDataPresent(feedId, roundId_);
        uint256 seq = uint64(roundId_);
        if (seq > U32) return (_roundId(phase, 0), 0, 0, 0, _roundId(phase, 0));
        if (seq != 0) {
            // every phase's ring has the feed's depth (fixed at registration), so seq n sits at
            // n % depth in whichever ring holds its phase
            uint256[MAX_HISTORY_DEPTH] storage ring =
                phase == current ? _rings[feedId] : _pastRings[feedId][phase];
            (uint256 stored,, int128 value, uint64 observedAt) =
                _unpack(ring[seq % _depth(_rings[feedId][0])]);
            // the slot holds this round unless a later one overwrote it, or it is still empty
            // (an ended phase's ring keeps only its entries with data: the rest read 0)
            if (stored == seq) return (roundId_, value, observedAt, observedAt, roundId_);
        }
        return (roundId_, 0, 0, 0, roundId_);
    }

    /// @dev Position and entry of the feed's highest seq (position 0 for an empty or unregistered
    ///      feed), by a binary search: 1 + ⌈log2 depth⌉ reads (7 at the default depth of 61, 8 at
    ///      127) where a scan reads every slot. Transmit does not call it (its hint is checked in
    ///      place, and its fallback for a bad hint stays the scan, so transmit's gas is as before).
    ///
    ///      Invariant: in the current phase, after its s updates, position p holds the highest
    ///      seq n ≤ s with n ≡ p (mod depth), or seq 0 if there is none. It holds because _clear
    ///      (registration, reset) sets every seq to 0, and the only other write of a seq is
    ///      transmit's: seq s + 1 at (s + 1) % depth, s being the head's seq, found by a hint it
    ///      checks or by the scan (the SUBSCRIBED bit's writes keep the seq). So, with
    ///      h = s % depth (the head) and b = s − h, a multiple of depth (position 0's seq: 0 while
    ///      s < depth, since seqs start at 1 and nothing has wrapped onto position 0 yet):
    ///        - p ≤ h: position p holds b + p (≤ s, and ≥ 1 except at p = 0 before the first
    ///          wrap, where it holds b = 0: b + p all the same);
    ///        - p > h: b + p > s was not written yet, so position p holds b + p − depth if b ≥
    ///          depth (the previous lap), else nothing: 0, which is not b + p = p ≥ 1.
    ///      Hence "position p holds seq b + p" holds for every p ≤ h and for no p > h, and the
    ///      search keeps it true at `position` and false at `beyond` (beyond = depth standing for
    ///      "past the ring"), halving the gap until beyond = position + 1: position = h. An
    ///      unregistered feed reads depth 0 and returns position 0 with entry 0. Checked against
    ///      the scan in test/RingHead.t.sol.
    function _head(bytes32 feedId) private view returns (uint256 position, uint256 entry) {
        uint256[MAX_HISTORY_DEPTH] storage ring = _rings[feedId];
        assembly ("memory-safe") {
            entry := sload(ring.slot)
            let b := and(shr(SEQ_SHIFT, entry), U32)
            let beyond := and(shr(DEPTH_SHIFT, entry), U7)
            for {} lt(add(position, 1), beyond) {} {
                let mid := shr(1, add(position, beyond))
                let e := sload(add(ring.slot, mid))
                switch eq(and(shr(SEQ_SHIFT, e), U32), add(b, mid))
                case 0 { beyond := mid }
                default {
                    position := mid
                    entry := e
                }
            }
        }
    }

    function _depth(uint256 entry) private pure returns (uint256) {
        return (entry >> DEPTH_SHIFT) & U7;
    }

    function _roundId(uint256 phase, uint256 seq) private pure returns (uint80) {
        return uint80((phase << PHASE_OFFSET) | seq);
    }

    /// @inheritdoc IMiraOracle
    /// @dev Delayed like the committee's changes: a reset ends the latest value consumers read.
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
        // a reset restarts seq at 1: a new phase, so no round id is ever answered twice; the
        // ended phase's rounds move out of the current ring, which starts empty, so the new
        // phase's latest is never one of them (a reset recovers a frozen or poisoned feed)
        FeedInfo storage info = _feeds[feedId];
        uint256 depth = _depth(_rings[feedId][0]);
        _archive(feedId, info.phase, depth);
        ++info.phase;
        _clear(feedId, depth);
        emit FeedReset(feedId);
    }

    /// @inheritdoc IMiraOracle
    function feedResetEta(bytes32 feedId) external view returns (uint64) {
        return _resetEtas[feedId];
    }

    /// @dev Copies the current ring's entries that hold a round to the ended phase's ring, each at
    ///      its position (seq % depth, as getRoundData looks it up). The owner pays for it: one
    ///      new storage word per kept round (22,100 gas, ~27,100 with its cold read and the
    ///      rewrite in _clear; 3.53M at 127 kept rounds, FeedPhases.t.sol).
    function _archive(bytes32 feedId, uint256 phase, uint256 depth) private {
        uint256[MAX_HISTORY_DEPTH] storage ring = _rings[feedId];
        uint256[MAX_HISTORY_DEPTH] storage past = _pastRings[feedId][phase];
        for (uint256 i; i < depth; ++i) {
            uint256 entry = ring[i];
            if ((entry >> SEQ_SHIFT) & U32 != 0) past[i] = entry;
        }
    }

    /// @dev Every slot of the feed to "registered, empty" with its depth (and SUBSCRIBED if the
    ///      feed has subscribers: the empty ring's head is slot 0, but each slot may become it).
    function _clear(bytes32 feedId, uint256 depth) private {
        uint256[MAX_HISTORY_DEPTH] storage slots = _rings[feedId];
        uint256 empty = REGISTERED | (depth << DEPTH_SHIFT);
        if (_subscriberCount(feedId) != 0) empty |= SUBSCRIBED;
        for (uint256 i; i < depth; ++i) {
            slots[i] = empty;
        }
    }

    function _requireRegistered(bytes32 feedId) private view {
        if (!isRegistered(feedId)) revert FeedNotRegistered(feedId);
    }

    /// @dev MiraSubscriptions' hook.
    function _requireFeed(bytes32 feedId) internal view override {
        _requireRegistered(feedId);
    }

    /// @dev MiraSubscriptions' hook: the flag lives in the head, which every new head copies it
    ///      from (found by _head's search, paid by the first subscriber and the last to leave).
    function _setSubscribedFlag(bytes32 feedId, bool subscribed) internal override {
        (uint256 h, uint256 entry) = _head(feedId);
        _rings[feedId][h] = subscribed ? entry | SUBSCRIBED : entry & ~SUBSCRIBED;
    }

    /// @dev observedAt may be up to maxFutureDrift after the block that stored it; it is served
    ///      as at most block.timestamp so consumers' `block.timestamp - updatedAt` never underflows.
    function _unpack(uint256 entry)
        private
        view
        returns (uint256 seq, uint64 round, int128 value, uint64 observedAt)
    {
        seq = (entry >> SEQ_SHIFT) & U32;
        round = uint64((entry >> ROUND_SHIFT) & U48);
        observedAt = uint64((entry >> OBSERVED_SHIFT) & U39);
        if (observedAt > block.timestamp) observedAt = uint64(block.timestamp);
        value = int128(uint128(entry & U128));
    }
}
