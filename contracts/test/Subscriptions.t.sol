// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "../src/Owned.sol";
import {IMiraConsumer} from "../src/consumer/IMiraConsumer.sol";
import {IMiraSubscriptions} from "../src/consumer/IMiraSubscriptions.sol";
import {MiraConsumer} from "../src/consumer/MiraConsumer.sol";
import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {
    EtherRefuser,
    GasBurningConsumer,
    GasProbeConsumer,
    GreedyManagerConsumer,
    RecordingConsumer,
    ReentrantConsumer,
    ReturnBombConsumer,
    RevertingConsumer
} from "./harness/Consumers.sol";
import {Vm} from "./lib/Vm.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice Subscriptions and callbacks: every custom error with its exact revert data, what a
///         consumer receives, isolation from hostile consumers, payment and the exact-gas rule.
contract SubscriptionsTest is OracleFixture {
    uint256 internal constant PRICE = 1 gwei;
    uint32 internal constant LIMIT = 200_000;
    bytes32[] internal ids;
    /// @dev Deploys the consumers (vm.prank before each `new`), so it is their subscription
    ///      manager (MiraConsumer's deployer) and may subscribe them.
    address internal subOwner = address(0x5B0);
    address internal transmitter = address(0x7E4);
    uint64 internal round;
    /// @dev GasProbeConsumer's own gas before it reads gasleft(), for one update: selector
    ///      dispatch, calldata decoding and MiraConsumer's caller check (measured; a consumer
    ///      starved by EIP-150's 1/64 rule would see less than its limit minus this).
    uint256 internal constant PROBE_DISPATCH = 285;

    /// @notice What a measured transmit cost (shown with -vvv).
    event TransmitGas(uint256 gas);

    function setUp() public {
        _deploy();
        ids = _register(3);
        vm.txGasPrice(PRICE);
        vm.deal(subOwner, 100 ether);
        round = _nowRound();
    }

    // ------------------------------------------------------------------ helpers

    function _feeds(bytes32 a) internal pure returns (bytes32[] memory f) {
        f = new bytes32[](1);
        f[0] = a;
    }

    function _feeds(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory f) {
        f = new bytes32[](2);
        f[0] = a;
        f[1] = b;
    }

    function _subscribe(address consumer, bytes32[] memory feeds, uint32 limit, uint256 value) internal {
        vm.prank(subOwner);
        oracle.subscribe{value: value}(consumer, feeds, limit);
    }

    /// @dev A report applying `updates` one second later, sent by `transmitter`.
    function _next(Update[] memory updates) internal {
        vm.warp(block.timestamp + 1);
        round = _nowRound();
        for (uint256 i; i < updates.length; ++i) {
            updates[i].observedAt = uint64(block.timestamp);
        }
        bytes memory report = _encode(1, round, updates);
        _transmitAs(transmitter, report, _sign(1, report), updates);
    }

    /// @dev As _transmitHinted, with `sender` as the transaction's sender (the transmitter).
    function _transmitAs(
        address sender,
        bytes memory report,
        IMiraOracle.Signature memory sig,
        Update[] memory u
    ) internal {
        bytes32[] memory feeds = new bytes32[](u.length);
        for (uint256 i; i < u.length; ++i) {
            feeds[i] = u[i].feedId;
        }
        bytes memory data =
            abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), oracle.ringHints(feeds));
        vm.prank(sender);
        (bool ok,) = address(oracle).call(data);
        vm.assertTrue(ok, "transmit reverted");
    }

    function _values(bytes32[] memory feeds, int128 base) internal pure returns (Update[] memory) {
        return _updates(feeds, base, 0);
    }

    function _balance(address consumer) internal view returns (uint256 b) {
        (,, b,) = oracle.subscriptionOf(consumer);
    }

    // ------------------------------------------------------------------ delivery

    function test_consumerGetsItsAppliedUpdatesOnceWithTheStoredValues() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0], ids[2]), LIMIT, 1 ether);
        _next(_values(ids, 1000)); // all three feeds; c follows 0 and 2
        vm.assertEq(c.calls(), 1, "called once per report");
        IMiraConsumer.Update[] memory got = c.last();
        vm.assertEq(got.length, 2, "both of its feeds, not the third");
        for (uint256 i; i < 2; ++i) {
            (uint64 r, int128 v, uint64 t) = oracle.latestRound(got[i].feedId);
            vm.assertEq(got[i].feedId, ids[i * 2], "report order");
            vm.assertEq(int256(got[i].value), int256(v), "value as stored");
            vm.assertEq(got[i].observedAt, t, "observedAt as stored");
            vm.assertEq(got[i].round, r, "round as stored");
            vm.assertEq(got[i].round, round, "the report's round");
        }
        vm.assertEq(int256(got[1].value), 1002, "feed 2's value");
    }

    function test_negativeValuesArriveSignExtended() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        _next(_one(ids[0], -5, 0));
        vm.assertEq(int256(c.last()[0].value), -5, "negative value");
    }

    function test_noCallbackForUnsubscribedOrSkippedFeeds() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        _next(_one(ids[1], 7, 0));
        vm.assertEq(c.calls(), 0, "another feed's update");
        _next(_one(ids[0], 7, 0));
        vm.assertEq(c.calls(), 1, "its feed's update");
        // a report whose update of ids[0] is skipped (stale timestamp) but whose other update applies
        Update[] memory u = _values(_feeds(ids[0], ids[1]), 9);
        vm.warp(block.timestamp + 1);
        u[0].observedAt = uint64(block.timestamp - 1); // not after the stored observedAt
        u[1].observedAt = uint64(block.timestamp);
        _transmit(1, _nowRound(), u);
        vm.assertEq(c.calls(), 1, "skipped update: no callback");
    }

    function test_unsubscribeStopsCallbacksAndResubscribeResumes() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        _next(_one(ids[0], 1, 0));
        vm.prank(subOwner);
        oracle.unsubscribe(address(c), _feeds(ids[0]));
        vm.assertEq(oracle.subscribersOf(ids[0]).length, 0, "list empty");
        _next(_one(ids[0], 2, 0));
        vm.assertEq(c.calls(), 1, "no callback after unsubscribe");
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 0);
        _next(_one(ids[0], 3, 0));
        vm.assertEq(c.calls(), 2, "resubscribed");
    }

    function test_subscriptionSurvivesFeedReset() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        _next(_one(ids[0], 1, 0));
        vm.startPrank(owner);
        uint64 eta = oracle.scheduleFeedReset(ids[0]);
        vm.warp(eta);
        oracle.executeFeedReset(ids[0]);
        vm.stopPrank();
        _next(_one(ids[0], 2, 0));
        vm.assertEq(c.calls(), 2, "called after the reset");
    }

    function test_subscriptionSurvivesFullRingWrap() public {
        vm.prank(owner);
        oracle.registerFeed(bytes32(uint256(77)), 8, "SMALL", 2);
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(bytes32(uint256(77))), LIMIT, 1 ether);
        for (uint256 i; i < 5; ++i) {
            _next(_one(bytes32(uint256(77)), int128(int256(i)), 0));
        }
        vm.assertEq(c.calls(), 5, "every update of a depth-2 ring");
    }

    // ------------------------------------------------------------------ isolation

    function test_hostileConsumersFailAloneAndThePaidOneStillGetsItsCallback() public {
        vm.prank(subOwner);
        RevertingConsumer reverting = new RevertingConsumer();
        vm.prank(subOwner);
        GasBurningConsumer burner = new GasBurningConsumer();
        vm.prank(subOwner);
        ReturnBombConsumer bomb = new ReturnBombConsumer();
        vm.prank(subOwner);
        ReturnBombConsumer revertBomb = new ReturnBombConsumer();
        revertBomb.setRevert(true);
        vm.prank(subOwner);
        ReentrantConsumer reentrant = new ReentrantConsumer(address(oracle), ids[0]);
        reentrant.setSwallow(false);
        vm.prank(subOwner);
        RecordingConsumer gone = new RecordingConsumer(address(oracle));
        vm.prank(subOwner);
        RecordingConsumer good = new RecordingConsumer(address(oracle));
        _subscribe(address(reverting), _feeds(ids[0]), LIMIT, 1 ether);
        _subscribe(address(burner), _feeds(ids[0]), LIMIT, 1 ether);
        _subscribe(address(bomb), _feeds(ids[0]), 1_000_000, 1 ether);
        _subscribe(address(revertBomb), _feeds(ids[0]), 1_000_000, 1 ether);
        _subscribe(address(reentrant), _feeds(ids[0]), 2_000_000, 1 ether);
        _subscribe(address(gone), _feeds(ids[0]), LIMIT, 1 ether);
        _subscribe(address(good), _feeds(ids[0]), LIMIT, 1 ether);
        vm.etch(address(gone), ""); // self-destructed (or never had code)

        vm.recordLogs();
        _next(_one(ids[0], 42, 0));
        Vm.Log[] memory logs = vm.getRecordedLogs();

        vm.assertEq(good.calls(), 1, "the good consumer got its callback");
        (, int128 v,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(v), 42, "the feed updated");
        uint256 failures;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != IMiraSubscriptions.CallbackFailed.selector) continue;
            ++failures;
            address who = address(uint160(uint256(logs[i].topics[1])));
            vm.assertEq(uint256(logs[i].topics[2]), round, "the report's round");
            IMiraSubscriptions.CallbackFailure reason =
                abi.decode(logs[i].data, (IMiraSubscriptions.CallbackFailure));
            IMiraSubscriptions.CallbackFailure expected = who == address(burner)
                ? IMiraSubscriptions.CallbackFailure.GasExhausted
                : who == address(gone)
                    ? IMiraSubscriptions.CallbackFailure.NoCode
                    : IMiraSubscriptions.CallbackFailure.Reverted;
            vm.assertTrue(
                who == address(reverting) || who == address(burner) || who == address(revertBomb)
                    || who == address(reentrant) || who == address(gone),
                "only the hostile ones fail"
            );
            vm.assertEq(uint256(reason), uint256(expected), "reason code");
        }
        vm.assertEq(
            failures, 5, "reverting, burner, revert-bomb, re-entrant, code-less (not the returning bomb)"
        );
        vm.assertTrue(_balance(address(burner)) < 1 ether, "a failed callback is still paid for");
    }

    function test_reentryIntoTransmitAndEverySubscriptionChangeIsRefused() public {
        vm.prank(subOwner);
        ReentrantConsumer reentrant = new ReentrantConsumer(address(oracle), ids[0]);
        _subscribe(address(reentrant), _feeds(ids[0]), 2_000_000, 1 ether);
        // the re-entrant transmit carries a validly signed report of another feed
        vm.warp(block.timestamp + 1);
        Update[] memory other = _one(ids[1], 5, uint64(block.timestamp));
        bytes memory otherReport = _encode(1, _nowRound(), other);
        reentrant.setTransmitData(abi.encodeCall(oracle.transmit, (otherReport, _sign(1, otherReport))));
        _transmit(1, _nowRound(), _one(ids[0], 1, uint64(block.timestamp)));
        vm.assertEq(reentrant.revertCount(), 8, "eight attempts");
        bytes memory locked = abi.encodeWithSelector(IMiraSubscriptions.CallbacksInProgress.selector);
        for (uint256 i; i < 8; ++i) {
            vm.assertEq(reentrant.revertData(i), locked, "refused with CallbacksInProgress");
        }
        (,, uint64 t) = oracle.latestRound(ids[1]);
        vm.assertEq(t, 0, "the re-entrant report did not apply");
        // outside the callbacks the same report lands
        _transmitAs(transmitter, otherReport, _sign(1, otherReport), other);
        (,, t) = oracle.latestRound(ids[1]);
        vm.assertEq(t, block.timestamp, "applies outside callbacks");
    }

    function test_returnBombCostsTheTransmitterNoMemory() public {
        vm.prank(subOwner);
        ReturnBombConsumer bomb = new ReturnBombConsumer();
        _subscribe(address(bomb), _feeds(ids[0]), 1_000_000, 1 ether);
        vm.warp(block.timestamp + 1);
        Update[] memory u = _one(ids[0], 1, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        uint256 before = gasleft();
        _transmitHinted(report, sig, u);
        uint256 spent = before - gasleft();
        // the bomb spends ~750,000 of its limit on 600 kB of memory; copying that into the
        // oracle's memory would cost the transmitter as much again
        vm.assertGe(spent, 700_000, "the bomb ran");
        vm.assertLe(spent, 1_000_000 + 100_000, "no return data copied");
    }

    // ------------------------------------------------------------------ payment

    function test_feeMovesFromDepositToTransmitterWhoWithdrawsIt() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        _next(_one(ids[0], 1, 0));
        uint256 fee = 1 ether - _balance(address(c));
        (uint256 premium, uint256 overhead) = oracle.callbackPricing();
        // at least the overhead, at most the worst case
        vm.assertGe(fee, overhead * PRICE * (10_000 + premium) / 10_000, "overhead charged");
        vm.assertLe(fee, oracle.callbackCost(LIMIT, PRICE), "never above the worst case");
        vm.assertEq(oracle.reimbursementOf(transmitter), fee, "credited to the transmitter");
        vm.assertEq(address(oracle).balance, 1 ether, "nothing pushed");
        address payable to = payable(address(0xBEEF));
        vm.prank(transmitter);
        vm.assertEq(oracle.withdrawReimbursement(to), fee, "returns the amount");
        vm.assertEq(to.balance, fee, "paid out");
        vm.assertEq(oracle.reimbursementOf(transmitter), 0, "cleared");
    }

    function test_underfundedConsumerIsSkippedThenResumesAfterTopUp() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        uint256 worst = oracle.callbackCost(LIMIT, PRICE);
        _subscribe(address(c), _feeds(ids[0]), LIMIT, worst);
        _next(_one(ids[0], 1, 0)); // pays less than the worst case: now below it
        vm.assertEq(c.calls(), 1, "first callback paid");
        uint256 left = _balance(address(c));
        vm.warp(block.timestamp + 1);
        vm.expectEmit(address(oracle));
        emit IMiraSubscriptions.CallbackSkipped(address(c), _nowRound(), left, worst);
        vm.prank(transmitter);
        _transmit(1, _nowRound(), _one(ids[0], 2, uint64(block.timestamp)));
        vm.assertEq(c.calls(), 1, "skipped");
        vm.assertEq(_balance(address(c)), left, "a skip costs nothing");
        oracle.deposit{value: worst}(address(c));
        _next(_one(ids[0], 3, 0));
        vm.assertEq(c.calls(), 2, "resumed after the top-up");
    }

    function test_ownerWithdrawsDeposit() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        address payable to = payable(address(0xCAFE));
        vm.prank(subOwner);
        oracle.withdraw(address(c), to, 0.4 ether);
        vm.assertEq(to.balance, 0.4 ether, "sent");
        vm.assertEq(_balance(address(c)), 0.6 ether, "left");
    }

    // ------------------------------------------------------------------ exact gas

    /// forge-config: ci.fuzz.runs = 1000
    /// @dev Whatever gas the transmitter sends, the consumer gets its whole limit or transmit
    ///      reverts: never a callback with less.
    function testFuzz_consumerGetsItsLimitOrTransmitReverts(uint256 limitSeed, uint256 gasSeed) public {
        uint32 limit = uint32(bound(limitSeed, 30_000, 2_500_000));
        vm.prank(subOwner);
        GasProbeConsumer probe = new GasProbeConsumer(address(oracle));
        _subscribe(address(probe), _feeds(ids[0]), limit, 10 ether);
        uint256 supplied = bound(gasSeed, 60_000, 3_000_000);
        vm.warp(block.timestamp + 1);
        Update[] memory u = _one(ids[0], 1, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        bytes memory data = abi.encodePacked(
            abi.encodeCall(oracle.transmit, (report, _sign(1, report))), oracle.ringHints(_feeds(ids[0]))
        );
        (bool ok, bytes memory ret) = address(oracle).call{gas: supplied}(data);
        if (ok) {
            // the probe reads gasleft() after MiraConsumer's dispatch and caller check
            uint256 got = probe.gasAtEntry();
            vm.assertLe(got, limit, "never more than its limit");
            vm.assertEq(limit - got, PROBE_DISPATCH, "exactly its limit, less its own dispatch");
        } else {
            vm.assertEq(probe.gasAtEntry(), 0, "no callback in a reverted transmit");
            if (ret.length != 0) {
                vm.assertEq(
                    ret,
                    abi.encodeWithSelector(
                        IMiraSubscriptions.InsufficientGasForCallback.selector, address(probe), limit
                    ),
                    "the only revert with data: too little gas for the callback"
                );
            }
        }
    }

    function test_insufficientGasRevertsWithConsumerAndLimit() public {
        vm.prank(subOwner);
        GasProbeConsumer probe = new GasProbeConsumer(address(oracle));
        _subscribe(address(probe), _feeds(ids[0]), 1_000_000, 10 ether);
        vm.warp(block.timestamp + 1);
        Update[] memory u = _one(ids[0], 1, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        bytes memory data = abi.encodePacked(
            abi.encodeCall(oracle.transmit, (report, _sign(1, report))), oracle.ringHints(_feeds(ids[0]))
        );
        (bool ok, bytes memory ret) = address(oracle).call{gas: 600_000}(data);
        vm.assertFalse(ok, "reverted");
        vm.assertEq(
            ret,
            abi.encodeWithSelector(
                IMiraSubscriptions.InsufficientGasForCallback.selector, address(probe), 1_000_000
            ),
            "revert data"
        );
        (,, uint64 t) = oracle.latestRound(ids[0]);
        vm.assertEq(t, 0, "nothing stored");
    }

    // ------------------------------------------------------------------ consent

    /// @dev The attack: a stranger subscribes a consumer before its developer does, choosing
    ///      its feeds and gas limit and owning the subscription. Only the consumer itself or
    ///      the manager it names (MiraConsumer: its deployer) may create it.
    function test_strangerCannotSubscribeSomeoneElsesConsumer() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.assertEq(c.miraSubscriptionManager(), subOwner, "deployer manages");
        address stranger = address(0xBAD);
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.SubscriptionNotConsented.selector, address(c), stranger)
        );
        oracle.subscribe{value: 1 ether}(address(c), _feeds(ids[0]), LIMIT);
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        (address owner_,,,) = oracle.subscriptionOf(address(c));
        vm.assertEq(owner_, subOwner, "the manager owns it");
    }

    function test_consumerMaySubscribeItself() public {
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.deal(address(c), 1 ether);
        vm.prank(address(c));
        oracle.subscribe{value: 1 ether}(address(c), _feeds(ids[0]), LIMIT);
        (address owner_,,,) = oracle.subscriptionOf(address(c));
        vm.assertEq(owner_, address(c), "the consumer owns its subscription");
    }

    /// @dev A consumer without the view, or one that burns whatever gas the read is given,
    ///      consents to no one, and costs subscribe a bounded amount.
    function test_consentReadIsBoundedAndRefusesConsumersWithoutTheView() public {
        address noView = address(new EtherRefuser());
        address greedy = address(new GreedyManagerConsumer());
        for (uint256 i; i < 2; ++i) {
            address c = i == 0 ? noView : greedy;
            vm.prank(subOwner);
            uint256 before = gasleft();
            (bool ok, bytes memory err) = address(oracle).call{value: 1 ether}(
                abi.encodeCall(oracle.subscribe, (c, _feeds(ids[0]), LIMIT))
            );
            uint256 spent = before - gasleft();
            vm.assertFalse(ok, "refused");
            vm.assertEq(
                err,
                abi.encodeWithSelector(IMiraSubscriptions.SubscriptionNotConsented.selector, c, subOwner),
                "revert data"
            );
            vm.assertLe(spent, 80_000, "the consent read is bounded (30,000 gas)");
        }
    }

    // ------------------------------------------------------------------ callback gas budget

    /// @dev The attack: consumers at the maximum limit that burn all of it, more of them than a
    ///      30M-gas block holds (13 × 2.5M). With exact gas, a transmit needing more than a
    ///      block would revert forever, freezing the feed for free. The budget refuses the
    ///      subscriptions that would not fit, and the report lands within a block, charging
    ///      every burner.
    function test_subscribersCannotFreezeAFeedByCommittingMoreGasThanABlockHolds() public {
        uint256 accepted;
        address[] memory burners = new address[](13);
        for (uint256 i; i < burners.length; ++i) {
            vm.prank(subOwner);
            burners[i] = address(new GasBurningConsumer());
            vm.prank(subOwner);
            try oracle.subscribe{value: 1 ether}(burners[i], _feeds(ids[0]), 2_500_000) {
                ++accepted;
            } catch (bytes memory err) {
                vm.assertEq(
                    err,
                    abi.encodeWithSelector(
                        IMiraSubscriptions.CallbackGasBudgetExceeded.selector,
                        (accepted + 1) * (2_500_000 + 25_000),
                        10_000_000
                    ),
                    "refused by the budget"
                );
            }
        }
        vm.assertEq(accepted, 3, "3 x (2.5M + 25k) fit in 10M, a 4th does not");
        vm.warp(block.timestamp + 1);
        Update[] memory u = _one(ids[0], 1, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        bytes memory data = abi.encodePacked(
            abi.encodeCall(oracle.transmit, (report, _sign(1, report))), oracle.ringHints(_feeds(ids[0]))
        );
        uint256 before = _balance(burners[0]);
        vm.prank(transmitter);
        (bool ok,) = address(oracle).call{gas: 30_000_000}(data);
        vm.assertTrue(ok, "the report lands within a 30M block");
        (, int128 value,) = oracle.latestRound(ids[0]);
        vm.assertEq(int256(value), 1, "stored");
        vm.assertTrue(_balance(burners[0]) < before, "the burner paid for its gas");
    }

    /// @dev The other freeze: many consumers with tiny limits, each costing the transmitter its
    ///      own work. The reserve per feed bounds them too: fill the default budget with
    ///      1-gas subscriptions spread over 7 feeds (64 per feed allowed), then one report of
    ///      all 7 calls every one of them back and still costs less than the budget plus a
    ///      plain 7-feed transmit.
    function test_manyTinyConsumersFitTheBudgetAndTheReportLands() public {
        vm.prank(owner);
        oracle.setMaxSubscribers(64);
        bytes32[] memory feeds = new bytes32[](7);
        for (uint256 f; f < 7; ++f) {
            feeds[f] = _feedId(f);
            if (f < 3) continue; // registered in setUp
            vm.prank(owner);
            oracle.registerFeed(feeds[f], 8, "TEST / USD");
        }
        uint256 accepted;
        for (uint256 i; i < 7 * 64; ++i) {
            vm.prank(subOwner);
            address c = address(new RecordingConsumer(address(oracle)));
            vm.prank(subOwner);
            try oracle.subscribe{value: 0.001 ether}(c, _feeds(feeds[i % 7]), 1) {
                ++accepted;
            } catch {
                break;
            }
        }
        (uint256 committed,) = oracle.callbackGasBudget();
        vm.assertEq(accepted, uint256(10_000_000) / 25_001, "the budget admits this many");
        vm.assertEq(committed, accepted * 25_001, "committed");
        vm.warp(block.timestamp + 1);
        Update[] memory u = _updates(feeds, 5, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        bytes memory data = abi.encodePacked(
            abi.encodeCall(oracle.transmit, (report, _sign(1, report))), oracle.ringHints(feeds)
        );
        vm.prank(transmitter);
        uint256 before = gasleft();
        (bool ok,) = address(oracle).call{gas: 30_000_000}(data);
        uint256 spent = before - gasleft();
        vm.assertTrue(ok, "the report lands");
        emit TransmitGas(spent);
        vm.assertLe(spent, committed + 200_000, "within the committed gas plus a 7-feed transmit");
    }

    function test_budgetCountsLimitPlusReservePerFeedAndUnsubscribeReleasesIt() public {
        vm.prank(subOwner);
        RecordingConsumer a = new RecordingConsumer(address(oracle));
        _subscribe(address(a), _feeds(ids[0], ids[1]), 100_000, 1 ether);
        (uint256 committed, uint256 budget) = oracle.callbackGasBudget();
        vm.assertEq(committed, 100_000 + 2 * 25_000, "limit + reserve per feed");
        vm.assertEq(budget, 10_000_000, "default budget");
        _subscribe(address(a), _feeds(ids[2]), 300_000, 0);
        (committed,) = oracle.callbackGasBudget();
        vm.assertEq(committed, 300_000 + 3 * 25_000, "a raised limit replaces the old one");
        vm.prank(subOwner);
        oracle.unsubscribe(address(a), _feeds(ids[0]));
        (committed,) = oracle.callbackGasBudget();
        vm.assertEq(committed, 300_000 + 2 * 25_000, "one feed fewer");
        vm.prank(subOwner);
        oracle.unsubscribe(address(a), _feeds(ids[1], ids[2]));
        (committed,) = oracle.callbackGasBudget();
        vm.assertEq(committed, 0, "no feeds: never called, nothing committed");
    }

    /// @dev Lowering the budget below what is committed must not brick anything: existing
    ///      subscriptions are still called and may shrink; only growth is refused.
    function test_budgetLoweredBelowUseRefusesOnlyGrowth() public {
        vm.prank(subOwner);
        RecordingConsumer a = new RecordingConsumer(address(oracle));
        vm.prank(subOwner);
        RecordingConsumer b = new RecordingConsumer(address(oracle));
        _subscribe(address(a), _feeds(ids[0]), 1_000_000, 1 ether);
        _subscribe(address(b), _feeds(ids[0]), 1_000_000, 1 ether);
        vm.prank(owner);
        oracle.setCallbackGasBudget(500_000);
        _next(_values(_feeds(ids[0]), 7));
        vm.assertEq(a.calls() + b.calls(), 2, "both still called");
        uint256 committed = 2 * 1_025_000;
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraSubscriptions.CallbackGasBudgetExceeded.selector, committed + 25_000, 500_000
            )
        );
        _subscribe(address(a), _feeds(ids[1]), 1_000_000, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraSubscriptions.CallbackGasBudgetExceeded.selector, committed + 1, 500_000
            )
        );
        _subscribe(address(a), _feeds(ids[1]), 975_001, 0);
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraSubscriptions.CallbackGasBudgetExceeded.selector, committed + 30_000, 500_000
            )
        );
        _subscribe(address(c), _feeds(ids[0]), 5000, 1 ether);
        // shrinking (a lower limit, even with a feed more) is allowed though still above budget
        _subscribe(address(a), _feeds(ids[1]), 900_000, 0);
        (uint256 now_,) = oracle.callbackGasBudget();
        vm.assertEq(now_, committed - 75_000, "shrunk");
    }

    function test_revert_callbackGasBudgetSettings() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.setCallbackGasBudget(1);
        vm.startPrank(owner);
        vm.expectEmit(address(oracle));
        emit IMiraSubscriptions.CallbackGasBudgetSet(20_000_000);
        oracle.setCallbackGasBudget(20_000_000);
        vm.stopPrank();
        (, uint256 budget) = oracle.callbackGasBudget();
        vm.assertEq(budget, 20_000_000, "set");
    }

    // ------------------------------------------------------------------ bad input

    function test_revert_unknownFeed() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.FeedNotRegistered.selector, bytes32(uint256(9)))
        );
        _subscribe(address(c), _feeds(bytes32(uint256(9))), LIMIT, 1 ether);
    }

    function test_revert_consumerNotContract() public {
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.ConsumerNotContract.selector, address(0xDEAD))
        );
        _subscribe(address(0xDEAD), _feeds(ids[0]), LIMIT, 1 ether);
    }

    function test_revert_gasLimitZeroOrAboveMax() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.InvalidCallbackGasLimit.selector, 0, 2_500_000)
        );
        _subscribe(address(c), _feeds(ids[0]), 0, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.InvalidCallbackGasLimit.selector, 2_500_001, 2_500_000)
        );
        _subscribe(address(c), _feeds(ids[0]), 2_500_001, 1 ether);
    }

    function test_revert_depositTooSmall() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        uint256 worst = oracle.callbackCost(LIMIT, PRICE);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.DepositTooSmall.selector, worst - 1, worst));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, worst - 1);
        vm.txGasPrice(0);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.DepositTooSmall.selector, 0, 1));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 0);
    }

    function test_revert_notSubscriptionOwner() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        address stranger = address(0x5EE);
        vm.deal(stranger, 1 ether);
        bytes memory err =
            abi.encodeWithSelector(IMiraSubscriptions.NotSubscriptionOwner.selector, address(c), stranger);
        vm.prank(stranger);
        vm.expectRevert(err);
        oracle.subscribe{value: 1 ether}(address(c), _feeds(ids[1]), LIMIT);
        vm.prank(stranger);
        vm.expectRevert(err);
        oracle.unsubscribe(address(c), _feeds(ids[0]));
        vm.prank(stranger);
        vm.expectRevert(err);
        oracle.withdraw(address(c), payable(stranger), 1);
        vm.assertEq(_balance(address(c)), 1 ether, "nothing changed");
    }

    function test_revert_noSubscription() public {
        bytes memory err = abi.encodeWithSelector(IMiraSubscriptions.NoSubscription.selector, address(0xC0));
        vm.expectRevert(err);
        oracle.deposit{value: 1}(address(0xC0));
        vm.expectRevert(err);
        oracle.withdraw(address(0xC0), payable(address(this)), 1);
        vm.expectRevert(err);
        oracle.unsubscribe(address(0xC0), _feeds(ids[0]));
    }

    function test_revert_tooManySubscribers() public {
        vm.prank(owner);
        oracle.setMaxSubscribers(2);
        for (uint256 i; i < 2; ++i) {
            vm.prank(subOwner);
            _subscribe(address(new RecordingConsumer(address(oracle))), _feeds(ids[0]), LIMIT, 1 ether);
        }
        vm.prank(subOwner);
        address third = address(new RecordingConsumer(address(oracle)));
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.TooManySubscribers.selector, ids[0], 2));
        _subscribe(third, _feeds(ids[0]), LIMIT, 1 ether);
        vm.assertEq(oracle.subscribersOf(ids[0]).length, 2, "cap kept");
    }

    function test_defaultCapIsSixteen() public view {
        vm.assertEq(oracle.maxSubscribers(), 16, "default cap");
    }

    function test_revert_alreadySubscribedAndNotSubscribed() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.AlreadySubscribed.selector, address(c), ids[0])
        );
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 0);
        vm.prank(subOwner);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.NotSubscribed.selector, address(c), ids[1]));
        oracle.unsubscribe(address(c), _feeds(ids[1]));
    }

    function test_revert_noFeeds() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.NoFeeds.selector));
        _subscribe(address(c), new bytes32[](0), LIMIT, 1 ether);
    }

    function test_revert_insufficientDeposit() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        vm.prank(subOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraSubscriptions.InsufficientDeposit.selector, address(c), 2 ether, 1 ether
            )
        );
        oracle.withdraw(address(c), payable(subOwner), 2 ether);
    }

    function test_revert_transferFailedAndNothingToWithdraw() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        _subscribe(address(c), _feeds(ids[0]), LIMIT, 1 ether);
        address refuser = address(new EtherRefuser());
        vm.prank(subOwner);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.TransferFailed.selector, refuser, 1 ether));
        oracle.withdraw(address(c), payable(refuser), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.NothingToWithdraw.selector, address(this)));
        oracle.withdrawReimbursement(payable(address(this)));
    }

    function test_revert_ownerSettings() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.setMaxSubscribers(4);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.setCallbackPricing(0, 0);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.InvalidMaxSubscribers.selector, 0, 64));
        oracle.setMaxSubscribers(0);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.InvalidMaxSubscribers.selector, 65, 64));
        oracle.setMaxSubscribers(65);
        vm.expectRevert(abi.encodeWithSelector(IMiraSubscriptions.InvalidCallbackPricing.selector, 10_001, 0));
        oracle.setCallbackPricing(10_001, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraSubscriptions.InvalidCallbackPricing.selector, 0, 100_001)
        );
        oracle.setCallbackPricing(0, 100_001);
        oracle.setCallbackPricing(500, 20_000);
        vm.stopPrank();
        (uint256 p, uint256 o) = oracle.callbackPricing();
        vm.assertEq(p, 500, "premium");
        vm.assertEq(o, 20_000, "overhead");
        vm.assertEq(oracle.callbackCost(100_000, 2), (120_000) * 2 * 10_500 / 10_000, "cost formula");
    }

    function test_revert_onlyOracleCallsConsumer() public {
        vm.prank(subOwner);
        RecordingConsumer c = new RecordingConsumer(address(oracle));
        vm.expectRevert(abi.encodeWithSelector(MiraConsumer.OnlyMiraOracle.selector, address(this)));
        c.miraCallback(new IMiraConsumer.Update[](0));
    }

    function test_callbackGasOfCountsDistinctConsumers() public {
        vm.prank(subOwner);
        RecordingConsumer a = new RecordingConsumer(address(oracle));
        vm.prank(subOwner);
        RecordingConsumer b = new RecordingConsumer(address(oracle));
        _subscribe(address(a), _feeds(ids[0], ids[1]), 100_000, 1 ether);
        _subscribe(address(b), _feeds(ids[1]), 50_000, 1 ether);
        (uint256 consumers, uint256 gas_) = oracle.callbackGasOf(_feeds(ids[0], ids[1]));
        vm.assertEq(consumers, 2, "distinct");
        vm.assertEq(gas_, 150_000, "sum of limits");
    }
}
