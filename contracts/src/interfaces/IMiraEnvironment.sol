// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IMiraEnvironment
/// @notice An environment a MiraPolicyAgent acts in: K arms, numbered 0 … K − 1 in the order of
///         the policy feed's arms. Rewards are fixed point with `REWARD_DECIMALS` (8) decimals,
///         credited to the agent's balance here and emitted as events.
///
///         An environment either settles an action at once (`delayed() == false`: the reward of
///         `act(arm)` is the reward of `arm`), or one step later (`delayed() == true`: `act(arm)`
///         opens a one-step holding of `arm` and returns the reward of the holding it closes, the
///         agent's previous action, since the outcome of a holding is only known when it ends).
interface IMiraEnvironment {
    /// @notice `agent` was credited `reward` for holding `arm` (its `pulls`-th action here).
    event RewardPaid(address indexed agent, uint256 indexed pull, uint256 arm, int256 reward);

    /// @notice `caller` is not the agent this environment serves.
    error NotTheAgent(address caller);
    /// @notice The agent was already set (it is set once, by the deployer).
    error AgentAlreadySet(address agent);
    /// @notice Only the deployer may set the agent.
    error NotDeployer(address caller);
    /// @notice No such arm.
    error UnknownArm(uint256 arm, uint256 arms);

    /// @notice Take `arm`. Returns whether a reward was settled by this call and its value.
    function act(uint256 arm) external returns (bool settled, int256 reward);

    /// @notice How many arms there are (K).
    function armCount() external view returns (uint256);

    /// @notice Whether `act` settles the previous action rather than the one it takes.
    function delayed() external view returns (bool);

    /// @notice The agent's balance of rewards received so far (fixed point, 8 decimals).
    function balanceOf(address agent) external view returns (int256);
}
