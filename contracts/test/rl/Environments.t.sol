// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraEnvironment} from "../../src/interfaces/IMiraEnvironment.sol";
import {IMiraPolicyAgent} from "../../src/interfaces/IMiraPolicyAgent.sol";
import {DriftingBandit} from "../../src/rl/DriftingBandit.sol";
import {GreedyPolicyAgent} from "../../src/rl/GreedyPolicyAgent.sol";
import {StockMarket} from "../../src/rl/StockMarket.sol";
import {OracleFixture} from "../utils/OracleFixture.sol";

/// @notice The K-armed drifting market, with this test as its agent.
contract DriftingBanditTest is OracleFixture {
    uint256 internal constant PPM = 1e6;
    int256 internal constant ONE = 1e8;
    DriftingBandit internal env;

    function setUp() public {
        uint256[] memory rates = new uint256[](3);
        (rates[0], rates[1], rates[2]) = (100_000, 500_000, 900_000);
        env = new DriftingBandit(rates, 4);
        env.setAgent(address(this));
    }

    function test_paysByPrevrandaoAndEmits() public {
        bytes32 randao = keccak256("block");
        vm.prevrandao(randao);
        uint256 draw = uint256(keccak256(abi.encode(randao, address(env), uint256(1)))) % PPM;
        int256 expected = draw < 500_000 ? ONE : int256(0);
        vm.expectEmit(address(env));
        emit IMiraEnvironment.RewardPaid(address(this), 1, 1, expected);
        (bool settled, int256 reward) = env.act(1);
        vm.assertTrue(settled, "immediate");
        vm.assertEq(reward, expected, "the prevrandao draw against the arm's rate");
        vm.assertEq(env.balanceOf(address(this)), expected, "credited");
    }

    function testFuzz_rewardIsZeroOrOneAndFollowsTheRate(bytes32 randao, uint8 armSeed) public {
        uint256 arm = armSeed % 3;
        vm.prevrandao(randao);
        uint256 draw = uint256(keccak256(abi.encode(randao, address(env), uint256(1)))) % PPM;
        (, int256 reward) = env.act(arm);
        vm.assertEq(reward, draw < env.rateOf(arm) ? ONE : int256(0), "reward");
    }

    function test_certainArmsPayAlwaysAndNever() public {
        uint256[] memory rates = new uint256[](2);
        rates[1] = PPM;
        DriftingBandit e = new DriftingBandit(rates, 0);
        e.setAgent(address(this));
        int256 total;
        for (uint256 i; i < 20; ++i) {
            vm.prevrandao(bytes32(i));
            (, int256 r0) = e.act(0);
            (, int256 r1) = e.act(1);
            vm.assertEq(r0, 0, "rate 0 never pays");
            vm.assertEq(r1, ONE, "rate 1e6 always pays");
            total += r1;
        }
        vm.assertEq(e.balanceOf(address(this)), total, "ledger");
    }

    function test_ratesRotateEveryDriftPeriodAndTheBestArmChanges() public {
        vm.assertEq(env.bestArm(), 2, "best before");
        for (uint256 i; i < 4; ++i) {
            env.act(0);
        }
        vm.assertEq(env.shift(), 0, "no drift within the first period");
        vm.expectEmit(address(env));
        emit DriftingBandit.Drifted(5, 1, 1);
        env.act(0);
        vm.assertEq(env.bestArm(), 1, "best after one drift");
        vm.assertEq(env.expectedReward(1), 90_000_000, "the 0.9 rate moved to arm 1");
        vm.assertEq(env.rateOf(2), 100_000, "the 0.1 rate moved to arm 2");
    }

    function test_onlyTheAgentActs() public {
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IMiraEnvironment.NotTheAgent.selector, address(0xBAD)));
        env.act(0);
    }

    function test_agentIsSetOnceByTheDeployer() public {
        vm.expectRevert(abi.encodeWithSelector(IMiraEnvironment.AgentAlreadySet.selector, address(this)));
        env.setAgent(address(0xBEEF));
        DriftingBandit e = new DriftingBandit(new uint256[](1), 0);
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IMiraEnvironment.NotDeployer.selector, address(0xBAD)));
        e.setAgent(address(0xBAD));
    }

    function testFuzz_unknownArm(uint256 arm) public {
        arm = bound(arm, 3, type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IMiraEnvironment.UnknownArm.selector, arm, uint256(3)));
        env.act(arm);
    }

    function test_refusesInvalidRates() public {
        vm.expectRevert(DriftingBandit.InvalidRates.selector);
        new DriftingBandit(new uint256[](0), 0);
        uint256[] memory rates = new uint256[](1);
        rates[0] = PPM + 1;
        vm.expectRevert(DriftingBandit.InvalidRates.selector);
        new DriftingBandit(rates, 0);
    }
}

