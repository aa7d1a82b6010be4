// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IMiraPolicyAgent
/// @notice An on-chain agent acting on a policy the Mira committee attests: one Mira feed per arm
///         holding the arm's score (fixed point, the policy's estimate of the arm's reward), and
///         optionally one feed holding the recommended arm: its index 0 … K − 1 in the feed's fixed
///         point (index · 10^decimals; the committee publishes it as "<policy id>#arm").
///
///         Every step the agent reads the latest attested policy (it never waits for a new one:
///         the policy's lag is part of what the loop measures), refuses it if it is stale, may have
///         been signed by a retired committee epoch or is malformed, picks an arm, acts in its
///         environment and emits `Step` with the step, the arm, its reward, the context feeds'
///         values it saw and the policy's round. The committee learns the next policy from these
///         events (oracle/sources/chain_events.py).
///
///         Retired epochs: the oracle stores no report epoch per value (latestRound gives round,
///         value and observedAt). What it exposes is each epoch's `validUntil`: a report signed by
///         epoch e landed at a block no later than e's validUntil, and its observedAt was at most
///         maxFutureDrift past that block. So once the previous epoch has expired, a value with
///         observedAt <= previous.validUntil + maxFutureDrift may be the retired epoch's and is
///         refused; a later one can only be the current epoch's. (Conservative: a current-epoch
///         value observed during the grace period is refused too, until the next one lands. Only
///         the previous epoch is checked: a value of the epoch before it passes while the previous
///         one is in its grace period, i.e. after two rotations within one grace period.)
interface IMiraPolicyAgent {
    /// @notice The agent's `step`-th action: `arm` under the policy of report round `policyRound`,
    ///         with the context feeds' values (`context`, in the agent's context-feed order) and
    ///         the reward the environment paid for it. Emitted when the reward is settled: in the
    ///         same transaction for an immediate environment, at the next step for a delayed one.
    event Step(uint256 indexed step, uint256 arm, int256 reward, int256[] context, uint64 policyRound);

    /// @notice The feed never received a value (or not since a reset).
    error FeedNeverUpdated(bytes32 feedId);
    /// @notice The feed's latest value is older than the agent's `maxPolicyAge`.
    error StaleFeed(bytes32 feedId, uint64 observedAt, uint256 maxAge);
    /// @notice The feed's latest value may have been signed by `epoch`, retired since `validUntil`.
    error RetiredEpochFeed(bytes32 feedId, uint64 observedAt, uint64 epoch, uint64 validUntil);
    /// @notice The policy's arm feeds and the environment's arms differ in number (or are none).
    error ArmCountMismatch(uint256 policyArms, uint256 environmentArms);
    /// @notice An arm's score is outside the agent's accepted [minScore, maxScore].
    error ScoreOutOfRange(uint256 arm, int128 score, int128 minScore, int128 maxScore);
    /// @notice The recommended-arm feed names no arm of the policy (negative, not a whole index
    ///         in the feed's fixed point, or an index ≥ K).
    error RecommendedArmOutOfRange(int128 value, uint256 arms);
    /// @notice The policy's feeds were not all written by the same report round (a torn policy).
    error TornPolicy(bytes32 feedId, uint64 round, uint64 policyRound);
    /// @notice The policy's feeds do not share the same decimals.
    error DecimalsMismatch(bytes32 feedId, uint8 decimals, uint8 expected);
    /// @notice minScore > maxScore, or a max age of zero.
    error InvalidBounds();

    /// @notice The latest policy, checked: every arm's score, the recommended arm (K if the
    ///         policy publishes none) and the report round that wrote it. Reverts with the errors
    ///         above if it is not fit to act on.
    function policy() external view returns (int128[] memory scores, uint256 recommended, uint64 round);

    /// @notice Act once on the latest policy. Returns the arm taken.
    function step() external returns (uint256 arm);

    /// @notice Steps taken so far.
    function steps() external view returns (uint256);

    /// @notice The arms' score feeds, in arm order.
    function armFeeds() external view returns (bytes32[] memory);

    /// @notice The recommended-arm feed; bytes32(0) if the policy publishes none.
    function recommendedFeed() external view returns (bytes32);

    /// @notice The feeds whose values are the context of a step.
    function contextFeeds() external view returns (bytes32[] memory);
}
