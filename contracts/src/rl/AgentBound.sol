// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraEnvironment} from "../interfaces/IMiraEnvironment.sol";

/// @title AgentBound
/// @notice The part every environment shares: the one agent it serves (set once by the
///         deployer, since the agent is built with the environment's address and cannot be known
///         first), its pull count and its reward ledger.
abstract contract AgentBound is IMiraEnvironment {
    /// @notice Fixed-point decimals of rewards.
    uint8 public constant REWARD_DECIMALS = 8;

    address private immutable _deployer = msg.sender;
    /// @notice The agent whose actions this environment takes; address(0) until set.
    address public agent;
    /// @notice Actions taken so far.
    uint256 public pulls;

    mapping(address => int256) private _balances;

    /// @notice Deployer, once: serve `agent_`.
    function setAgent(address agent_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (agent != address(0)) revert AgentAlreadySet(agent);
        agent = agent_;
    }

    /// @inheritdoc IMiraEnvironment
    function balanceOf(address who) external view returns (int256) {
        return _balances[who];
    }

    /// @dev Check the caller and the arm; count the pull.
    function _pull(uint256 arm) internal returns (uint256 pull) {
        if (msg.sender != agent || msg.sender == address(0)) revert NotTheAgent(msg.sender);
        uint256 k = armCount();
        if (arm >= k) revert UnknownArm(arm, k);
        pull = ++pulls;
    }

    function _pay(uint256 pull, uint256 arm, int256 reward) internal {
        _balances[msg.sender] += reward;
        emit RewardPaid(msg.sender, pull, arm, reward);
    }

    /// @inheritdoc IMiraEnvironment
    function armCount() public view virtual returns (uint256);
}
