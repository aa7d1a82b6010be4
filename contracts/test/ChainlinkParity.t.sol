// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {L2GuardedConsumer} from "./corpus/L2GuardedConsumer.sol";
import {LendingStyleConsumer} from "./corpus/LendingStyleConsumer.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";
import {
    AggregatorV3Interface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/shared/mocks/MockV3Aggregator.sol";

/// @notice The same update sequences into a Mira feed and into Chainlink's own MockV3Aggregator
///         (from the npm package): the same answers through the same consumer, and getRoundData
///         against Chainlink's consecutive numbering. (Chainlink's OCR2Aggregator is not in the
///         npm package; MockV3Aggregator numbers rounds as it does: 1, 2, 3, … per update.)
contract ChainlinkParityTest is OracleFixture {
    bytes32[] internal ids;
    MockV3Aggregator internal chainlink;
    AggregatorV3Interface internal mira;
    uint256 internal t;
    uint64 internal round;
    uint64 internal lastAt;
    /// @dev updates applied; the mock's constructor already made a round 1 (its initial answer),
    ///      which the first update overwrites
    uint80 internal applied;
    uint64 internal epoch = 1;
    uint80 internal constant P1 = 1 << 64;

    function setUp() public {
        _deploy();
        ids = _register(1);
        mira = AggregatorV3Interface(oracle.proxyOf(ids[0]));
        chainlink = new MockV3Aggregator(8, 0);
        t = block.timestamp;
    }

    /// @dev One step of a sequence: kind 0 applies, 1 replays the last round (skipped), 2 is a
    ///      new round with the last observation time (skipped), 3 advances the clock only, 4
    ///      rotates the committee to a new epoch and key (the clock moves the owner's delay), 5
    ///      sends the feed twice in one report (the first applies, the duplicate is skipped).
    function _step(uint8 kind, int128 value) internal {
        if (kind == 3) {
            vm.warp(t += 5);
            return;
        }
        if (kind == 4) {
            epoch = _startEpoch(uint256(keccak256(abi.encode("rotation", epoch))) >> 8, 3, 4);
            t = block.timestamp;
            return;
        }
        vm.warp(t += 1);
        if (kind == 5) {
            round = uint64(t * 1000);
            lastAt = uint64(t);
            Update[] memory u =
                _append(_one(ids[0], value, lastAt), Update(ids[0], ~value, lastAt, bytes32(0)));
            _transmit(epoch, round, u);
            chainlink.updateRoundData(++applied, value, t, t);
            return;
        }
        if (kind == 0) {
            round = uint64(t * 1000);
            lastAt = uint64(t);
            _transmit(epoch, round, _one(ids[0], value, lastAt));
            chainlink.updateRoundData(++applied, value, t, t);
        } else if (round != 0) {
            // skipped by Mira (NoUpdateApplied), never made by Chainlink
            uint64 r = kind == 1 ? round : uint64(t * 1000);
            uint64 at = kind == 1 ? uint64(t) : lastAt;
            vm.expectRevert();
            this.transmitExternal(r, value, at);
        }
    }

    function transmitExternal(uint64 r, int128 value, uint64 at) external {
        _transmit(epoch, r, _one(ids[0], value, at));
    }

    function testFuzz_roundNumberingMatchesChainlink(
        uint8[24] memory kinds,
        int64[24] memory values,
        uint256 depth
    ) public {
        // a shallow ring, so sequences run past the kept history
        depth = bound(depth, 2, 8);
        ids[0] = keccak256("shallow");
        vm.prank(owner);
        mira = AggregatorV3Interface(oracle.registerFeed(ids[0], 8, "SHALLOW / USD", depth));
        for (uint256 i; i < kinds.length; ++i) {
            _step(kinds[i] % 6, int128(values[i]));
        }
        uint256 n = applied;
        (uint80 id,,,,) = mira.latestRoundData();
        vm.assertEq(id, P1 | uint80(n), "latest round id: phase 1 across epochs, one per applied update");
        // every kept round answers as Chainlink's; older ones read as "no data"
        vm.assertEq(oracle.historyDepthOf(ids[0]), depth, "depth");
        for (uint256 r; r <= n + 1; ++r) {
            (uint80 rid, int256 a, uint256 s, uint256 u, uint80 air) = mira.getRoundData(P1 | uint80(r));
            vm.assertEq(rid, P1 | uint80(r), "roundId");
            vm.assertEq(air, rid, "answeredInRound");
            // rounds 1..n that are still kept; with no update applied (n = 0) there is none: the
            // mock's constructor made a round 1 of its own, which Mira never had
            if (r != 0 && r <= n && r + depth > n) {
                (, int256 ra, uint256 rs, uint256 ru,) = chainlink.getRoundData(uint80(r));
                vm.assertEq(a, ra, "answer");
                vm.assertEq(s, rs, "startedAt");
                vm.assertEq(u, ru, "updatedAt");
            } else {
                vm.assertEq(uint256(a) + s + u, 0, "no data");
            }
        }
    }

    /// @dev A sequence in which nothing applies (replays, stale rounds, clock steps, rotations):
    ///      every round id reads as "no data", as an aggregator that never got an update answers
    ///      (found by the ci profile's fuzzing: the comparison once included the mock's own round 1).
    function test_nothingAppliedReadsNoData() public {
        uint8[24] memory kinds =
            [uint8(3), 1, 2, 3, 3, 2, 2, 2, 4, 3, 4, 1, 3, 1, 4, 3, 4, 2, 2, 3, 4, 4, 3, 1];
        int64[24] memory values;
        testFuzz_roundNumberingMatchesChainlink(kinds, values, 13_665);
        (,,, uint256 updatedAt,) = mira.latestRoundData();
        vm.assertEq(updatedAt, 0, "never updated");
    }

    /// @dev Resets between the steps: each phase gets its own Chainlink aggregator, and every
    ///      round id of every phase is checked against what Chainlink's AggregatorProxy answers:
    ///      `phaseAggregators[id >> 64].getRoundData(uint64(id))`, the phase added back to the ids
    ///      (the proxy's getRoundData, written out: AggregatorProxy is not in the npm package).
    function testFuzz_phasesMatchChainlinksProxy(
        uint8[24] memory kinds,
        int64[24] memory values,
        uint256 depth
    ) public {
        depth = bound(depth, 2, 8);
        ids[0] = keccak256("phased");
        vm.prank(owner);
        mira = AggregatorV3Interface(oracle.registerFeed(ids[0], 8, "PHASED / USD", depth));
        MockV3Aggregator[] memory aggregators = new MockV3Aggregator[](kinds.length + 1);
        uint80[] memory made = new uint80[](kinds.length + 1);
        uint256 phases = 1;
        aggregators[0] = chainlink;
        for (uint256 i; i < kinds.length; ++i) {
            if (kinds[i] % 8 == 7) {
                // the owner's reset: Chainlink's proxy moves to a new aggregator (phase + 1)
                made[phases - 1] = applied;
                vm.prank(owner);
                t = oracle.scheduleFeedReset(ids[0]);
                vm.warp(t);
                vm.prank(owner);
                oracle.executeFeedReset(ids[0]);
                chainlink = new MockV3Aggregator(8, 0);
                aggregators[phases++] = chainlink;
                (applied, round) = (0, 0); // round 0: no replay to try until the next update
            } else {
                _step(kinds[i] % 6, int128(values[i]));
            }
        }
        made[phases - 1] = applied;
        (uint80 id,,,,) = mira.latestRoundData();
        vm.assertEq(id, (uint80(phases) << 64) | applied, "latest round id: the current phase's count");
        for (uint256 p = 1; p <= phases; ++p) {
            uint80 phase = uint80(p) << 64;
            uint256 n = made[p - 1];
            for (uint256 r; r <= n + 1; ++r) {
                (uint80 rid, int256 a, uint256 st, uint256 u, uint80 air) =
                    mira.getRoundData(phase | uint80(r));
                vm.assertEq(rid, phase | uint80(r), "roundId");
                vm.assertEq(air, rid, "answeredInRound");
                // r ≤ n: a phase reset before any update has no round 1 (the mock's constructor
                // made one, which no update overwrote); r = n + 1 is never made on either side
                if (r != 0 && r <= n && r + depth > n) {
                    (, int256 ra, uint256 rs, uint256 ru,) = aggregators[p - 1].getRoundData(uint80(r));
                    vm.assertEq(a, ra, "answer");
                    vm.assertEq(st, rs, "startedAt");
                    vm.assertEq(u, ru, "updatedAt");
                } else {
                    vm.assertEq(uint256(a) + st + u, 0, "no data");
                }
            }
        }
        vm.expectRevert();
        mira.getRoundData((uint80(phases + 1) << 64) | 1);
    }

    function test_consumerCorpusReadsTheSameFromBoth() public {
        LendingStyleConsumer onMira = new LendingStyleConsumer(mira, 1 hours);
        LendingStyleConsumer onChainlink =
            new LendingStyleConsumer(AggregatorV3Interface(address(chainlink)), 1 hours);
        int64[6] memory seq = [int64(100e8), 101e8, 99e8, 300e8, 102e8, 103e8];
        for (uint256 i; i < seq.length; ++i) {
            _step(0, seq[i]);
            vm.assertEq(onMira.price(), onChainlink.price(), "price");
            vm.assertEq(onMira.priceWithDeviationCheck(), onChainlink.priceWithDeviationCheck(), "deviation");
            if (i == 3) {
                vm.assertEq(onMira.priceWithDeviationCheck(), 99e18, "300 after 99: the previous price");
            }
            uint256 n = i + 1 < 5 ? i + 1 : 5;
            vm.assertEq(onMira.twap(n), onChainlink.twap(n), "twap");
        }
        // 300 after 99 moved > 50%: both fall back to the previous round's price
        vm.warp(t + 2 hours);
        vm.expectRevert(abi.encodeWithSelector(LendingStyleConsumer.Stale.selector, t));
        onMira.price();
        vm.expectRevert(abi.encodeWithSelector(LendingStyleConsumer.Stale.selector, t));
        onChainlink.price();
    }

    /// @dev The same L2 consumer in front of both feeds, with Chainlink's mock as the uptime
    ///      feed: the same answers and the same reverts through an outage and its grace period.
    function test_l2SequencerGuardSameOnBoth() public {
        MockV3Aggregator uptime = new MockV3Aggregator(0, 0);
        uptime.updateRoundData(1, 0, t - 2 hours, t - 2 hours);
        L2GuardedConsumer onMira = new L2GuardedConsumer(AggregatorV3Interface(address(uptime)), mira);
        L2GuardedConsumer onChainlink = new L2GuardedConsumer(
            AggregatorV3Interface(address(uptime)), AggregatorV3Interface(address(chainlink))
        );
        _step(0, 2500e8);
        vm.assertEq(onMira.getChainlinkDataFeedLatestAnswer(), 2500e8, "mira");
        vm.assertEq(onChainlink.getChainlinkDataFeedLatestAnswer(), 2500e8, "chainlink");
        uptime.updateRoundData(2, 1, t, t); // sequencer down
        L2GuardedConsumer[2] memory both = [onMira, onChainlink];
        for (uint256 i; i < 2; ++i) {
            vm.expectRevert(L2GuardedConsumer.SequencerDown.selector);
            both[i].getChainlinkDataFeedLatestAnswer();
        }
        vm.warp(t += 60);
        uptime.updateRoundData(3, 0, t, t); // back up: grace period
        for (uint256 i; i < 2; ++i) {
            vm.expectRevert(L2GuardedConsumer.GracePeriodNotOver.selector);
            both[i].getChainlinkDataFeedLatestAnswer();
        }
        vm.warp(t += 3601);
        _step(0, 2600e8);
        vm.assertEq(
            onMira.getChainlinkDataFeedLatestAnswer(), onChainlink.getChainlinkDataFeedLatestAnswer(), "same"
        );
    }
}
