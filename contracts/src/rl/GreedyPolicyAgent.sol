// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraEnvironment} from "../interfaces/IMiraEnvironment.sol";
import {IMiraOracle} from "../interfaces/IMiraOracle.sol";
import {MiraPolicyAgent} from "./MiraPolicyAgent.sol";

/// @title GreedyPolicyAgent
/// @notice Example agent: takes the policy's recommended arm, or, for a policy that publishes
///         none, the arm with the highest score (the first of equals). Exploration is the
///         committee's: the policy it learns decides how much to try other arms.
contract GreedyPolicyAgent is MiraPolicyAgent {
    constructor(
        IMiraOracle oracle_,
        IMiraEnvironment environment_,
        bytes32[] memory armFeeds_,
        bytes32 recommendedFeed_,
        bytes32[] memory contextFeeds_,
        uint256 maxPolicyAge_,
        int128 minScore_,
        int128 maxScore_
    )
        MiraPolicyAgent(
            oracle_,
            environment_,
            armFeeds_,
            recommendedFeed_,
            contextFeeds_,
            maxPolicyAge_,
            minScore_,
            maxScore_
        )
    {}

    function _choose(int128[] memory scores, uint256 recommended, int256[] memory)
        internal
        pure
        override
        returns (uint256 arm)
    {
        if (recommended < scores.length) return recommended;
        for (uint256 i = 1; i < scores.length; ++i) {
            if (scores[i] > scores[arm]) arm = i;
        }
    }
}
