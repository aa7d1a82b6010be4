// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraOracle} from "../../src/MiraOracle.sol";
import {IMiraEnvironment} from "../../src/interfaces/IMiraEnvironment.sol";
import {IMiraPolicyAgent} from "../../src/interfaces/IMiraPolicyAgent.sol";
import {DriftingBandit} from "../../src/rl/DriftingBandit.sol";
import {GreedyPolicyAgent} from "../../src/rl/GreedyPolicyAgent.sol";
import {OracleFixture} from "../utils/OracleFixture.sol";

/// @notice A policy's arm feeds, its recommended-arm feed and one context feed on a real oracle;
///         the agent acting in a DriftingBandit.
contract PolicyAgentTest is OracleFixture {
    uint256 internal constant K = 3;
    uint256 internal constant MAX_POLICY_AGE = 7 days; // outlives a rotation (DELAY + GRACE)
    int128 internal constant ONE = 1e8;

    bytes32[] internal arms;
    bytes32 internal rec = keccak256("policy/#arm");
    bytes32 internal ctxFeed = keccak256("context");
    bytes32 internal wholeUnits = keccak256("whole units");
    bytes32[] internal ctxFeeds;
    DriftingBandit internal env;
    GreedyPolicyAgent internal agent;

    /// @dev The test's clock: via-IR may reuse a block.timestamp read across a vm.warp.
    uint256 internal t;

    function _warp(uint256 to) internal {
        t = to;
        vm.warp(to);
    }

    function setUp() public {
        _deploy();
        _wire();
    }

    /// @dev The feeds on `oracle`, the bandit and an agent reading them.
    function _wire() internal {
        t = block.timestamp;
        delete arms;
        vm.startPrank(owner);
        for (uint256 i; i < K; ++i) {
            arms.push(keccak256(abi.encodePacked("policy/arm", i)));
            oracle.registerFeed(arms[i], 8, "policy arm");
        }
        oracle.registerFeed(rec, 8, "policy recommended arm");
        oracle.registerFeed(wholeUnits, 0, "a feed of whole units");
        oracle.registerFeed(ctxFeed, 8, "context");
        vm.stopPrank();
        ctxFeeds.push(ctxFeed);
        env = new DriftingBandit(_rates(0, PPM, 0), 0);
        agent = new GreedyPolicyAgent(oracle, env, arms, rec, ctxFeeds, MAX_POLICY_AGE, 0, ONE);
        env.setAgent(address(agent));
    }

    uint256 internal constant PPM = 1e6;

    function _rates(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory r) {
        r = new uint256[](3);
        (r[0], r[1], r[2]) = (a, b, c);
    }

    /// @dev One report carrying every arm's score, the recommended arm (an index) and the context.
    function _publish(uint64 epoch, int128[3] memory scores, int128 recommended, int128 ctx)
        internal
        returns (uint64 round)
    {
        return _publishRaw(epoch, scores, recommended * ONE, ctx);
    }

    /// @dev As _publish, with the recommended-arm feed's raw fixed-point value.
    function _publishRaw(uint64 epoch, int128[3] memory scores, int128 recommendedRaw, int128 ctx)
        internal
        returns (uint64 round)
    {
        _warp(t + 1);
        round = uint64(t * 1000);
        Update[] memory u = new Update[](K + 2);
        for (uint256 i; i < K; ++i) {
            u[i] = Update(arms[i], scores[i], uint64(t), keccak256("policy"));
        }
        u[K] = Update(rec, recommendedRaw, uint64(t), keccak256("policy"));
        u[K + 1] = Update(ctxFeed, ctx, uint64(t), keccak256("ctx"));
        _transmit(epoch, round, u);
    }

    function _ctx(int256 v) internal pure returns (int256[] memory c) {
        c = new int256[](1);
        c[0] = v;
    }

    function test_stepActsOnTheRecommendedArmAndEmitsTheStep() public {
        uint64 round = _publish(1, [int128(1), 2, 3], 1, 42);
        vm.expectEmit(address(env));
        emit IMiraEnvironment.RewardPaid(address(agent), 1, 1, ONE);
        vm.expectEmit(address(agent));
        emit IMiraPolicyAgent.Step(1, 1, ONE, _ctx(42), round);
        vm.assertEq(agent.step(), 1, "the recommended arm, not the best score");
        vm.assertEq(agent.steps(), 1, "steps");
        vm.assertEq(env.balanceOf(address(agent)), ONE, "paid");
    }

    function test_policyReadsEveryArm() public {
        uint64 round = _publish(1, [int128(5), 0, ONE], 2, 0);
        (int128[] memory scores, uint256 recommended, uint64 r) = agent.policy();
        vm.assertEq(scores.length, K, "arms");
        vm.assertEq(int256(scores[0]), 5, "arm 0");
        vm.assertEq(int256(scores[2]), ONE, "arm 2");
        vm.assertEq(recommended, 2, "recommended");
        vm.assertEq(r, round, "round");
    }

    function test_withoutRecommendedFeedTheBestScoreWins() public {
        DriftingBandit e = new DriftingBandit(_rates(0, 0, PPM), 0);
        GreedyPolicyAgent a =
            new GreedyPolicyAgent(oracle, e, arms, bytes32(0), ctxFeeds, MAX_POLICY_AGE, 0, ONE);
        e.setAgent(address(a));
        _publish(1, [int128(3), 9, 9], 0, 0);
        (, uint256 recommended,) = a.policy();
        vm.assertEq(recommended, K, "none published");
        vm.assertEq(a.step(), 1, "the first of the best scores");
    }

    function test_refusesAPolicyNeverPublished() public {
        vm.expectRevert(abi.encodeWithSelector(IMiraPolicyAgent.FeedNeverUpdated.selector, arms[0]));
        agent.step();
    }

    function test_refusesAStalePolicy() public {
        uint64 at = _publish(1, [int128(1), 2, 3], 1, 0) / 1000;
        _warp(t + MAX_POLICY_AGE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.StaleFeed.selector, arms[0], at, MAX_POLICY_AGE)
        );
        agent.step();
    }

    function test_acceptsAPolicyAtExactlyMaxAge() public {
        _publish(1, [int128(1), 2, 3], 1, 0);
        _warp(t + MAX_POLICY_AGE);
        agent.step();
    }

    function test_refusesAStaleContext() public {
        uint64 at = _publish(1, [int128(1), 2, 3], 1, 0) / 1000;
        _warp(t + MAX_POLICY_AGE - 5);
        // a fresh policy without the context feed
        Update[] memory u = new Update[](K + 1);
        for (uint256 i; i < K; ++i) {
            u[i] = Update(arms[i], 1, uint64(t), keccak256("p"));
        }
        u[K] = Update(rec, 0, uint64(t), keccak256("p"));
        _transmit(1, uint64(t * 1000), u);
        _warp(t + 6);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.StaleFeed.selector, ctxFeed, at, MAX_POLICY_AGE)
        );
        agent.step();
    }

    function test_refusesAPolicyOfARetiredEpoch() public {
        uint64 at = _publish(1, [int128(1), 2, 3], 1, 0) / 1000;
        uint64 epoch2 = _startEpoch(0xC0FFEE, 3, 4);
        t += DELAY; // _startEpoch waited out the owner's delay
        vm.assertEq(epoch2, 2, "rotated");
        // during the outgoing epoch's grace period its values still count
        agent.step();
        uint64 validUntil = oracle.epochKey(1).validUntil;
        _warp(uint256(validUntil) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraPolicyAgent.RetiredEpochFeed.selector, arms[0], at, uint64(1), validUntil
            )
        );
        agent.step();
        // the new epoch's policy, observed after any report of the old one could land: accepted
        _warp(uint256(validUntil) + MAX_FUTURE + 1);
        _publish(2, [int128(1), 2, 3], 2, 0);
        vm.assertEq(agent.step(), 2, "acts on the new epoch's policy");
    }

    function test_refusesAnEpochHiddenBySecondRotationInItsGracePeriod() public {
        // a change delay (1 h) shorter than the grace period (1 day): two rotations can come
        // within one grace period, and the previous epoch is then still valid while the one
        // before it has expired
        oracle = new MiraOracle(owner, 1 days, 1 hours, MAX_AGE, MAX_FUTURE);
        _startEpoch(0xB0B5EC12E7, 3, 4);
        _wire();
        uint64 at = _publish(1, [int128(1), 2, 3], 1, 0) / 1000;
        _startEpoch(0xC0FFEE, 3, 4); // epoch 2, an hour later
        _startEpoch(0xDEC0DE, 3, 4); // epoch 3, an hour after that
        uint64 validUntil1 = oracle.epochKey(1).validUntil;
        _warp(uint256(validUntil1) + 1);
        vm.assertGe(oracle.epochKey(2).validUntil, block.timestamp, "epoch 2 in its grace period");
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraPolicyAgent.RetiredEpochFeed.selector, arms[0], at, uint64(1), validUntil1
            )
        );
        agent.step();
    }

    function test_refusesATornPolicy() public {
        uint64 round = _publish(1, [int128(1), 2, 3], 1, 0);
        _warp(t + 1);
        _transmit(1, uint64(t * 1000), _one(arms[1], 7, uint64(t)));
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.TornPolicy.selector, arms[1], uint64(t * 1000), round)
        );
        agent.step();
    }

    function testFuzz_refusesAScoreOutOfRange(int128 score, uint8 armSeed) public {
        uint256 arm = armSeed % K;
        int128[3] memory s = [int128(1), 2, 3];
        s[arm] = score;
        _publish(1, s, 0, 0);
        if (score < 0 || score > ONE) {
            vm.expectRevert(
                abi.encodeWithSelector(IMiraPolicyAgent.ScoreOutOfRange.selector, arm, score, int128(0), ONE)
            );
        }
        agent.step();
    }

    function testFuzz_refusesARecommendedArmOutOfRange(int128 value) public {
        _publishRaw(1, [int128(1), 2, 3], value, 0);
        if (value < 0 || value % ONE != 0 || value / ONE >= int128(int256(K))) {
            vm.expectRevert(
                abi.encodeWithSelector(IMiraPolicyAgent.RecommendedArmOutOfRange.selector, value, K)
            );
            agent.step();
        } else {
            vm.assertEq(agent.step(), uint256(int256(value / ONE)), "the recommended arm");
        }
    }

    function test_theRecommendedArmIsAnIndexInTheFeedsFixedPoint() public {
        _publishRaw(1, [int128(1), 2, 3], 2 * ONE, 0);
        vm.assertEq(agent.step(), 2, "2e8 at 8 decimals: arm 2");
        _publishRaw(1, [int128(1), 2, 3], ONE + 1, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.RecommendedArmOutOfRange.selector, ONE + 1, K)
        );
        agent.step();
        _publishRaw(1, [int128(1), 2, 3], 3 * ONE, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.RecommendedArmOutOfRange.selector, 3 * ONE, K)
        );
        agent.step();
    }

    function test_refusesAnArmCountMismatch() public {
        DriftingBandit e = new DriftingBandit(new uint256[](4), 0);
        vm.expectRevert(abi.encodeWithSelector(IMiraPolicyAgent.ArmCountMismatch.selector, K, uint256(4)));
        new GreedyPolicyAgent(oracle, e, arms, rec, ctxFeeds, MAX_POLICY_AGE, 0, ONE);
    }

    function test_refusesArmsOfMixedDecimals() public {
        bytes32[] memory mixed = new bytes32[](K);
        (mixed[0], mixed[1], mixed[2]) = (arms[0], arms[1], wholeUnits);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPolicyAgent.DecimalsMismatch.selector, wholeUnits, uint8(0), uint8(8))
        );
        new GreedyPolicyAgent(oracle, env, mixed, bytes32(0), ctxFeeds, MAX_POLICY_AGE, 0, ONE);
    }

    function test_refusesInvalidBounds() public {
        vm.expectRevert(IMiraPolicyAgent.InvalidBounds.selector);
        new GreedyPolicyAgent(oracle, env, arms, rec, ctxFeeds, MAX_POLICY_AGE, ONE, 0);
        vm.expectRevert(IMiraPolicyAgent.InvalidBounds.selector);
        new GreedyPolicyAgent(oracle, env, arms, rec, ctxFeeds, 0, 0, ONE);
    }
}
