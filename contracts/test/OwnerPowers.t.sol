// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraOracle} from "../src/MiraOracle.sol";
import {Owned} from "../src/Owned.sol";
import {ICommittee} from "../src/interfaces/ICommittee.sol";
import {Vm} from "./lib/Vm.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice Issue 12, item 12: the owner installs a key without the DKG, or changes the grace
///         period, only after a delay anyone can watch; only the first epoch starts at once.
contract OwnerPowersTest is OracleFixture {
    uint256 internal constant NEXT = 0xFEED5EC2E7;
    uint256 internal nextPx;
    uint8 internal nextParity;

    function setUp() public {
        _deploy();
        Vm.Wallet memory w = vm.createWallet(NEXT);
        nextPx = w.publicKeyX;
        nextParity = uint8(w.publicKeyY & 1);
    }

    /// @dev Before: startEpoch installed any key at once, for every epoch.
    function test_startEpochInstallsOnlyTheFirstEpoch() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.FirstEpochOnly.selector, uint64(1)));
        oracle.startEpoch(nextPx, nextParity, 2, _members(3));
        vm.assertEq(oracle.currentEpoch(), 1, "no new epoch");
    }

    function test_scheduledEpochStartWaitsOutTheDelay() public {
        uint64 eta = uint64(block.timestamp) + DELAY;
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.scheduleEpochStart(nextPx, nextParity, 2, _members(3));
        vm.startPrank(owner);
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.executeEpochStart();
        vm.expectEmit(address(oracle));
        emit ICommittee.EpochStartScheduled(2, nextPx, nextParity, 2, 3, eta);
        (uint64 epoch, uint64 got) = oracle.scheduleEpochStart(nextPx, nextParity, 2, _members(3));
        vm.assertEq(epoch, 2, "epoch");
        vm.assertEq(got, eta, "eta");

        // anyone can read what is coming, members included
        (uint64 e, uint256 px, uint8 parity, uint16 t, uint64 when, ICommittee.Member[] memory ms) =
            oracle.scheduledEpochStart();
        vm.assertEq(e, 2, "scheduled epoch");
        vm.assertEq(px, nextPx, "scheduled key");
        vm.assertEq(parity, nextParity, "scheduled parity");
        vm.assertEq(t, 2, "scheduled threshold");
        vm.assertEq(when, eta, "scheduled eta");
        vm.assertEq(ms.length, 3, "scheduled members");
        vm.expectRevert(abi.encodeWithSelector(ICommittee.UnknownEpoch.selector, uint64(2)));
        oracle.members(2);

        vm.warp(eta - 1);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.ChangeNotReady.selector, eta));
        oracle.executeEpochStart();
        vm.warp(eta);
        vm.expectEmit(address(oracle));
        emit ICommittee.EpochStarted(2, nextPx, nextParity, 2, 3, 1, eta + GRACE);
        vm.assertEq(oracle.executeEpochStart(), 2, "started");
        vm.stopPrank();
        vm.assertEq(oracle.currentEpoch(), 2, "current");
        (e,,,,,) = oracle.scheduledEpochStart();
        vm.assertEq(e, 0, "schedule consumed");
    }

    function test_epochStartCanBeCancelledAndAProposalCancelsIt() public {
        vm.startPrank(owner);
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.cancelEpochStart();
        (, uint64 eta) = oracle.scheduleEpochStart(nextPx, nextParity, 2, _members(3));
        vm.expectEmit(address(oracle));
        emit ICommittee.EpochStartCancelled(2);
        oracle.cancelEpochStart();
        vm.warp(eta);
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.executeEpochStart();

        oracle.scheduleEpochStart(nextPx, nextParity, 2, _members(3));
        vm.expectEmit(address(oracle));
        emit ICommittee.EpochStartCancelled(2);
        oracle.proposeCommittee(3, _members(4)); // the DKG route replaces the scheduled key
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.executeEpochStart();
        vm.stopPrank();
        vm.assertEq(oracle.members(1).length, 4, "epoch 1 untouched");
    }

    /// @dev Before: setGracePeriod applied at once and had no upper bound.
    function test_gracePeriodChangeIsDelayedAndBounded() public {
        uint64 max = oracle.MAX_GRACE_PERIOD();
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.GracePeriodTooLong.selector, uint256(max) + 1, max));
        oracle.scheduleGracePeriod(max + 1);
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.executeGracePeriod();
        vm.expectRevert(ICommittee.NothingScheduled.selector);
        oracle.cancelGracePeriod();

        uint64 eta = uint64(block.timestamp) + DELAY;
        vm.expectEmit(address(oracle));
        emit ICommittee.GracePeriodScheduled(max, eta);
        oracle.scheduleGracePeriod(max);
        (uint64 g, uint64 when) = oracle.scheduledGracePeriod();
        vm.assertEq(g, max, "pending grace readable");
        vm.assertEq(when, eta, "pending eta readable");
        vm.expectRevert(abi.encodeWithSelector(ICommittee.ChangeNotReady.selector, eta));
        oracle.executeGracePeriod();
        vm.assertEq(oracle.gracePeriod(), GRACE, "unchanged before the delay");

        vm.expectEmit(address(oracle));
        emit ICommittee.GracePeriodCancelled(max);
        oracle.cancelGracePeriod();
        (, when) = oracle.scheduledGracePeriod();
        vm.assertEq(when, 0, "cancelled");

        eta = oracle.scheduleGracePeriod(60);
        vm.warp(eta);
        vm.expectEmit(address(oracle));
        emit ICommittee.GracePeriodSet(60);
        oracle.executeGracePeriod();
        vm.stopPrank();
        vm.assertEq(oracle.gracePeriod(), 60, "applied after the delay");
    }

    function test_constructorBoundsGraceAndDelay() public {
        uint64 maxGrace = oracle.MAX_GRACE_PERIOD();
        uint64 maxDelay = oracle.MAX_CHANGE_DELAY();
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.GracePeriodTooLong.selector, uint256(maxGrace) + 1, maxGrace)
        );
        new MiraOracle(owner, maxGrace + 1, DELAY, MAX_AGE, MAX_FUTURE);
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.ChangeDelayTooLong.selector, uint256(maxDelay) + 1, maxDelay)
        );
        new MiraOracle(owner, GRACE, maxDelay + 1, MAX_AGE, MAX_FUTURE);
        vm.assertEq(oracle.changeDelay(), DELAY, "delay readable");
    }

    function test_onlyTheOwnerSchedulesAndApplies() public {
        bytes4 notOwner = Owned.NotOwner.selector;
        vm.expectRevert(abi.encodeWithSelector(notOwner, address(this)));
        oracle.executeEpochStart();
        vm.expectRevert(abi.encodeWithSelector(notOwner, address(this)));
        oracle.cancelEpochStart();
        vm.expectRevert(abi.encodeWithSelector(notOwner, address(this)));
        oracle.scheduleGracePeriod(1);
        vm.expectRevert(abi.encodeWithSelector(notOwner, address(this)));
        oracle.executeGracePeriod();
        vm.expectRevert(abi.encodeWithSelector(notOwner, address(this)));
        oracle.cancelGracePeriod();
    }
}
