// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraOracle} from "../../src/MiraOracle.sol";
import {IMiraOracle} from "../../src/interfaces/IMiraOracle.sol";
import {LibSchnorr} from "../../src/libraries/LibSchnorr.sol";
import {Vm} from "../lib/Vm.sol";

/// @notice Drives MiraOracle with valid, tampered and partly-stale reports, and records any
///         violation of the properties the invariant test asserts. Each property is checked
///         right around the call that could break it, against a snapshot taken just before.
contract OracleHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant N = LibSchnorr.N;
    uint256 internal constant FEEDS = 4;

    uint256 internal constant MAX_FUTURE = 5 minutes; // OracleFixture's maxFutureDrift

    MiraOracle public immutable oracle;
    uint256 internal immutable secret;
    address internal immutable owner;
    bytes32[FEEDS] internal ids;
    /// @dev the latest round a valid report used; rounds are ms, as the committee numbers them
    uint64 public lastRound;
    uint256 internal clock;
    uint256 internal nonce = 1;

    // violations (must stay zero) and coverage counters
    uint256 public roundsDecreased;
    uint256 public invalidChangedState;
    uint256 public skippedChangedFeed;
    uint256 public timesDecreased;
    uint256 public valueChangedInPlace;
    uint256 public unrecoverable;
    uint256 public validApplied;
    uint256 public invalidSent;
    uint256 public pinsApplied;
    uint256 public recoveries;
    /// @dev Chainlink numbering: ids that did not follow the feed's previous id by 0 or 1 in its
    ///      phase (or did not start a new phase at n ≤ 1), and ids read with two answers.
    uint256 public idsNotConsecutive;
    uint256 public idAnsweredTwice;
    /// @dev Ended phases: every round id 0 … n + 1 of a phase, read just before the reset that
    ///      ended it, with the full answer (a hash of the five fields); any later read that differs
    ///      (the reset itself, or any report after it, hints included) counts in oldPhaseChanged.
    ///      Read after the reset and after every valid or pinning report (a change made by a
    ///      forged one would persist until then).
    uint256 public oldPhaseChanged;
    uint256 public oldPhaseRoundsChecked;
    mapping(bytes32 feedId => uint80[]) internal frozenIds;
    mapping(bytes32 feedId => bytes32[]) internal frozenAnswers;
    uint80[FEEDS] internal lastId;
    mapping(bytes32 feedId => mapping(uint80 roundId => int256)) internal answerOf;
    mapping(bytes32 feedId => mapping(uint80 roundId => bool)) internal answered;

    constructor(
        MiraOracle oracle_,
        uint256 secret_,
        address owner_,
        bytes32[FEEDS] memory ids_,
        uint256 clock_
    ) {
        oracle = oracle_;
        secret = secret_;
        owner = owner_;
        ids = ids_;
        clock = clock_;
        for (uint256 i; i < FEEDS; ++i) {
            lastId[i] = 1 << 64; // registered: phase 1, no update yet
        }
    }

    // ------------------------------------------------------------------ actions

    /// @dev A validly signed report for a random subset of feeds; some updates may be stale
    ///      (old round or old timestamp) or too far in the future. The head hints are the node's
    ///      (`ringHints`) or, when `hintSeed` is odd, arbitrary bytes.
    function transmitValid(
        uint8 mask,
        int128 value,
        uint8 roundStep,
        uint8 skew,
        uint8 staleMask,
        bytes32 hintSeed
    ) external {
        clock += 1 + (skew % 30);
        vm.warp(clock);
        mask = uint8(mask % 15) + 1; // non-empty subset of 4 feeds
        // mostly the current round (the clock in ms), sometimes a replay or an older round
        uint64 round = uint64(clock * 1000);
        if (roundStep % 5 == 0 && lastRound > 0) round = lastRound - uint64(roundStep % 3) * 700;
        if (round == 0) round = 1;
        bytes memory report = abi.encodePacked(uint64(1), round);
        uint256[FEEDS] memory before = _snapshot();
        bool[FEEDS] memory bad;
        for (uint256 i; i < FEEDS; ++i) {
            if (mask & (1 << i) == 0) continue;
            uint64 observedAt = uint64(clock);
            if (staleMask & 0x40 != 0 && staleMask & (1 << i) != 0) {
                // within the window but maybe older than the feed's latest time: may apply or not
                report = abi.encodePacked(
                    report, ids[i], value, uint64(clock - 30), keccak256(abi.encode(i, round))
                );
                continue;
            }
            if (staleMask & (1 << i) != 0) {
                bad[i] = true;
                observedAt = (staleMask & 0x80) != 0 ? uint64(clock + 10 minutes) : uint64(clock - 2 hours);
            }
            report = abi.encodePacked(report, ids[i], value, observedAt, keccak256(abi.encode(i, round)));
        }
        IMiraOracle.Signature memory sig = _sign(oracle.reportDigest(1, report));
        if (_send(report, sig, _hints(report, hintSeed))) {
            ++validApplied;
            if (round > lastRound) lastRound = round;
        }
        _checkAfter(before, bad);
    }

    /// @dev The attack of a leaked (or grace-period) key: a valid report with the highest round and
    ///      the latest observedAt the contract accepts, or one beyond (which must revert).
    function transmitPinning(uint8 mask, int128 value, bool beyond) external {
        clock += 1;
        vm.warp(clock);
        mask = uint8(mask % 15) + 1;
        uint64 round = uint64((clock + MAX_FUTURE) * 1000) + (beyond ? 1 : 0);
        bytes memory report = abi.encodePacked(uint64(1), round);
        for (uint256 i; i < FEEDS; ++i) {
            if (mask & (1 << i) == 0) continue;
            report = abi.encodePacked(report, ids[i], value, uint64(clock + MAX_FUTURE), bytes32(0));
        }
        uint256[FEEDS] memory before = _snapshot();
        try oracle.transmit(report, _sign(oracle.reportDigest(1, report))) {
            ++pinsApplied;
            if (round > lastRound) lastRound = round;
        } catch {}
        _checkAfter(before, [false, false, false, false]);
    }

    /// @dev The owner's way out, whatever reports came before: schedule a reset, wait out the
    ///      delay, apply it; then an honest report of the current round must apply.
    function recover(uint8 which, int128 value) external {
        bytes32 feed = ids[which % FEEDS];
        vm.startPrank(owner);
        uint64 eta = oracle.scheduleFeedReset(feed);
        clock = eta;
        vm.warp(clock);
        uint256 frozenFrom = frozenIds[feed].length;
        _freezePhase(feed);
        oracle.executeFeedReset(feed);
        vm.stopPrank();
        _checkFrozen(feed, frozenFrom); // the reset itself changed none of them
        uint64 round = uint64(clock * 1000);
        bytes memory report = abi.encodePacked(uint64(1), round, feed, value, uint64(clock), bytes32(0));
        try oracle.transmit(report, _sign(oracle.reportDigest(1, report))) {
            (uint64 r, int128 v, uint64 t) = oracle.latestRound(feed);
            if (r != round || v != value || t != clock) ++unrecoverable;
            if (round > lastRound) lastRound = round;
            ++recoveries;
        } catch {
            ++unrecoverable;
        }
        _checkIds(which % FEEDS);
    }

    /// @dev A report whose signature, content or epoch is wrong in one of several ways.
    function transmitInvalid(uint8 how, uint256 noise, int128 value) external {
        clock += 1;
        vm.warp(clock);
        bytes memory report = abi.encodePacked(
            uint64(1), uint64(clock * 1000), ids[noise % FEEDS], value, uint64(clock), bytes32(0)
        );
        IMiraOracle.Signature memory sig = _sign(oracle.reportDigest(1, report));
        how %= 5;
        if (how == 0) {
            sig.z = addmod(sig.z, (noise % (N - 1)) + 1, N);
        } else if (how == 1) {
            report[16 + (noise % 88)] ^= 0x01;
        } else if (how == 2) {
            sig.commitment = address(uint160(noise));
        } else if (how == 3) {
            sig = _signDigest(
                uint256(keccak256(abi.encode(noise))) % (N - 1) + 1, oracle.reportDigest(1, report)
            );
        } else {
            report = abi.encodePacked(report, bytes1(0x00)); // malformed length
        }
        uint256[FEEDS] memory before = _snapshot();
        ++invalidSent;
        try oracle.transmit(report, sig) {
            ++invalidChangedState; // accepted at all is a violation
        } catch {}
        uint256[FEEDS] memory afterwards = _snapshot();
        for (uint256 i; i < FEEDS; ++i) {
            if (afterwards[i] != before[i]) ++invalidChangedState;
        }
    }

    // ------------------------------------------------------------------ helpers

    /// @dev The report's hints: the node's, or (odd seed) one arbitrary byte per update.
    function _hints(bytes memory report, bytes32 hintSeed) internal view returns (bytes memory h) {
        uint256 k = (report.length - 16) / 88;
        if (uint256(hintSeed) & 1 == 0) {
            bytes32[] memory feeds = new bytes32[](k);
            for (uint256 j; j < k; ++j) {
                bytes32 f;
                assembly ("memory-safe") {
                    f := mload(add(report, add(0x30, mul(j, 88))))
                }
                feeds[j] = f;
            }
            return oracle.ringHints(feeds);
        }
        h = new bytes(k);
        for (uint256 j; j < k; ++j) {
            h[j] = hintSeed[1 + j];
        }
    }

    /// @dev transmit as a node sends it: the ABI call, then one hint byte per update.
    function _send(bytes memory report, IMiraOracle.Signature memory sig, bytes memory h)
        internal
        returns (bool ok)
    {
        (ok,) = address(oracle).call(abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), h));
    }

    /// @dev Records every round id 0 … n + 1 of the feed's current phase with its full answer.
    function _freezePhase(bytes32 feed) internal {
        (uint80 latest,,,,) = oracle.latestRoundData(feed);
        uint80 phase = (latest >> 64) << 64;
        for (uint80 n; n <= uint64(latest) + 1; ++n) {
            frozenIds[feed].push(phase | n);
            frozenAnswers[feed].push(_answerHash(feed, phase | n));
        }
    }

    /// @dev Ended phases' rounds from index `from` on must read as they did before their reset.
    function _checkFrozen(bytes32 feed, uint256 from) internal {
        uint80[] storage fids = frozenIds[feed];
        for (uint256 j = from; j < fids.length; ++j) {
            ++oldPhaseRoundsChecked;
            if (_answerHash(feed, fids[j]) != frozenAnswers[feed][j]) ++oldPhaseChanged;
        }
    }

    function _answerHash(bytes32 feed, uint80 id) internal view returns (bytes32) {
        (uint80 rid, int256 a, uint256 s, uint256 u, uint80 air) = oracle.getRoundData(feed, id);
        return keccak256(abi.encode(rid, a, s, u, air));
    }

    function _checkAfter(uint256[FEEDS] memory before, bool[FEEDS] memory bad) internal {
        uint256[FEEDS] memory afterwards = _snapshot();
        for (uint256 i; i < FEEDS; ++i) {
            _checkIds(i);
            if (afterwards[i] < before[i]) ++roundsDecreased;
            uint64 t0 = uint64(before[i] >> 128);
            uint64 t1 = uint64(afterwards[i] >> 128);
            if (t1 < t0) ++timesDecreased;
            if (afterwards[i] != before[i] && afterwards[i] >> 192 == before[i] >> 192) {
                ++valueChangedInPlace;
            }
            if (bad[i]) {
                // a skipped update must leave the feed's latest state exactly as it was
                (uint64 r0, int128 v0, uint64 t0) = _latest(i);
                if (r0 != uint64(before[i] >> 192) || uint256(before[i]) != _pack(r0, v0, t0)) {
                    ++skippedChangedFeed;
                }
            }
        }
    }

    /// @dev Each action applies at most one update per feed: its id moves by 0 or 1 within the
    ///      phase, or a reset starts phase + 1 at n = 0 (or 1, if an update followed at once).
    ///      Every id ever read with data keeps its answer while it is kept (0 data after that).
    function _checkIds(uint256 i) internal {
        bytes32 feed = ids[i];
        _checkFrozen(feed, 0);
        (uint80 id, int256 answer,, uint256 updatedAt,) = oracle.latestRoundData(feed);
        uint80 prev = lastId[i];
        if (id >> 64 == prev >> 64) {
            if (id != prev && id != prev + 1) ++idsNotConsecutive;
        } else if (id >> 64 != (prev >> 64) + 1 || uint64(id) > 1) {
            ++idsNotConsecutive;
        }
        lastId[i] = id;
        if (updatedAt != 0) {
            if (!answered[feed][id]) (answered[feed][id], answerOf[feed][id]) = (true, answer);
            else if (answerOf[feed][id] != answer) ++idAnsweredTwice;
        }
        if (uint64(id) > 1) {
            (, int256 before,, uint256 at,) = oracle.getRoundData(feed, id - 1);
            if (at != 0 && answered[feed][id - 1] && answerOf[feed][id - 1] != before) ++idAnsweredTwice;
        }
    }

    /// @dev latest (round, value, observedAt) of each feed, packed so "<" compares rounds first.
    function _snapshot() internal view returns (uint256[FEEDS] memory s) {
        for (uint256 i; i < FEEDS; ++i) {
            (uint64 r, int128 v, uint64 t) = _latest(i);
            s[i] = _pack(r, v, t);
        }
    }

    function _latest(uint256 i) internal view returns (uint64, int128, uint64) {
        return oracle.latestRound(ids[i]);
    }

    function _pack(uint64 r, int128 v, uint64 t) internal pure returns (uint256) {
        return (uint256(r) << 192) | (uint256(t) << 128) | uint256(uint128(v));
    }

    function _sign(bytes32 digest) internal returns (IMiraOracle.Signature memory) {
        return _signDigest(secret, digest);
    }

    function _signDigest(uint256 x, bytes32 digest) internal returns (IMiraOracle.Signature memory sig) {
        Vm.Wallet memory w = vm.createWallet(x);
        uint256 k = uint256(keccak256(abi.encode(digest, nonce++))) % (N - 1) + 1;
        sig.px = w.publicKeyX;
        sig.parity = uint8(w.publicKeyY & 1);
        sig.commitment = vm.addr(k);
        uint256 e = LibSchnorr.challenge(sig.px, sig.parity, digest, sig.commitment);
        sig.z = addmod(k, mulmod(e, x, N), N);
    }
}
