// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraFeedProxy} from "../src/MiraFeedProxy.sol";
import {Owned} from "../src/Owned.sol";
import {ICommittee} from "../src/interfaces/ICommittee.sol";
import {IMiraSubscriptions} from "../src/consumer/IMiraSubscriptions.sol";
import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice Issue 12, items 8–11: one signed report must not pin, rewind or halt a feed, and no
///         read may serve a time after the block's.
contract FeedSafetyTest is OracleFixture {
    bytes32[] internal ids;

    function setUp() public {
        _deploy();
        ids = _register(3);
    }

    function _maxRound(uint256 t) internal pure returns (uint64) {
        return uint64((t + MAX_FUTURE) * 1000);
    }

    // ------------------------------------------------------------ item 8: rounds bounded by time

    /// @dev Before: one valid signature over round 2^63 − 1 pinned the feed for good.
    function test_roundAfterTheBlocksTimeReverts() public {
        uint256 t = block.timestamp;
        uint64 round = (uint64(1) << 63) - 1;
        bytes memory report = _encode(1, round, _one(ids[0], 666, uint64(t)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraOracle.RoundOutOfRange.selector, round, uint256(_maxRound(t)))
        );
        oracle.transmit(report, sig);
    }

    /// @dev The worst a signed report can do now: the highest round and time accepted, which the
    ///      committee's own rounds overtake once the clock passes them (maxFutureDrift later).
    function test_pinningLastsAtMostTheFutureDrift() public {
        uint256 t = block.timestamp;
        _transmit(1, _maxRound(t), _one(ids[0], 666, uint64(t + MAX_FUTURE)));
        // the honest committee meanwhile: skipped as stale round
        bytes memory report = _encode(1, uint64(t * 1000 + 1000), _updates(ids, 1, uint64(t)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], uint64(t * 1000 + 1000), IMiraOracle.SkipReason.StaleRound);
        oracle.transmit(report, sig);
        t += MAX_FUTURE + 1;
        vm.warp(t);
        _transmit(1, uint64(t * 1000), _one(ids[0], 7, uint64(t)));
        (uint64 r, int128 v, uint64 at) = oracle.latestRound(ids[0]);
        vm.assertEq(r, uint64(t * 1000), "round overtaken");
        vm.assertEq(int256(v), 7, "honest value");
        vm.assertEq(at, t, "honest time");
    }

    function testFuzz_roundsBoundedByBlockTime(uint64 round, uint32 clock) public {
        uint256 t = 1_700_000_000 + uint256(clock);
        vm.warp(t);
        bytes memory report = _encode(1, round, _one(ids[1], 5, uint64(t)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        if (round == 0 || round > _maxRound(t)) {
            vm.expectRevert(
                abi.encodeWithSelector(IMiraOracle.RoundOutOfRange.selector, round, uint256(_maxRound(t)))
            );
            oracle.transmit(report, sig);
        } else {
            oracle.transmit(report, sig);
            (uint64 r,,) = oracle.latestRound(ids[1]);
            vm.assertEq(r, round, "round within the bound applies");
        }
    }

    // ------------------------------------------------------------ item 8: the owner's delayed reset

    function test_ownerResetRecoversAFeedAfterTheDelay() public {
        uint256 t = block.timestamp;
        _transmit(1, _maxRound(t), _one(ids[0], 666, uint64(t + MAX_FUTURE)));

        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.scheduleFeedReset(ids[0]);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.FeedResetNotScheduled.selector, ids[0]));
        oracle.executeFeedReset(ids[0]);
        bytes32 stranger = keccak256("stranger");
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.FeedNotRegistered.selector, stranger));
        oracle.scheduleFeedReset(stranger);

        uint64 eta = uint64(t) + DELAY;
        vm.expectEmit(address(oracle));
        emit IMiraOracle.FeedResetScheduled(ids[0], eta);
        vm.assertEq(oracle.scheduleFeedReset(ids[0]), eta, "eta");
        vm.assertEq(oracle.feedResetEta(ids[0]), eta, "pending reset readable");
        vm.warp(eta - 1);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.ChangeNotReady.selector, eta));
        oracle.executeFeedReset(ids[0]);
        vm.warp(eta);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.FeedReset(ids[0]);
        oracle.executeFeedReset(ids[0]);
        vm.stopPrank();

        vm.assertEq(oracle.feedResetEta(ids[0]), 0, "reset consumed");
        (uint64 r, int128 v, uint64 at) = oracle.latestRound(ids[0]);
        vm.assertEq(r + uint256(at), 0, "empty after the reset");
        vm.assertEq(int256(v), 0, "no value after the reset");
        vm.assertEq(oracle.phaseOf(ids[0]), 2, "a reset starts a new phase");
        // the ended phase stays readable (FeedPhases.t.sol), pinning round and all, as Chainlink's
        // proxy keeps serving an earlier phase's aggregator; only the latest moved on
        (, int256 old,,,) = oracle.getRoundData(ids[0], uint80(1 << 64) | 1);
        vm.assertEq(old, 666, "the ended phase's round 1");
        _transmit(1, uint64(uint256(eta) * 1000), _one(ids[0], 9, eta));
        (r, v,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(v), 9, "the committee's next round applies");
    }

    function test_feedResetCanBeCancelled() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.FeedResetNotScheduled.selector, ids[1]));
        oracle.cancelFeedReset(ids[1]);
        uint64 eta = oracle.scheduleFeedReset(ids[1]);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.FeedResetCancelled(ids[1]);
        oracle.cancelFeedReset(ids[1]);
        vm.warp(eta);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.FeedResetNotScheduled.selector, ids[1]));
        oracle.executeFeedReset(ids[1]);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ item 9: never a time after the block's

    /// @dev Before: updatedAt = observedAt up to maxFutureDrift ahead, and a consumer's
    ///      `block.timestamp - updatedAt` reverted.
    function test_futureObservedAtIsServedAsTheBlocksTime() public {
        uint256 t = block.timestamp;
        _transmit(1, uint64(t * 1000), _one(ids[0], 42, uint64(t + 100)));
        MiraFeedProxy proxy = MiraFeedProxy(oracle.proxyOf(ids[0]));
        (uint80 roundId,, uint256 startedAt, uint256 updatedAt,) = proxy.latestRoundData();
        vm.assertEq(updatedAt, t, "updatedAt capped at the block's time");
        vm.assertEq(startedAt, t, "startedAt capped at the block's time");
        (,, startedAt, updatedAt,) = proxy.getRoundData(roundId);
        vm.assertEq(updatedAt, t, "getRoundData capped too");
        (,, uint256 at,,) = oracle.getRoundData(ids[0], roundId);
        vm.assertEq(at, t, "oracle getRoundData capped");
        vm.warp(t + 40);
        (,,, updatedAt,) = proxy.latestRoundData();
        vm.assertEq(updatedAt, t + 40, "still capped as the clock moves");
        vm.warp(t + 500);
        (,,, updatedAt,) = proxy.latestRoundData();
        vm.assertEq(updatedAt, t + 100, "the observed time once it is past");
    }

    function testFuzz_updatedAtNeverAfterTheBlock(uint32 ahead, uint32 later) public {
        uint256 t = block.timestamp;
        uint64 observedAt = uint64(t + bound(ahead, 0, MAX_FUTURE));
        _transmit(1, uint64(t * 1000), _one(ids[2], 1, observedAt));
        vm.warp(t + bound(later, 0, 2 * MAX_FUTURE));
        (,,, uint256 updatedAt,) = MiraFeedProxy(oracle.proxyOf(ids[2])).latestRoundData();
        vm.assertLe(updatedAt, block.timestamp, "updatedAt after the block");
        vm.assertEq(updatedAt, observedAt < block.timestamp ? observedAt : block.timestamp, "capped exactly");
    }

    // ------------------------------------------------------------ item 10: the latest never moves back

    /// @dev Before: round 5 (ring slot 1) was compared with its own slot only and applied with a
    ///      time older than round 4's.
    function test_olderTimeInANewerRoundIsSkipped() public {
        uint256 t = block.timestamp;
        _transmit(1, 4, _one(ids[0], 1, uint64(t)));
        Update[] memory u = _one(ids[0], 2, uint64(t - 10));
        u = _append(u, Update(ids[1], 3, uint64(t), bytes32(0)));
        bytes memory report = _encode(1, 5, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 5, IMiraOracle.SkipReason.StaleTimestamp);
        oracle.transmit(report, sig);
        (uint64 r, int128 v, uint64 at) = oracle.latestRound(ids[0]);
        vm.assertEq(r, 4, "round kept");
        vm.assertEq(int256(v), 1, "value kept");
        vm.assertEq(at, t, "time kept");
    }

    /// @dev Before: round 7 landed in an empty ring slot after round 10 and became history with
    ///      a lower round than the latest.
    function test_lowerRoundInAnotherSlotIsSkipped() public {
        uint256 t = block.timestamp;
        _transmit(1, 10, _one(ids[0], 1, uint64(t - 5)));
        Update[] memory u = _one(ids[0], 2, uint64(t));
        u = _append(u, Update(ids[1], 3, uint64(t), bytes32(0)));
        bytes memory report = _encode(1, 7, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 7, IMiraOracle.SkipReason.StaleRound);
        oracle.transmit(report, sig);
        (uint80 latest,,,,) = oracle.latestRoundData(ids[0]);
        vm.assertEq(latest, (1 << 64) | 1, "round 7 made no round");
        (,,, uint256 updatedAt,) = oracle.getRoundData(ids[0], latest + 1);
        vm.assertEq(updatedAt, 0, "no second round");
    }

    /// @dev Random rounds and times against one feed: the latest round, time and value only move
    ///      together and only forwards.
    function testFuzz_latestNeverMovesBackwards(uint64[8] memory rounds, uint16[8] memory ages) public {
        uint256 t = block.timestamp;
        uint64 lastRound;
        uint64 lastAt;
        for (uint256 i; i < 8; ++i) {
            uint64 round = uint64(bound(rounds[i], 1, _maxRound(t)));
            uint64 at = uint64(t - bound(ages[i], 0, MAX_AGE));
            bytes memory report = _encode(1, round, _one(ids[0], int128(int256(i)), at));
            IMiraOracle.Signature memory sig = _sign(1, report);
            bool applies = round > lastRound && at > lastAt;
            if (!applies) {
                vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoUpdateApplied.selector, 1, round));
            }
            oracle.transmit(report, sig);
            if (applies) (lastRound, lastAt) = (round, at);
            (uint64 r,, uint64 a) = oracle.latestRound(ids[0]);
            vm.assertEq(r, lastRound, "latest round");
            vm.assertEq(a, lastAt, "latest time");
        }
    }

    // ------------------------------------------------------------ the ring hints

    /// @dev Whatever hint bytes a transmitter appends (or none), a sequence of updates leaves
    ///      the feed exactly as with the right hints: a hint is checked, never trusted.
    function testFuzz_anyHintGivesTheSameResult(uint8[6] memory hints, uint8 steps) public {
        uint256 t = block.timestamp;
        uint256 n = bound(steps, 1, 6);
        for (uint256 i; i < n; ++i) {
            t += 1;
            vm.warp(t);
            Update[] memory u = _one(ids[0], int128(int256(i)), uint64(t));
            u = _append(u, Update(ids[1], int128(int256(i)), uint64(t), bytes32(0)));
            bytes memory report = _encode(1, uint64(t * 1000), u);
            IMiraOracle.Signature memory sig = _sign(1, report);
            // feed 0 with an arbitrary hint, feed 1 with the right one
            bytes32[] memory one = new bytes32[](1);
            one[0] = ids[1];
            bytes memory data = abi.encodePacked(
                abi.encodeCall(oracle.transmit, (report, sig)), bytes1(hints[i]), oracle.ringHints(one)
            );
            (bool ok,) = address(oracle).call(data);
            vm.assertTrue(ok, "transmit with any hint");
        }
        (uint64 r0, int128 v0, uint64 t0) = oracle.latestRound(ids[0]);
        (uint64 r1, int128 v1, uint64 t1) = oracle.latestRound(ids[1]);
        vm.assertEq(r0, r1, "same round");
        vm.assertEq(int256(v0), int256(v1), "same value");
        vm.assertEq(t0, t1, "same time");
        (uint80 id0,,,,) = oracle.latestRoundData(ids[0]);
        (uint80 id1,,,,) = oracle.latestRoundData(ids[1]);
        vm.assertEq(id0, id1, "same round ids");
        for (uint80 id = 1 << 64; id <= id0; ++id) {
            (, int256 a,,,) = oracle.getRoundData(ids[0], id);
            (, int256 b,,,) = oracle.getRoundData(ids[1], id);
            vm.assertEq(a, b, "same history");
        }
    }

    // ------------------------------------------------------------ item 11: an unregistered feed

    /// @dev Before: the whole report reverted with FeedNotRegistered, halting every feed in it.
    function test_unregisteredFeedIsSkippedOthersApply() public {
        bytes32 stranger = keccak256("not registered");
        Update[] memory u = _one(stranger, 1, uint64(block.timestamp));
        u = _append(u, Update(ids[0], 2, uint64(block.timestamp), bytes32(0)));
        bytes memory report = _encode(1, 3, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(stranger, 3, IMiraOracle.SkipReason.UnregisteredFeed);
        oracle.transmit(report, sig);
        (uint64 r, int128 v,) = oracle.latestRound(ids[0]);
        vm.assertEq(r, 3, "registered feed applied");
        vm.assertEq(int256(v), 2, "registered feed value");
        vm.assertFalse(oracle.isRegistered(stranger), "still unregistered");

        report = _encode(1, 4, _one(stranger, 1, uint64(block.timestamp)));
        sig = _sign(1, report);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoUpdateApplied.selector, uint64(1), uint64(4)));
        oracle.transmit(report, sig);
    }
}