/// @notice The real-data market: stocks as Mira price feeds, one-step holdings paid their return,
///         acted in by a GreedyPolicyAgent.
contract StockMarketTest is OracleFixture {
    int128 internal constant ONE = 1e8;
    bytes32[] internal prices;
    bytes32[] internal arms;
    StockMarket internal market;
    GreedyPolicyAgent internal agent;
    uint256 internal t;

    function setUp() public {
        _deploy();
        t = 1_700_000_000;
        vm.startPrank(owner);
        for (uint256 i; i < 2; ++i) {
            prices.push(keccak256(abi.encodePacked("SP500/price/", i)));
            arms.push(keccak256(abi.encodePacked("SP500/policy/", i)));
            oracle.registerFeed(prices[i], 8, "stock");
            oracle.registerFeed(arms[i], 8, "policy arm");
        }
        vm.stopPrank();
        market = new StockMarket(oracle, prices, 1 hours);
        agent = new GreedyPolicyAgent(oracle, market, arms, bytes32(0), new bytes32[](0), 1 hours, -ONE, ONE);
        market.setAgent(address(agent));
    }

    /// @dev One report: both prices and the policy's scores (arm 0 best if `arm0`, else arm 1).
    function _publish(int128 p0, int128 p1, bool arm0) internal returns (uint64 round) {
        t += 10;
        vm.warp(t);
        round = uint64(t * 1000);
        Update[] memory u = new Update[](4);
        u[0] = Update(prices[0], p0, uint64(t), keccak256("price"));
        u[1] = Update(prices[1], p1, uint64(t), keccak256("price"));
        u[2] = Update(arms[0], arm0 ? int128(10) : int128(0), uint64(t), keccak256("policy"));
        u[3] = Update(arms[1], arm0 ? int128(0) : int128(10), uint64(t), keccak256("policy"));
        _transmit(1, round, u);
    }

    function test_aHoldingIsPaidItsRealisedReturnAtTheNextStep() public {
        uint64 round1 = _publish(100e8, 50e8, true);
        vm.recordLogs();
        vm.assertEq(agent.step(), 0, "holds stock 0");
        vm.assertEq(vm.getRecordedLogs().length, 0, "nothing settled on the first step");
        vm.assertEq(market.heldArmPlusOne(), 1, "holding");

        _publish(110e8, 40e8, false); // stock 0 gained 10%, stock 1 lost 20%
        int256 tenPct = 10_000_000;
        vm.expectEmit(address(market));
        emit StockMarket.ReturnRealised(1, 0, 100e8, 110e8, tenPct);
        vm.expectEmit(address(market));
        emit IMiraEnvironment.RewardPaid(address(agent), 1, 0, tenPct);
        vm.expectEmit(address(agent));
        emit IMiraPolicyAgent.Step(1, 0, tenPct, new int256[](0), round1);
        vm.assertEq(agent.step(), 1, "switches to stock 1");

        _publish(110e8, 30e8, false); // stock 1 lost 25% more
        vm.expectEmit(address(market));
        emit StockMarket.ReturnRealised(2, 1, 40e8, 30e8, -25_000_000);
        agent.step();
        vm.assertEq(market.balanceOf(address(agent)), tenPct - 25_000_000, "the realised returns, summed");
    }

    function test_refusesANonPositivePrice() public {
        _publish(0, 50e8, true);
        vm.expectRevert(abi.encodeWithSelector(StockMarket.BadPrice.selector, prices[0], int128(0)));
        agent.step();
    }

    function test_refusesAStalePrice() public {
        _publish(100e8, 50e8, true);
        agent.step();
        // a fresh policy, but stock 0's price is older than the market's max age
        t += 2 hours;
        vm.warp(t);
        Update[] memory u = new Update[](2);
        u[0] = Update(arms[0], 10, uint64(t), keccak256("policy"));
        u[1] = Update(arms[1], 0, uint64(t), keccak256("policy"));
        _transmit(1, uint64(t * 1000), u);
        vm.expectRevert(
            abi.encodeWithSelector(
                StockMarket.StalePrice.selector, prices[0], uint64(t - 2 hours), uint256(1 hours)
            )
        );
        agent.step();
    }

    function test_refusesAnEmptyMarket() public {
        vm.expectRevert(StockMarket.InvalidMarket.selector);
        new StockMarket(oracle, new bytes32[](0), 1 hours);
    }
}
