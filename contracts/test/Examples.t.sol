// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {GuardedVault} from "../src/examples/GuardedVault.sol";
import {PriceAlarm} from "../src/examples/PriceAlarm.sol";
import {Vm} from "./lib/Vm.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice The two example consumers, called back by a real oracle.
contract ExamplesTest is OracleFixture {
    bytes32 internal feed;
    address internal guardian = address(0x6A4D);
    /// @dev The test's clock, kept in storage: via-IR may fold repeated block.timestamp reads
    ///      in one test (the EVM's timestamp is constant within a transaction) across vm.warp.
    uint256 internal clock;

    function setUp() public {
        _deploy();
        feed = _register(1)[0];
        clock = block.timestamp;
        vm.txGasPrice(1 gwei);
    }

    function _subscribe(address consumer) internal {
        bytes32[] memory f = new bytes32[](1);
        f[0] = feed;
        oracle.subscribe{value: 1 ether}(consumer, f, 100_000);
    }

    /// @dev One report of `value` observed `age` seconds before a block one second later.
    function _update(int128 value, uint64 age) internal returns (Vm.Log[] memory) {
        _advance(1);
        vm.recordLogs();
        _transmit(1, uint64(clock * 1000), _one(feed, value, uint64(clock) - age));
        return vm.getRecordedLogs();
    }

    function _advance(uint256 seconds_) internal {
        clock += seconds_;
        vm.warp(clock);
    }

    function _crossings(Vm.Log[] memory logs, address alarm) internal pure returns (uint256 n, bool above) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == alarm && logs[i].topics[0] == PriceAlarm.Crossed.selector) {
                ++n;
                (, above,) = abi.decode(logs[i].data, (int128, bool, uint64));
            }
        }
    }

    function test_priceAlarmEmitsOnEachCrossingOnly() public {
        PriceAlarm alarm = new PriceAlarm(address(oracle), feed, 100);
        _subscribe(address(alarm));
        (uint256 n,) = _crossings(_update(90, 0), address(alarm));
        vm.assertEq(n, 0, "the first value only sets the side");
        bool above;
        (n, above) = _crossings(_update(100, 0), address(alarm));
        vm.assertEq(n, 1, "crossed upwards");
        vm.assertTrue(above, "now at or above");
        (n,) = _crossings(_update(150, 0), address(alarm));
        vm.assertEq(n, 0, "still above: no crossing");
        (n, above) = _crossings(_update(99, 0), address(alarm));
        vm.assertEq(n, 1, "crossed downwards");
        vm.assertFalse(above, "now below");
    }

    function test_vaultPausesOnDeviationUntilTheGuardianResumes() public {
        GuardedVault vault = new GuardedVault(address(oracle), feed, 500, 1 hours, guardian);
        _subscribe(address(vault));
        vm.deal(address(this), 1 ether);
        vault.deposit{value: 1 ether}();
        _update(1000, 0);
        vault.withdraw(0.1 ether);
        _update(1040, 0); // +4 %: within 5 %
        vault.withdraw(0.1 ether);
        _update(1100, 0); // +5.8 %
        vm.assertTrue(vault.paused(), "paused by the jump");
        vm.expectRevert(GuardedVault.WithdrawalsPaused.selector);
        vault.withdraw(0.1 ether);
        vm.expectRevert(abi.encodeWithSelector(GuardedVault.NotGuardian.selector, address(this)));
        vault.resume();
        vm.prank(guardian);
        vault.resume();
        vault.withdraw(0.1 ether);
        vm.assertEq(address(this).balance, 0.3 ether, "three withdrawals paid");
    }

    function test_vaultPausesOnAStaleUpdateAndRefusesWhileTheFeedIsSilent() public {
        GuardedVault vault = new GuardedVault(address(oracle), feed, 500, 10 minutes, guardian);
        _subscribe(address(vault));
        vm.deal(address(this), 1 ether);
        vault.deposit{value: 1 ether}();
        _update(1000, 0);
        vault.withdraw(0.1 ether);
        _advance(11 minutes);
        uint64 last = vault.lastObservedAt();
        vm.expectRevert(abi.encodeWithSelector(GuardedVault.FeedStale.selector, last));
        vault.withdraw(0.1 ether);
        _advance(9 minutes);
        // observed after the last update, but already 15 minutes old when it lands (the
        // oracle's maxAge is an hour)
        _update(1000, 15 minutes);
        vm.assertTrue(vault.paused(), "paused by the stale update");
    }

    receive() external payable {}
}
