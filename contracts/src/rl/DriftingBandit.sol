// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AgentBound} from "./AgentBound.sol";

/// @title DriftingBandit
/// @notice A K-armed market whose reward rates drift: arm i pays 1.0 (1e8) with probability
///         rate(i), else 0. Every `driftEvery` pulls the rates rotate by one arm, so the best arm
///         changes. Draws come from block.prevrandao mixed with the pull number: fine for a
///         demonstration and a benchmark, not for stakes a block proposer would bias.
///
///         The rates are "hidden" in that the agent's interface never shows them; on-chain state
///         is public, and `expectedReward`/`bestArm` serve benchmarks and dashboards computing
///         regret. An agent reading them would be cheating, not learning.
contract DriftingBandit is AgentBound {
    /// @notice Rates are parts per million.
    uint256 public constant PPM = 1e6;

    /// @notice The rates rotated by one: arm i now pays with rate `initialRates[(i + shift) % K]`.
    event Drifted(uint256 indexed pull, uint256 shift, uint256 bestArm);

    /// @notice No arms, or a rate above 1e6 ppm.
    error InvalidRates();

    uint256[] private _rates;
    /// @notice Pulls between two rotations of the rates; 0: they never drift.
    uint256 public immutable driftEvery;
    /// @notice How far the rates have rotated.
    uint256 public shift;

    constructor(uint256[] memory ratesPpm, uint256 driftEvery_) {
        if (ratesPpm.length == 0) revert InvalidRates();
        for (uint256 i; i < ratesPpm.length; ++i) {
            if (ratesPpm[i] > PPM) revert InvalidRates();
        }
        _rates = ratesPpm;
        driftEvery = driftEvery_;
    }

    /// @inheritdoc AgentBound
    function armCount() public view override returns (uint256) {
        return _rates.length;
    }

    /// @notice Never delayed: a pull is paid at once.
    function delayed() external pure returns (bool) {
        return false;
    }

    function act(uint256 arm) external returns (bool settled, int256 reward) {
        uint256 pull = _pull(arm);
        // the pulls before this one decide the rates it is paid at: pull driftEvery + 1 is the
        // first of the rotated rates
        if (driftEvery != 0 && pull > 1 && (pull - 1) % driftEvery == 0) {
            uint256 s = ++shift;
            emit Drifted(pull, s, bestArm());
        }
        uint256 draw = uint256(keccak256(abi.encode(block.prevrandao, address(this), pull))) % PPM;
        reward = draw < rateOf(arm) ? int256(10 ** REWARD_DECIMALS) : int256(0);
        _pay(pull, arm, reward);
        settled = true;
    }

    /// @notice Arm `arm`'s current rate in ppm.
    function rateOf(uint256 arm) public view returns (uint256) {
        return _rates[(arm + shift) % _rates.length];
    }

    /// @notice Arm `arm`'s expected reward now (fixed point, 8 decimals).
    function expectedReward(uint256 arm) external view returns (int256) {
        return int256(rateOf(arm) * 10 ** REWARD_DECIMALS / PPM);
    }

    /// @notice The arm with the highest rate now (the first of equals).
    function bestArm() public view returns (uint256 best) {
        for (uint256 i = 1; i < _rates.length; ++i) {
            if (rateOf(i) > rateOf(best)) best = i;
        }
    }
}
