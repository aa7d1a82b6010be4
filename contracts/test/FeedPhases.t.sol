// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraFeedProxy} from "../src/MiraFeedProxy.sol";
import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice A feed reset starts a new phase, as a new aggregator behind a Chainlink proxy does, and
///         the earlier phases stay readable as Chainlink's proxy keeps asking their aggregators:
///         getRoundData(phase << 64 | n) answers for an ended phase exactly what it answered just
///         before the reset ended it, for every n, forever after. Nothing a transmitter sends
///         (its hints included) reaches an ended phase's rounds, and the new phase's latest is
///         never one of them.
contract FeedPhasesTest is OracleFixture {
    struct Answer {
        uint80 roundId;
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
        uint80 answeredInRound;
    }

    /// @dev forge prints it with -vv
    event log_named_uint(string key, uint256 val);

    uint80 internal constant P1 = 1 << 64;
    uint80 internal constant P2 = 2 << 64;
    uint80 internal constant P3 = 3 << 64;
    uint80 internal constant P4 = 4 << 64;
    /// @dev round ids probed per phase: n = 0 … PROBED − 1, plus the uint32 overflow
    uint256 internal constant PROBED = 40;

    bytes32 internal feed;
    MiraFeedProxy internal proxy;
    uint256 internal t;

    function setUp() public {
        _deploy();
        t = block.timestamp;
    }

    // ------------------------------------------------------------ helpers

    function _registerFeed(uint256 depth) internal {
        feed = keccak256(abi.encode("phases", depth));
        vm.prank(owner);
        proxy = MiraFeedProxy(oracle.registerFeed(feed, 8, "PHASES / USD", depth));
    }

    function _apply(int128 value) internal {
        vm.warp(++t);
        _transmit(1, uint64(t * 1000), _one(feed, value, uint64(t)));
    }

    /// @dev transmit with one chosen hint byte instead of the node's (`ringHints`) one.
    function _applyHinted(int128 value, bytes1 hint) internal {
        vm.warp(++t);
        bytes memory report = _encode(1, uint64(t * 1000), _one(feed, value, uint64(t)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        (bool ok,) =
            address(oracle).call(abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), hint));
        require(ok, "an update after the reset did not apply");
    }

    /// @dev Every answer of `phase` for n = 0 … PROBED − 1 and for an n above uint32.
    function _readPhase(uint80 phase) internal view returns (Answer[] memory all) {
        all = new Answer[](PROBED + 1);
        for (uint256 n; n <= PROBED; ++n) {
            uint80 id = n == PROBED ? phase | (uint80(1) << 32) : phase | uint80(n);
            Answer memory a = all[n];
            (a.roundId, a.answer, a.startedAt, a.updatedAt, a.answeredInRound) = proxy.getRoundData(id);
        }
    }

    function _assertSame(Answer[] memory a, Answer[] memory b, string memory what) internal pure {
        for (uint256 n; n < a.length; ++n) {
            vm.assertEq(a[n].roundId, b[n].roundId, what);
            vm.assertEq(a[n].answer, b[n].answer, what);
            vm.assertEq(a[n].startedAt, b[n].startedAt, what);
            vm.assertEq(a[n].updatedAt, b[n].updatedAt, what);
            vm.assertEq(a[n].answeredInRound, b[n].answeredInRound, what);
        }
    }

    /// @dev Schedules a reset and waits out the delay; the caller reads, then `_executeReset`.
    function _scheduleReset() internal {
        vm.prank(owner);
        t = oracle.scheduleFeedReset(feed);
        vm.warp(t);
    }

    function _executeReset() internal {
        vm.prank(owner);
        oracle.executeFeedReset(feed);
    }

    function _assertNoData(uint80 id) internal view {
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) =
            proxy.getRoundData(id);
        vm.assertEq(roundId, id, "roundId echoed");
        vm.assertEq(answeredIn, id, "answeredInRound echoed");
        vm.assertEq(uint256(answer) + startedAt + updatedAt, 0, "no data");
    }

    function _assertLatest(uint80 id, int256 value, uint256 at) internal view {
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) =
            proxy.latestRoundData();
        vm.assertEq(roundId, id, "latest roundId");
        vm.assertEq(answer, value, "latest answer");
        vm.assertEq(startedAt, at, "latest startedAt");
        vm.assertEq(updatedAt, at, "latest updatedAt");
        vm.assertEq(answeredIn, id, "latest answeredInRound");
    }

    // ------------------------------------------------------------ tests

    /// @dev Before: after a reset every round of the ended phase read as "no data".
    function test_resetKeepsEveryEarlierPhaseReadable() public {
        _registerFeed(4);
        for (int128 v = 1; v <= 6; ++v) {
            _apply(v * 100);
        }
        // phase 1 keeps rounds 3 … 6 (depth 4)
        _scheduleReset();
        Answer[] memory phase1 = _readPhase(P1);
        for (uint256 n = 3; n <= 6; ++n) {
            vm.assertEq(phase1[n].answer, int256(n) * 100, "phase 1 keeps its last four rounds");
        }
        _executeReset();

        vm.assertEq(oracle.phaseOf(feed), 2, "a reset starts a new phase");
        _assertLatest(P2, 0, 0); // the new phase has no round yet, whatever the old ring holds
        _assertSame(_readPhase(P1), phase1, "phase 1 after the reset");
        _assertNoData(P2 | 1);

        _apply(700);
        _assertLatest(P2 | 1, 700, t); // the new phase starts at n = 1
        _apply(800);
        _assertLatest(P2 | 2, 800, t);
        _assertSame(_readPhase(P1), phase1, "phase 1 after the new phase's updates");
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoDataPresent.selector, feed, P3 | 1));
        proxy.getRoundData(P3 | 1);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoDataPresent.selector, feed, uint80(1)));
        proxy.getRoundData(1);

        // a second reset ends phase 2, and a third one an empty phase 3
        _scheduleReset();
        Answer[] memory phase2 = _readPhase(P2);
        _executeReset();
        _scheduleReset();
        Answer[] memory phase3 = _readPhase(P3);
        _executeReset();
        _apply(900);
        _assertLatest(P4 | 1, 900, t);
        _assertSame(_readPhase(P1), phase1, "phase 1 after three resets");
        _assertSame(_readPhase(P2), phase2, "phase 2 after two resets");
        _assertSame(_readPhase(P3), phase3, "phase 3 (never updated) after its reset");
        (, int256 second,,,) = proxy.getRoundData(P2 | 2);
        vm.assertEq(second, 800, "phase 2's round 2");
        _assertNoData(P3 | 1);
    }

    /// @dev The hints of the new phase's updates are anything (the old ring's head position among
    ///      them), and phase 1 ends pinned by a validly signed update at the highest round and time
    ///      the contract takes: had transmit read the ended phase's ring, the new phase's first
    ///      update would be "stale" and revert NoUpdateApplied; had it written there, phase 1's
    ///      answers would change.
    function testFuzz_hintsNeverReachAnEarlierPhase(
        uint256 depth,
        uint256 nOld,
        uint256 nNew,
        bytes32 hintSeed,
        bool pinned
    ) public {
        depth = bound(depth, 2, 12);
        nOld = bound(nOld, 0, 30);
        nNew = bound(nNew, 1, 30);
        _registerFeed(depth);
        for (uint256 i = 1; i <= nOld; ++i) {
            _apply(int128(int256(i)));
        }
        if (pinned) {
            vm.warp(++t);
            _transmit(1, _maxRound(t), _one(feed, -666, uint64(t + MAX_FUTURE)));
        }
        bytes32[] memory one = new bytes32[](1);
        one[0] = feed;
        bytes1 oldHead = oracle.ringHints(one)[0];
        _scheduleReset();
        Answer[] memory phase1 = _readPhase(P1);
        _executeReset();
        _assertSame(_readPhase(P1), phase1, "phase 1 after the reset");

        for (uint256 i = 1; i <= nNew; ++i) {
            bytes1 hint = i % 2 == 1 ? oldHead : hintSeed[i % 32];
            _applyHinted(int128(int256(1000 + i)), hint);
            _assertLatest(P2 | uint80(i), int256(1000 + i), t);
        }
        // a write to phase 1's ring would still be there: one read at the end sees any
        _assertSame(_readPhase(P1), phase1, "phase 1 after the hinted updates");
        // the new phase's kept rounds are its own
        for (uint256 n = 1; n <= nNew; ++n) {
            (, int256 a,, uint256 u,) = proxy.getRoundData(P2 | uint80(n));
            if (n + depth > nNew) vm.assertEq(a, int256(1000 + n), "phase 2 answer");
            else vm.assertEq(u, 0, "phase 2 round no longer kept");
        }
    }

    /// @dev The owner pays for keeping the ended phase: one new storage word per kept round. At
    ///      the deepest ring this stays a small part of a block (30M gas on mainnet, more on L2s).
    ///      (3,531,963 measured here with cold slots; 3,548,068 as its own call under
    ///      `forge test --isolate -vvvv`.)
    function test_resetAtMaxDepthCostsTheOwnerUnderFourMillionGas() public {
        uint256 depth = oracle.MAX_HISTORY_DEPTH();
        _registerFeed(depth);
        for (uint256 i = 1; i <= depth + 3; ++i) {
            _apply(int128(int256(i)));
        }
        _scheduleReset();
        Answer[] memory phase1 = _readPhase(P1);
        vm.cool(address(oracle)); // the ring's slots cold, as in the owner's own transaction
        vm.prank(owner);
        uint256 before = gasleft();
        oracle.executeFeedReset(feed);
        uint256 used = before - gasleft();
        emit log_named_uint("executeFeedReset gas, 127 kept rounds", used);
        vm.assertLe(used, 4_000_000, "reset gas");
        _assertSame(_readPhase(P1), phase1, "phase 1 after the reset");
        (, int256 last,,,) = proxy.getRoundData(P1 | uint80(depth + 3));
        vm.assertEq(last, int256(depth + 3), "phase 1's last round");
    }

    function _maxRound(uint256 at) internal pure returns (uint64) {
        return uint64((at + MAX_FUTURE) * 1000);
    }
}
