// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SequencerUptimeGuard} from "../src/SequencerUptimeGuard.sol";
import {AggregatorV3Interface} from "../src/interfaces/AggregatorV3Interface.sol";
import {ChainlinkStyleConsumer} from "./harness/ChainlinkStyleConsumer.sol";
import {SequencerGuardedConsumer, SequencerUptimeFeedDouble} from "./harness/SequencerGuardedConsumer.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

contract ConsumersTest is OracleFixture {
    bytes32[] internal ids;
    address internal proxy;
    SequencerUptimeFeedDouble internal uptime;
    SequencerGuardedConsumer internal guarded;
    uint256 internal t0;

    function setUp() public {
        _deploy();
        ids = _register(1);
        proxy = oracle.proxyOf(ids[0]);
        t0 = block.timestamp;
        uptime = new SequencerUptimeFeedDouble();
        uptime.set(0, t0 - 2 hours);
        guarded = new SequencerGuardedConsumer(uptime, 1 hours, AggregatorV3Interface(proxy));
    }

    function _publish(int128 value) internal {
        Update[] memory u = new Update[](1);
        u[0] = Update(ids[0], value, uint64(t0), keccak256("m"));
        _transmit(1, 1, u);
    }

    function test_anUnchangedChainlinkConsumerReadsAMiraFeed() public {
        ChainlinkStyleConsumer consumer = new ChainlinkStyleConsumer(proxy);
        _publish(4242e8);
        vm.assertEq(consumer.getChainlinkDataFeedLatestAnswer(), 4242e8, "answer");
        (string memory description, uint8 decimals, uint256 version) = consumer.describe();
        vm.assertEq(description, "TEST / USD", "description");
        vm.assertEq(decimals, 8, "decimals");
        vm.assertEq(version, 2, "version");
    }

    function test_guardPassesWhenSequencerUpPastGrace() public {
        _publish(100e8);
        vm.assertEq(guarded.price(1 hours), 100e8, "price");
    }

    function test_guardRejectsSequencerDown() public {
        _publish(100e8);
        uptime.set(1, t0 - 10);
        vm.expectRevert(SequencerUptimeGuard.SequencerDown.selector);
        guarded.price(1 hours);
    }

    function test_guardRejectsWithinGracePeriod() public {
        _publish(100e8);
        uptime.set(0, t0 - 10);
        vm.expectRevert(
            abi.encodeWithSelector(
                SequencerUptimeGuard.SequencerGracePeriodNotOver.selector, t0 - 10, t0 - 10 + 1 hours
            )
        );
        guarded.price(1 hours);
    }

    function test_guardRejectsUnknownStatus() public {
        _publish(100e8);
        uptime.set(0, 0);
        vm.expectRevert(SequencerUptimeGuard.SequencerStatusUnknown.selector);
        guarded.price(1 hours);
    }

    function test_guardRejectsStaleAndNonPositivePrices() public {
        vm.expectRevert(abi.encodeWithSelector(SequencerUptimeGuard.InvalidPrice.selector, int256(0)));
        guarded.price(1 hours); // never updated: answer 0
        _publish(-5);
        vm.expectRevert(abi.encodeWithSelector(SequencerUptimeGuard.InvalidPrice.selector, int256(-5)));
        guarded.price(1 hours);
        Update[] memory u = new Update[](1);
        u[0] = Update(ids[0], 5e8, uint64(t0 + 1), keccak256("m"));
        _transmit(1, 2, u);
        vm.assertEq(guarded.price(1 hours), 5e8, "fresh positive price");
        vm.warp(t0 + 1 + 1 hours + 1);
        vm.expectRevert(
            abi.encodeWithSelector(SequencerUptimeGuard.StalePrice.selector, t0 + 1, uint256(1 hours))
        );
        guarded.price(1 hours);
    }

    function test_noUptimeFeedMeansNoSequencerCheck() public {
        SequencerGuardedConsumer l1 = new SequencerGuardedConsumer(
            AggregatorV3Interface(address(0)), 1 hours, AggregatorV3Interface(proxy)
        );
        _publish(7e8);
        vm.assertEq(l1.price(1 hours), 7e8, "price without uptime feed");
    }
}
