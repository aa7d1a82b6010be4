// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraFeedProxy} from "../src/MiraFeedProxy.sol";
import {MiraOracle} from "../src/MiraOracle.sol";
import {Owned} from "../src/Owned.sol";
import {ICommittee} from "../src/interfaces/ICommittee.sol";
import {IMiraSubscriptions} from "../src/consumer/IMiraSubscriptions.sol";
import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

contract MiraOracleTest is OracleFixture {
    bytes32[] internal ids;

    function setUp() public {
        _deploy();
        ids = _register(3);
    }

    // ---------------------------------------------------------------- happy path

    function test_transmitAppliesEveryFeedAndProxiesReadIt() public {
        uint64 t = uint64(block.timestamp - 10);
        _transmit(1, 7, _updates(ids, 4200e8, t));
        for (uint256 i; i < ids.length; ++i) {
            (uint64 round, int128 value, uint64 observedAt) = oracle.latestRound(ids[i]);
            vm.assertEq(round, 7, "round");
            vm.assertEq(int256(value), int256(4200e8) + int256(i), "value");
            vm.assertEq(observedAt, t, "observedAt");

            MiraFeedProxy proxy = MiraFeedProxy(oracle.proxyOf(ids[i]));
            (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) =
                proxy.latestRoundData();
            // Chainlink numbering: phase 1, the feed's first update
            vm.assertEq(roundId, (1 << 64) | 1, "proxy roundId");
            vm.assertEq(answer, int256(4200e8) + int256(i), "proxy answer");
            vm.assertEq(startedAt, t, "proxy startedAt");
            vm.assertEq(updatedAt, t, "proxy updatedAt");
            vm.assertEq(answeredInRound, roundId, "proxy answeredInRound");
            vm.assertEq(proxy.decimals(), 8, "decimals");
            vm.assertEq(proxy.description(), "TEST / USD", "description");
            vm.assertEq(proxy.version(), 2, "version");
        }
    }

    function test_negativeValuesRoundTrip() public {
        _transmit(1, 1, _one(ids[0], type(int128).min, uint64(block.timestamp)));
        (, int128 value,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(value), int256(type(int128).min), "min int128");
        _transmit(1, 2, _one(ids[0], -1, uint64(block.timestamp + 1)));
        (, value,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(value), -1, "-1");
    }

    function test_ringServesRecentRoundsAndForgetsOlderOnes() public {
        // via-IR may fold block.timestamp within one call: keep the clock in a local
        uint256 t = block.timestamp;
        bytes32 small = keccak256("depth-4");
        vm.prank(owner);
        oracle.registerFeed(small, 8, "SMALL / USD", 4);
        ids[0] = small;
        for (uint64 r = 1; r <= 6; ++r) {
            vm.warp(++t);
            _transmit(1, r, _one(ids[0], int128(int64(r)) * 100, uint64(t)));
        }
        MiraFeedProxy proxy = MiraFeedProxy(oracle.proxyOf(ids[0]));
        uint80 p1 = 1 << 64;
        for (uint80 r = 3; r <= 6; ++r) {
            (uint80 roundId, int256 answer,,,) = proxy.getRoundData(p1 | r);
            vm.assertEq(roundId, p1 | r, "roundId");
            vm.assertEq(answer, int256(uint256(r)) * 100, "answer of a ring round");
        }
        // beyond the kept history, round 0 and a round never made: Chainlink's "no data", zeros
        uint80[3] memory gone = [p1 | 2, p1, p1 | 7];
        for (uint256 i; i < 3; ++i) {
            (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) =
                proxy.getRoundData(gone[i]);
            vm.assertEq(roundId, gone[i], "roundId echoed");
            vm.assertEq(answeredIn, gone[i], "answeredInRound echoed");
            vm.assertEq(uint256(answer) + startedAt + updatedAt, 0, "no data");
        }
        // phase 0 and a phase not begun: no aggregator behind Chainlink's proxy either
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoDataPresent.selector, ids[0], uint80(6)));
        proxy.getRoundData(6);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoDataPresent.selector, ids[0], (p1 << 1) | 6));
        proxy.getRoundData((p1 << 1) | 6);
        // an aggregator round above uint32: OCR2Aggregator's all-zero answer, with the phase
        (uint80 hugeId,,,, uint80 hugeAnswered) = proxy.getRoundData(p1 | (uint80(1) << 32));
        vm.assertEq(hugeId, p1, "uint32 overflow: phase only");
        vm.assertEq(hugeAnswered, p1, "uint32 overflow: phase only");
        (uint80 latest,,,,) = proxy.latestRoundData();
        vm.assertEq(latest, p1 | 6, "latest round");
    }

    function test_latestRoundDataIsZeroBeforeFirstUpdate() public view {
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) =
            MiraFeedProxy(oracle.proxyOf(ids[0])).latestRoundData();
        vm.assertEq(roundId, 1 << 64, "roundId: phase 1, no aggregator round yet");
        vm.assertEq(answer, 0, "answer");
        vm.assertEq(startedAt + updatedAt, 0, "timestamps");
        vm.assertEq(answeredInRound, roundId, "answeredInRound");
    }

    function test_modelCommitmentsGoIntoTheEvent() public {
        Update[] memory u = _updates(ids, 1, uint64(block.timestamp));
        bytes32[] memory expected = new bytes32[](u.length);
        for (uint256 i; i < u.length; ++i) {
            expected[i] = u[i].modelCommitment;
        }
        bytes memory report = _encode(1, 9, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.ReportTransmitted(1, 9, expected);
        oracle.transmit(report, sig);
    }

    // ---------------------------------------------------------------- skips

    function test_staleRoundIsSkippedOthersApply() public {
        _transmit(1, 5, _one(ids[0], 1, uint64(block.timestamp)));
        // round 5 again: feed 0's ring slot already holds round 5, so it is skipped; feed 1 is fresh
        Update[] memory u = new Update[](2);
        u[0] = Update(ids[0], 2, uint64(block.timestamp), bytes32(0));
        u[1] = Update(ids[1], 3, uint64(block.timestamp), bytes32(0));
        bytes memory report = _encode(1, 5, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 5, IMiraOracle.SkipReason.StaleRound);
        oracle.transmit(report, sig);
        (, int128 v0,) = oracle.latestRound(ids[0]);
        (uint64 r1, int128 v1,) = oracle.latestRound(ids[1]);
        vm.assertEq(int256(v0), 1, "skipped feed untouched");
        vm.assertEq(r1, 5, "other feed applied");
        vm.assertEq(int256(v1), 3, "other feed value");
    }

    function test_duplicateFeedInOneReportIsSkipped() public {
        Update[] memory u = new Update[](2);
        u[0] = Update(ids[0], 10, uint64(block.timestamp), bytes32(0));
        u[1] = Update(ids[0], 99, uint64(block.timestamp), bytes32(0));
        bytes memory report = _encode(1, 1, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 1, IMiraOracle.SkipReason.DuplicateFeed);
        oracle.transmit(report, sig);
        (, int128 v,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(v), 10, "first occurrence wins");
    }

    function test_staleAndFutureTimestampsAreSkipped() public {
        Update[] memory u = new Update[](3);
        u[0] = Update(ids[0], 1, uint64(block.timestamp - MAX_AGE - 1), bytes32(0));
        u[1] = Update(ids[1], 2, uint64(block.timestamp + MAX_FUTURE + 1), bytes32(0));
        u[2] = Update(ids[2], 3, uint64(block.timestamp), bytes32(0));
        bytes memory report = _encode(1, 1, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 1, IMiraOracle.SkipReason.StaleTimestamp);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[1], 1, IMiraOracle.SkipReason.FutureTimestamp);
        oracle.transmit(report, sig);
        (uint64 r0,,) = oracle.latestRound(ids[0]);
        (uint64 r1,,) = oracle.latestRound(ids[1]);
        (uint64 r2,,) = oracle.latestRound(ids[2]);
        vm.assertEq(r0 + r1, 0, "skipped feeds untouched");
        vm.assertEq(r2, 1, "fresh feed applied");
    }

    function test_timestampMustAdvanceOverTheReplacedEntry() public {
        _transmit(1, 4, _one(ids[0], 1, uint64(block.timestamp)));
        Update[] memory u = _one(ids[0], 2, uint64(block.timestamp)); // same observedAt, slot 0 again
        u = _append(u, Update(ids[1], 5, uint64(block.timestamp), bytes32(0)));
        bytes memory report = _encode(1, 8, u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.UpdateSkipped(ids[0], 8, IMiraOracle.SkipReason.StaleTimestamp);
        oracle.transmit(report, sig);
    }

    // ---------------------------------------------------------------- errors of transmit

    function test_replayedReportReverts() public {
        bytes memory report = _transmit(1, 3, _updates(ids, 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.NoUpdateApplied.selector, uint64(1), uint64(3)));
        oracle.transmit(report, sig);
    }

    function test_malformedReportLengths() public {
        bytes memory good = _encode(1, 1, _updates(ids, 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(1, good);
        uint256[5] memory lens = [uint256(0), 15, 16, 16 + 87, good.length - 1];
        for (uint256 i; i < lens.length; ++i) {
            bytes memory cut = new bytes(lens[i]);
            for (uint256 j; j < lens[i]; ++j) {
                cut[j] = good[j];
            }
            vm.expectRevert(abi.encodeWithSelector(IMiraOracle.MalformedReport.selector, lens[i]));
            oracle.transmit(cut, sig);
        }
        bytes memory longer = abi.encodePacked(good, bytes1(0));
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.MalformedReport.selector, longer.length));
        oracle.transmit(longer, sig);
    }

    function test_roundOutOfRange() public {
        uint256 maxRound = (block.timestamp + MAX_FUTURE) * 1000;
        uint64[4] memory bad = [uint64(0), uint64(maxRound + 1), uint64(1) << 63, type(uint64).max];
        for (uint256 i; i < bad.length; ++i) {
            bytes memory report = _encode(1, bad[i], _updates(ids, 1, uint64(block.timestamp)));
            IMiraOracle.Signature memory sig = _sign(1, report);
            vm.expectRevert(abi.encodeWithSelector(IMiraOracle.RoundOutOfRange.selector, bad[i], maxRound));
            oracle.transmit(report, sig);
        }
        _transmit(1, uint64(maxRound), _updates(ids, 1, uint64(block.timestamp))); // the bound itself is fine
    }

    function test_invalidSignatureRejected() public {
        bytes memory report = _encode(1, 1, _updates(ids, 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        sig.z = addmod(sig.z, 1, N);
        vm.expectRevert(IMiraOracle.InvalidSignature.selector);
        oracle.transmit(report, sig);
    }

    function test_signatureForAnotherChainIsRejected() public {
        bytes memory report = _encode(1, 1, _updates(ids, 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        vm.chainId(block.chainid + 1);
        vm.expectRevert(IMiraOracle.InvalidSignature.selector);
        oracle.transmit(report, sig);
    }

    function test_signatureForAnotherContractIsRejected() public {
        MiraOracle other = new MiraOracle(owner, GRACE, DELAY, MAX_AGE, MAX_FUTURE);
        vm.startPrank(owner);
        other.startEpoch(groupPx, groupParity, 3, _members(4));
        other.registerFeed(ids[0], 8, "TEST / USD");
        vm.stopPrank();
        bytes memory report = _encode(1, 1, _one(ids[0], 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _signDigest(groupSecret, other.reportDigest(1, report));
        other.transmit(report, sig); // valid where it was meant to land
        vm.expectRevert(IMiraOracle.InvalidSignature.selector);
        oracle.transmit(report, sig);
    }

    function test_signatureForAnotherEpochIsRejected() public {
        // epoch 2 with the same key: a signature over epoch 1's digest must not verify for epoch 2
        _startEpoch(groupSecret, 3, 4);
        bytes memory report = _encode(2, 1, _one(ids[0], 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _signDigest(groupSecret, oracle.reportDigest(1, report));
        vm.expectRevert(IMiraOracle.InvalidSignature.selector);
        oracle.transmit(report, sig);
    }

    function test_unknownEpochAndWrongKey() public {
        bytes memory report = _encode(9, 1, _one(ids[0], 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(9, report);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.UnknownEpoch.selector, uint64(9)));
        oracle.transmit(report, sig);

        report = _encode(1, 1, _one(ids[0], 1, uint64(block.timestamp)));
        sig = _signDigest(0x5EC2E7, oracle.reportDigest(1, report));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.WrongGroupKey.selector, uint64(1)));
        oracle.transmit(report, sig);
    }

    function test_previousEpochValidDuringGraceThenExpired() public {
        uint256 oldSecret = groupSecret;
        _startEpoch(0xFEED5EC2E7, 5, 7);
        bytes memory report = _encode(1, 1, _one(ids[0], 1, uint64(block.timestamp)));
        oracle.transmit(report, _signDigest(oldSecret, oracle.reportDigest(1, report)));

        uint256 t = block.timestamp + GRACE + 1; // a local: via-IR may fold block.timestamp
        vm.warp(t);
        report = _encode(1, 2, _one(ids[0], 2, uint64(t)));
        IMiraOracle.Signature memory sig = _signDigest(oldSecret, oracle.reportDigest(1, report));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.EpochExpired.selector, uint64(1), uint64(t - 1)));
        oracle.transmit(report, sig);
        _transmit(2, 3, _one(ids[0], 3, uint64(t))); // the new epoch signs
    }

    // ---------------------------------------------------------------- registry & committee errors

    function test_constructorRejectsHugeWindows() public {
        uint256 huge = uint256(type(uint32).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.InvalidWindow.selector, huge, uint256(1)));
        new MiraOracle(owner, GRACE, DELAY, huge, 1);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.InvalidWindow.selector, uint256(1), huge));
        new MiraOracle(owner, GRACE, DELAY, 1, huge);
    }

    function test_registerFeedErrors() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.FeedAlreadyRegistered.selector, ids[0]));
        oracle.registerFeed(ids[0], 8, "again");
        vm.expectRevert(IMiraOracle.InvalidFeedId.selector);
        oracle.registerFeed(bytes32(0), 8, "zero");
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.InvalidHistoryDepth.selector, 1));
        oracle.registerFeed(keccak256("shallow"), 8, "x", 1);
        vm.expectRevert(abi.encodeWithSelector(IMiraOracle.InvalidHistoryDepth.selector, 128));
        oracle.registerFeed(keccak256("deep"), 8, "x", 128);
        oracle.registerFeed(keccak256("deepest"), 8, "x", 127);
        vm.assertEq(oracle.historyDepthOf(keccak256("deepest")), 127, "the maximum depth");
        vm.assertEq(oracle.historyDepthOf(ids[0]), 61, "the default: one hour at 60 s");
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.registerFeed(keccak256("x"), 8, "x");
        vm.assertEq(oracle.feedCount(), 4, "feed count");
        vm.assertEq(oracle.feedIdAt(2), ids[2], "feed index");
    }

    function test_scheduleEpochStartErrors() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidGroupKey.selector, uint256(0), uint8(0)));
        oracle.scheduleEpochStart(0, 0, 3, _members(4));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidGroupKey.selector, N, uint8(0)));
        oracle.scheduleEpochStart(N, 0, 3, _members(4));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidGroupKey.selector, groupPx, uint8(2)));
        oracle.scheduleEpochStart(groupPx, 2, 3, _members(4));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidThreshold.selector, uint256(5), uint256(4)));
        oracle.scheduleEpochStart(groupPx, groupParity, 5, _members(4));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidThreshold.selector, uint256(0), uint256(4)));
        oracle.scheduleEpochStart(groupPx, groupParity, 0, _members(4));
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.InvalidThreshold.selector, uint256(1), uint256(256))
        );
        oracle.scheduleEpochStart(groupPx, groupParity, 1, _members(256));

        ICommittee.Member[] memory m = _members(4);
        m[2].operator = address(0);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidMember.selector, uint256(2)));
        oracle.scheduleEpochStart(groupPx, groupParity, 3, m);
        m = _members(4);
        m[1].identityKey = hex"02";
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidMember.selector, uint256(1)));
        oracle.scheduleEpochStart(groupPx, groupParity, 3, m);
        m = _members(4);
        m[3].operator = m[0].operator;
        vm.expectRevert(abi.encodeWithSelector(ICommittee.DuplicateMember.selector, m[0].operator));
        oracle.scheduleEpochStart(groupPx, groupParity, 3, m);
        vm.stopPrank();

        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.scheduleEpochStart(groupPx, groupParity, 3, _members(4));
        vm.assertEq(oracle.currentEpoch(), 1, "no epoch started by failed calls");
        (uint64 scheduled,,,,,) = oracle.scheduledEpochStart();
        vm.assertEq(scheduled, 0, "nothing scheduled by failed calls");
    }

    function test_committeeViews() public {
        (uint256 px, uint8 parity) = oracle.groupKey(1);
        vm.assertEq(px, groupPx, "px");
        vm.assertEq(parity, groupParity, "parity");
        ICommittee.Member[] memory m = oracle.members(1);
        vm.assertEq(m.length, 4, "members");
        vm.assertEq(m[1].p2pUrl, "http://127.0.0.1:9001", "p2p url");
        ICommittee.EpochKey memory k = oracle.epochKey(1);
        vm.assertEq(k.threshold, 3, "t");
        vm.assertEq(k.size, 4, "n");
        vm.assertEq(k.validUntil, type(uint64).max, "current epoch does not expire");
        vm.expectRevert(abi.encodeWithSelector(ICommittee.UnknownEpoch.selector, uint64(2)));
        oracle.members(2);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.UnknownEpoch.selector, uint64(2)));
        oracle.groupKey(2);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.FeedNotRegistered.selector, bytes32(0)));
        oracle.latestRound(bytes32(0));
    }

    function test_gracePeriodAndOwnership() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.scheduleGracePeriod(1);
        vm.startPrank(owner);
        uint64 eta = oracle.scheduleGracePeriod(60);
        vm.warp(eta);
        oracle.executeGracePeriod();
        vm.stopPrank();
        vm.assertEq(oracle.gracePeriod(), 60, "grace");

        address next = address(0xB0B);
        vm.prank(owner);
        oracle.transferOwnership(next);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotPendingOwner.selector, address(this)));
        oracle.acceptOwnership();
        vm.prank(next);
        oracle.acceptOwnership();
        vm.assertEq(oracle.owner(), next, "owner");
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Flipping any bit of a signed report either breaks its shape or its signature, and
    ///      nothing is stored either way.
    function testFuzz_tamperedReportChangesNothing(uint256 position, uint8 bit) public {
        bytes memory report = _encode(1, 1, _updates(ids, 77, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = _sign(1, report);
        position = bound(position, 0, report.length - 1);
        report[position] = report[position] ^ bytes1(uint8(1) << (bit % 8));
        (bool ok,) = address(oracle).call(abi.encodeCall(oracle.transmit, (report, sig)));
        vm.assertFalse(ok, "tampered report accepted");
        for (uint256 i; i < ids.length; ++i) {
            (uint64 round,,) = oracle.latestRound(ids[i]);
            vm.assertEq(round, 0, "state changed");
        }
    }

    function testFuzz_randomSignatureRejected(uint256 z, address commitment, uint64 round) public {
        round = uint64(bound(round, 1, type(uint32).max));
        bytes memory report = _encode(1, round, _updates(ids, 1, uint64(block.timestamp)));
        IMiraOracle.Signature memory sig = IMiraOracle.Signature(groupPx, z, commitment, groupParity);
        vm.expectRevert(IMiraOracle.InvalidSignature.selector);
        oracle.transmit(report, sig);
    }

    function testFuzz_valuesAndTimesRoundTrip(int128 value, uint32 ago, uint64 round) public {
        round = uint64(bound(round, 1, (block.timestamp + MAX_FUTURE) * 1000));
        uint64 observedAt = uint64(block.timestamp - bound(ago, 0, MAX_AGE));
        _transmit(1, round, _one(ids[1], value, observedAt));
        (uint64 r, int128 v, uint64 t) = oracle.latestRound(ids[1]);
        vm.assertEq(r, round, "round");
        vm.assertEq(int256(v), int256(value), "value");
        vm.assertEq(t, observedAt, "observedAt");
        (uint80 id,,,,) = oracle.latestRoundData(ids[1]);
        (, int256 v2,, uint256 t2,) = oracle.getRoundData(ids[1], id);
        vm.assertEq(int256(v2), int256(value), "ring value");
        vm.assertEq(t2, observedAt, "ring observedAt");
    }
}
