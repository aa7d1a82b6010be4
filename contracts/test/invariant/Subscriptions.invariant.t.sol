// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraOracle} from "../../src/MiraOracle.sol";
import {IMiraOracle} from "../../src/interfaces/IMiraOracle.sol";
import {
    GasBurningConsumer,
    RecordingConsumer,
    ReentrantConsumer,
    ReturnBombConsumer,
    RevertingConsumer
} from "../harness/Consumers.sol";
import {OracleFixture} from "../utils/OracleFixture.sol";

/// @notice Random subscribe / unsubscribe / deposit / withdraw / transmit / claim sequences with
///         hostile consumers among the subscribers. Bounded: 3 feeds, 6 consumers, gas limits
///         up to 120,000, so a campaign stays cheap; a callback gas budget of BUDGET, which
///         those subscriptions can exceed, so subscribe is refused for it too.
contract SubscriptionsHandler is OracleFixture {
    uint256 internal constant FEEDS = 3;
    uint256 public constant BUDGET = 400_000;
    bytes32[] internal feedIds;
    address[] public consumers;
    address[2] internal transmitters = [address(0x7A), address(0x7B)];
    /// @dev Deploys the consumers, so it is their subscription manager and may subscribe them.
    address internal subOwner = address(0x5B0);
    uint256 public transmits;
    uint256 public failedTransmits;

    constructor() {
        _deploy();
        feedIds = _register(FEEDS);
        vm.txGasPrice(1 gwei);
        vm.prank(subOwner);
        consumers.push(address(new RecordingConsumer(address(oracle))));
        vm.prank(subOwner);
        consumers.push(address(new RecordingConsumer(address(oracle))));
        vm.prank(subOwner);
        consumers.push(address(new RevertingConsumer()));
        vm.prank(subOwner);
        consumers.push(address(new GasBurningConsumer()));
        vm.prank(subOwner);
        consumers.push(address(new ReturnBombConsumer()));
        vm.prank(subOwner);
        consumers.push(address(new ReentrantConsumer(address(oracle), feedIds[0])));
        vm.deal(subOwner, type(uint128).max);
        vm.prank(owner);
        oracle.setCallbackGasBudget(BUDGET);
    }

    function oracleAddress() external view returns (MiraOracle) {
        return oracle;
    }

    function transmitterAt(uint256 i) external view returns (address) {
        return transmitters[i];
    }

    function consumerCount() external view returns (uint256) {
        return consumers.length;
    }

    function _feedsOf(uint256 mask) internal view returns (bytes32[] memory f) {
        mask = mask % (1 << FEEDS);
        if (mask == 0) mask = 1;
        uint256 n;
        for (uint256 i; i < FEEDS; ++i) {
            if (mask & (1 << i) != 0) ++n;
        }
        f = new bytes32[](n);
        n = 0;
        for (uint256 i; i < FEEDS; ++i) {
            if (mask & (1 << i) != 0) f[n++] = feedIds[i];
        }
    }

    function subscribe(uint256 who, uint256 mask, uint256 limit, uint256 value) external {
        address c = consumers[who % consumers.length];
        value = bound(value, 0, 1 ether);
        vm.prank(subOwner);
        try oracle.subscribe{value: value}(c, _feedsOf(mask), uint32(bound(limit, 1, 120_000))) {} catch {}
    }

    function unsubscribe(uint256 who, uint256 mask) external {
        vm.prank(subOwner);
        try oracle.unsubscribe(consumers[who % consumers.length], _feedsOf(mask)) {} catch {}
    }

    function deposit(uint256 who, uint256 value) external {
        value = bound(value, 0, 1 ether);
        vm.prank(subOwner);
        try oracle.deposit{value: value}(consumers[who % consumers.length]) {} catch {}
    }

    function withdraw(uint256 who, uint256 amount) external {
        address c = consumers[who % consumers.length];
        (,, uint256 balance,) = oracle.subscriptionOf(c);
        vm.prank(subOwner);
        try oracle.withdraw(c, payable(address(0xD00D)), bound(amount, 0, balance + 1)) {} catch {}
    }

    function transmit(uint256 mask, uint256 by, int128 value) external {
        vm.warp(block.timestamp + 1);
        Update[] memory u = _updates(_feedsOf(mask), value, uint64(block.timestamp));
        bytes memory report = _encode(1, _nowRound(), u);
        IMiraOracle.Signature memory sig = _sign(1, report);
        bytes32[] memory f = new bytes32[](u.length);
        for (uint256 i; i < u.length; ++i) {
            f[i] = u[i].feedId;
        }
        bytes memory data =
            abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), oracle.ringHints(f));
        vm.prank(transmitters[by % 2]);
        (bool ok,) = address(oracle).call{gas: 5_000_000}(data);
        // a valid report with enough gas must land whatever the consumers do; a deposit that
        // would go negative reverts the transmit (checked arithmetic), so it shows up here too
        if (ok) ++transmits;
        else ++failedTransmits;
    }

    function claim(uint256 by) external {
        vm.prank(transmitters[by % 2]);
        try oracle.withdrawReimbursement(payable(address(0xC1A1))) {} catch {}
    }
}

/// @notice The oracle's ether is exactly the consumers' deposits plus the transmitters'
///         unclaimed reimbursements: callbacks only move value from one to the other.
contract SubscriptionsInvariantTest is OracleFixture {
    SubscriptionsHandler internal handler;

    function setUp() public {
        handler = new SubscriptionsHandler();
        targetContract(address(handler));
    }

    /// forge-config: default.invariant.runs = 24
    /// forge-config: default.invariant.depth = 24
    /// forge-config: ci.invariant.runs = 48
    /// forge-config: ci.invariant.depth = 32
    function invariant_balanceIsDepositsPlusReimbursements() public view {
        MiraOracle o = handler.oracleAddress();
        uint256 total;
        for (uint256 i; i < handler.consumerCount(); ++i) {
            (,, uint256 balance,) = o.subscriptionOf(handler.consumers(i));
            total += balance; // a negative deposit cannot exist: it would have reverted the transmit
        }
        total += o.reimbursementOf(handler.transmitterAt(0)) + o.reimbursementOf(handler.transmitterAt(1));
        vm.assertEq(address(o).balance, total, "ether == deposits + unclaimed reimbursements");
    }

    /// forge-config: default.invariant.runs = 24
    /// forge-config: default.invariant.depth = 24
    /// forge-config: ci.invariant.runs = 48
    /// forge-config: ci.invariant.depth = 32
    function invariant_committedCallbackGasIsTheSubscriptionsAndWithinBudget() public view {
        MiraOracle o = handler.oracleAddress();
        uint256 sum;
        for (uint256 i; i < handler.consumerCount(); ++i) {
            (, uint32 gasLimit,, bytes32[] memory feeds) = o.subscriptionOf(handler.consumers(i));
            if (feeds.length != 0) sum += gasLimit + feeds.length * o.CALLBACK_RESERVE_GAS();
        }
        (uint256 committed, uint256 budget) = o.callbackGasBudget();
        vm.assertEq(committed, sum, "committed == sum over subscriptions with feeds");
        vm.assertLe(committed, budget, "never above the budget");
        vm.assertEq(budget, handler.BUDGET(), "budget unchanged");
    }

    /// forge-config: default.invariant.runs = 24
    /// forge-config: default.invariant.depth = 24
    /// forge-config: ci.invariant.runs = 48
    /// forge-config: ci.invariant.depth = 32
    function invariant_everyValidReportLands() public view {
        vm.assertEq(handler.failedTransmits(), 0, "a valid, well-funded transmit reverted");
    }
}
