// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraEnvironment} from "../interfaces/IMiraEnvironment.sol";
import {IMiraPolicyAgent} from "../interfaces/IMiraPolicyAgent.sol";

/// @title RandomAgent
/// @notice The baseline a policy agent is measured against: each step takes an arm drawn
///         uniformly from block.prevrandao mixed with its address and step number, reading no
///         policy. It emits IMiraPolicyAgent's Step event (no context, policy round 0) so the
///         same tools read both agents. Immediate environments only: a delayed one pays a step
///         later, which a baseline of one event per step does not need.
contract RandomAgent {
    /// @notice Where the agent acts.
    IMiraEnvironment public immutable environment;
    /// @notice Steps taken.
    uint256 public steps;

    uint256 private immutable _arms;

    /// @notice The environment settles its actions a step late.
    error DelayedEnvironment();

    constructor(IMiraEnvironment environment_) {
        if (environment_.delayed()) revert DelayedEnvironment();
        environment = environment_;
        _arms = environment_.armCount(); // at least 1: environments refuse no arms
    }

    /// @notice Take a uniformly drawn arm and emit the step with its reward.
    function step() external returns (uint256 arm) {
        uint256 n = ++steps;
        arm = uint256(keccak256(abi.encode(block.prevrandao, address(this), n))) % _arms;
        (, int256 reward) = environment.act(arm);
        emit IMiraPolicyAgent.Step(n, arm, reward, new int256[](0), 0);
    }
}
