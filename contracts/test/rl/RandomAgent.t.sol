// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraEnvironment} from "../../src/interfaces/IMiraEnvironment.sol";
import {IMiraPolicyAgent} from "../../src/interfaces/IMiraPolicyAgent.sol";
import {DriftingBandit} from "../../src/rl/DriftingBandit.sol";
import {RandomAgent} from "../../src/rl/RandomAgent.sol";
import {StockMarket} from "../../src/rl/StockMarket.sol";
import {OracleFixture} from "../utils/OracleFixture.sol";

/// @notice The uniformly random baseline agent in a 4-armed drifting market.
contract RandomAgentTest is OracleFixture {
    DriftingBandit internal env;
    RandomAgent internal agent;

    function setUp() public {
        uint256[] memory rates = new uint256[](4);
        (rates[0], rates[1], rates[2], rates[3]) = (100_000, 300_000, 600_000, 900_000);
        env = new DriftingBandit(rates, 0);
        agent = new RandomAgent(env);
        env.setAgent(address(agent));
    }

    function test_theArmIsDrawnFromPrevrandaoAndTheStepIsPaidAndEmitted() public {
        bytes32 randao = keccak256("block");
        vm.prevrandao(randao);
        uint256 arm = uint256(keccak256(abi.encode(randao, address(agent), uint256(1)))) % 4;
        uint256 draw = uint256(keccak256(abi.encode(randao, address(env), uint256(1)))) % 1e6;
        int256 reward = draw < env.rateOf(arm) ? int256(1e8) : int256(0);
        vm.expectEmit(address(env));
        emit IMiraEnvironment.RewardPaid(address(agent), 1, arm, reward);
        vm.expectEmit(address(agent));
        emit IMiraPolicyAgent.Step(1, arm, reward, new int256[](0), 0);
        vm.assertEq(agent.step(), arm, "the drawn arm");
        vm.assertEq(agent.steps(), 1, "counted");
        vm.assertEq(env.balanceOf(address(agent)), reward, "paid to the agent");
    }

    function test_armsAreTakenUniformly() public {
        uint256[4] memory counts;
        uint256 n = 2000;
        for (uint256 i; i < n; ++i) {
            vm.prevrandao(bytes32(i / 3)); // several steps a block, as on a fast chain
            ++counts[agent.step()];
        }
        // each arm 500 expected; 6 standard deviations (~19.4) around it
        for (uint256 a; a < 4; ++a) {
            vm.assertTrue(counts[a] > 380, "no arm starved");
            vm.assertTrue(counts[a] < 620, "no arm favoured");
        }
        vm.assertEq(env.pulls(), n, "every step acted once");
    }

    function test_onlyTheBoundEnvironmentAcceptsIt() public {
        uint256[] memory rates = new uint256[](2);
        DriftingBandit other = new DriftingBandit(rates, 0);
        RandomAgent stray = new RandomAgent(other); // its environment serves no one yet
        vm.expectRevert(abi.encodeWithSelector(IMiraEnvironment.NotTheAgent.selector, address(stray)));
        stray.step();
    }

    function test_refusesADelayedEnvironment() public {
        _deploy();
        bytes32[] memory feeds = _register(1);
        StockMarket market = new StockMarket(oracle, feeds, 60);
        vm.expectRevert(RandomAgent.DelayedEnvironment.selector);
        new RandomAgent(market);
    }
}
