// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICommittee} from "../interfaces/ICommittee.sol";
import {IMiraEnvironment} from "../interfaces/IMiraEnvironment.sol";
import {IMiraOracle} from "../interfaces/IMiraOracle.sol";
import {IMiraPolicyAgent} from "../interfaces/IMiraPolicyAgent.sol";

/// @title MiraPolicyAgent
/// @notice Base of an agent acting on an attested Mira policy (see IMiraPolicyAgent). A derived
///         agent chooses the arm (`_choose`); the base reads and checks the policy and the context,
///         acts in the environment and emits the step once its reward is settled.
abstract contract MiraPolicyAgent is IMiraPolicyAgent {
    /// @notice The oracle the policy and context feeds live on.
    IMiraOracle public immutable oracle;
    /// @notice Where the agent acts.
    IMiraEnvironment public immutable environment;
    /// @notice The oldest policy (and context) value the agent acts on, in seconds.
    uint256 public immutable maxPolicyAge;
    /// @notice Accepted range of an arm's score (fixed point, the arm feeds' decimals).
    int128 public immutable minScore;
    int128 public immutable maxScore;
    /// @inheritdoc IMiraPolicyAgent
    bytes32 public immutable recommendedFeed;
    /// @dev The oracle's maxFutureDrift, read once: it is immutable there too.
    uint256 private immutable _maxFutureDrift;
    /// @dev One arm index in the recommended-arm feed's fixed point: 10 ** its decimals.
    int256 private immutable _recommendedUnit;

    bytes32[] private _armFeeds;
    bytes32[] private _contextFeeds;
    /// @inheritdoc IMiraPolicyAgent
    uint256 public steps;

    /// @dev A delayed environment's open action, emitted as a Step when the next act settles it.
    struct Pending {
        uint256 step;
        uint256 arm;
        uint64 round;
        int256[] context;
    }

    Pending private _pending;

    constructor(
        IMiraOracle oracle_,
        IMiraEnvironment environment_,
        bytes32[] memory armFeeds_,
        bytes32 recommendedFeed_,
        bytes32[] memory contextFeeds_,
        uint256 maxPolicyAge_,
        int128 minScore_,
        int128 maxScore_
    ) {
        uint256 k = environment_.armCount();
        if (armFeeds_.length == 0 || armFeeds_.length != k) revert ArmCountMismatch(armFeeds_.length, k);
        if (minScore_ > maxScore_ || maxPolicyAge_ == 0) revert InvalidBounds();
        // one policy, one unit: a mix of decimals would compare scores in different units
        uint8 decimals = oracle_.decimalsOf(armFeeds_[0]);
        for (uint256 i = 1; i < k; ++i) {
            uint8 d = oracle_.decimalsOf(armFeeds_[i]);
            if (d != decimals) revert DecimalsMismatch(armFeeds_[i], d, decimals);
        }
        uint8 recommendedDecimals = recommendedFeed_ == bytes32(0) ? 0 : oracle_.decimalsOf(recommendedFeed_);
        if (recommendedDecimals > 38) revert InvalidBounds(); // 10 ** 39 > int128's range
        for (uint256 i; i < contextFeeds_.length; ++i) {
            oracle_.decimalsOf(contextFeeds_[i]);
        }
        oracle = oracle_;
        environment = environment_;
        _armFeeds = armFeeds_;
        recommendedFeed = recommendedFeed_;
        _contextFeeds = contextFeeds_;
        maxPolicyAge = maxPolicyAge_;
        minScore = minScore_;
        maxScore = maxScore_;
        _maxFutureDrift = IMaxFutureDrift(address(oracle_)).maxFutureDrift();
        _recommendedUnit = int256(10 ** recommendedDecimals);
    }

    /// @inheritdoc IMiraPolicyAgent
    function step() external returns (uint256 arm) {
        (int128[] memory scores, uint256 recommended, uint64 round) = policy();
        int256[] memory context = _context();
        arm = _choose(scores, recommended, context);
        uint256 n = ++steps;
        (bool settled, int256 reward) = environment.act(arm);
        if (!environment.delayed()) {
            emit Step(n, arm, reward, context, round);
            return arm;
        }
        if (settled) {
            Pending storage p = _pending;
            emit Step(p.step, p.arm, reward, p.context, p.round);
        }
        _pending = Pending(n, arm, round, context);
    }

    /// @inheritdoc IMiraPolicyAgent
    function policy() public view returns (int128[] memory scores, uint256 recommended, uint64 round) {
        uint256 k = _armFeeds.length;
        (uint64 retiredEpoch, uint64 retiredUntil) = _retiredEpoch();
        scores = new int128[](k);
        for (uint256 i; i < k; ++i) {
            bytes32 id = _armFeeds[i];
            (uint64 r, int128 v) = _fresh(id, retiredEpoch, retiredUntil);
            if (i == 0) round = r;
            else if (r != round) revert TornPolicy(id, r, round);
            if (v < minScore || v > maxScore) revert ScoreOutOfRange(i, v, minScore, maxScore);
            scores[i] = v;
        }
        recommended = k;
        if (recommendedFeed != bytes32(0)) {
            (uint64 r, int128 v) = _fresh(recommendedFeed, retiredEpoch, retiredUntil);
            if (r != round) revert TornPolicy(recommendedFeed, r, round);
            // the arm's index in the feed's fixed point (oracle/models/runner.py): index · 10^d
            int256 unit = _recommendedUnit;
            if (v < 0 || v % unit != 0 || uint256(v / unit) >= k) revert RecommendedArmOutOfRange(v, k);
            recommended = uint256(v / unit);
        }
    }

    /// @inheritdoc IMiraPolicyAgent
    function armFeeds() external view returns (bytes32[] memory) {
        return _armFeeds;
    }

    /// @inheritdoc IMiraPolicyAgent
    function contextFeeds() external view returns (bytes32[] memory) {
        return _contextFeeds;
    }

    /// @notice Pick an arm (0 … K − 1) from the checked policy: every arm's score, the recommended
    ///         arm (K if the policy publishes none) and the context values.
    function _choose(int128[] memory scores, uint256 recommended, int256[] memory context)
        internal
        view
        virtual
        returns (uint256 arm);

    /// @dev The context feeds' values, each checked like a policy feed (fresh, not retired).
    function _context() private view returns (int256[] memory context) {
        (uint64 retiredEpoch, uint64 retiredUntil) = _retiredEpoch();
        uint256 n = _contextFeeds.length;
        context = new int256[](n);
        for (uint256 i; i < n; ++i) {
            (, int128 v) = _fresh(_contextFeeds[i], retiredEpoch, retiredUntil);
            context[i] = v;
        }
    }

    /// @dev The newest expired epoch: values observed up to its validUntil + maxFutureDrift
    ///      may be its own (or an older epoch's: see below). (0, 0) while none has expired.
    ///      Epochs still in their grace period are passed over, so a second rotation within
    ///      one grace period (a change delay shorter than the grace period) cannot hide the
    ///      epoch before it; the walk stops at the first expired one, usually the previous
    ///      epoch (one call, as before), and covers older ones because an epoch's validUntil
    ///      is set when its successor starts, so older epochs' are earlier (unless the owner
    ///      shortened the grace period in between: docs/contracts.md).
    function _retiredEpoch() private view returns (uint64 epoch, uint64 validUntil) {
        for (uint64 e = oracle.currentEpoch(); e > 1;) {
            --e;
            ICommittee.EpochKey memory key = oracle.epochKey(e);
            if (key.validUntil < block.timestamp) return (e, key.validUntil);
        }
        return (0, 0);
    }

    function _fresh(bytes32 id, uint64 retiredEpoch, uint64 retiredUntil)
        private
        view
        returns (uint64 round, int128 value)
    {
        uint64 observedAt;
        (round, value, observedAt) = oracle.latestRound(id);
        if (round == 0) revert FeedNeverUpdated(id);
        // observedAt is at most block.timestamp as the oracle serves it: no underflow
        if (block.timestamp - observedAt > maxPolicyAge) revert StaleFeed(id, observedAt, maxPolicyAge);
        if (retiredEpoch != 0 && observedAt <= uint256(retiredUntil) + _maxFutureDrift) {
            revert RetiredEpochFeed(id, observedAt, retiredEpoch, retiredUntil);
        }
    }
}

/// @dev MiraOracle's public immutable (not part of IMiraOracle).
interface IMaxFutureDrift {
    function maxFutureDrift() external view returns (uint256);
}
