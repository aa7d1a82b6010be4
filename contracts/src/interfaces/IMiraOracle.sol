// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraSubscriptions} from "../consumer/IMiraSubscriptions.sol";
import {ICommittee} from "./ICommittee.sol";

/// @title IMiraOracle
/// @notice Receives batched, threshold-signed reports and serves the latest and recent values
///         of every registered feed.
///
///         Report (bytes, packed; see LibReport and oracle/reporting/report.py):
///             epoch uint64 ‖ round uint64 ‖ update[k]
///             update = feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ modelCommitment bytes32
///
///         Signed message (one FROST Schnorr signature by the epoch's group key):
///             keccak256(abi.encodePacked("MIRA-REPORT-v1", block.chainid, address(this), epoch, keccak256(report)))
///
///         Rounds are the start of the committee's round slot in unix milliseconds (see
///         oracle/reporting/rounds.py): they increase with time whatever the nodes' round period,
///         and a report's round may be at most (block.timestamp + maxFutureDrift) · 1000.
///
///         Per feed, the contract keeps a ring of `historyDepthOf` entries, each one storage slot packing
///         value, observedAt, round and the feed's update count; an update is checked against
///         the feed's latest entry (the highest count) and written to the slot after it. It
///         applies only if its round and its observedAt are both later than the latest's, so
///         neither ever moves backwards. Transmitters append one hint byte per update after
///         the ABI-encoded arguments (`ringHints`), sparing the contract a scan of the ring.
///
///         Contracts subscribe to feeds to be called back on their updates: IMiraSubscriptions.
interface IMiraOracle is ICommittee, IMiraSubscriptions {
    /// @notice A Schnorr signature by an epoch's group key, with the key itself (checked against
    ///         the epoch's stored key hash: cheaper than reading the key from storage).
    /// @dev The field order fixes transmit's selector (0x02bb485c): it sorts first in the
    ///      dispatcher, which compares selectors one by one, saving ~490 gas per report.
    /// @param px         x-coordinate of the group public key
    /// @param z          the response scalar
    /// @param commitment address(R) of the nonce commitment R
    /// @param parity     0 if the group key's y is even, 1 if odd
    struct Signature {
        uint256 px;
        uint256 z;
        address commitment;
        uint8 parity;
    }

    /// @notice Why an update in a valid report was not applied.
    enum SkipReason {
        StaleRound, // the feed's latest round is this round or a later one
        DuplicateFeed, // the feed appeared earlier in the same report
        StaleTimestamp, // observedAt is not after the feed's latest observedAt, or older than maxAge
        FutureTimestamp, // observedAt is more than maxFutureDrift ahead of the block
        UnregisteredFeed // the owner never registered this feed id
    }

    /// @notice A report was verified and at least one of its updates applied.
    /// @param modelCommitments the model commitments of the applied updates, in report order
    ///         The transmitter is the transaction's sender; it is not repeated here.
    event ReportTransmitted(uint64 indexed epoch, uint64 indexed round, bytes32[] modelCommitments);
    /// @notice One update of an accepted report was skipped; the others still applied.
    event UpdateSkipped(bytes32 indexed feedId, uint64 indexed round, SkipReason reason);
    /// @notice The owner or the feed registrar registered a feed; `proxy` is its
    ///         AggregatorV3Interface.
    event FeedRegistered(bytes32 indexed feedId, uint8 decimals, string description, address proxy);
    /// @notice The owner made `registrar` the feed registrar (address(0): none).
    event FeedRegistrarSet(address indexed registrar);
    /// @notice The owner scheduled a reset of `feedId`; `executeFeedReset` applies it from `eta` on.
    event FeedResetScheduled(bytes32 indexed feedId, uint64 eta);
    /// @notice A scheduled reset was cancelled before it was applied.
    event FeedResetCancelled(bytes32 indexed feedId);
    /// @notice `feedId` was reset: a new phase with no latest value and an empty ring; the ended
    ///         phase's kept rounds stay readable through getRoundData.
    event FeedReset(bytes32 indexed feedId);

    /// @notice Report bytes are not 16 + 88·k long for some k ≥ 1.
    error MalformedReport(uint256 length);
    /// @notice The report's round is 0 or after `maxRound` = (block.timestamp + maxFutureDrift) · 1000
    ///         (rounds are milliseconds): a round from the future could pin every feed it touches.
    error RoundOutOfRange(uint64 round, uint256 maxRound);
    /// @notice The signature does not verify for this chain, contract, epoch and report.
    error InvalidSignature();
    /// @notice No reset of this feed is scheduled.
    error FeedResetNotScheduled(bytes32 feedId);
    /// @notice Every update of the report was skipped (a replay, or nothing new).
    error NoUpdateApplied(uint64 epoch, uint64 round);
    /// @notice A feed with this id exists already.
    error FeedAlreadyRegistered(bytes32 feedId);
    /// @notice maxAge or maxFutureDrift is above 2^32 − 1 seconds.
    error InvalidWindow(uint256 maxAge, uint256 maxFutureDrift);
    /// @notice Feed id zero is reserved.
    error InvalidFeedId();
    /// @notice The round id's phase is 0 or after the feed's current phase (Chainlink's proxy
    ///         reverts there too: no aggregator for that phase).
    error NoDataPresent(bytes32 feedId, uint80 roundId);
    /// @notice A history depth outside [MIN_HISTORY_DEPTH, MAX_HISTORY_DEPTH] = [2, 127].
    error InvalidHistoryDepth(uint256 depth);

    /// @notice Verify `signature` over `report` and apply its updates.
    function transmit(bytes calldata report, Signature calldata signature) external;

    /// @notice Owner or feed registrar: register feed `feedId` and deploy its
    ///         AggregatorV3Interface proxy. It keeps DEFAULT_HISTORY_DEPTH (61) entries.
    ///         Anyone else: reverts Owned.NotOwner(caller).
    function registerFeed(bytes32 feedId, uint8 decimals, string calldata description)
        external
        returns (address proxy);

    /// @notice Owner or feed registrar: register feed `feedId` keeping its last `historyDepth` updates (2 to 127; each
    ///         costs one storage slot written once here, so updates stay non-zero → non-zero).
    function registerFeed(bytes32 feedId, uint8 decimals, string calldata description, uint256 historyDepth)
        external
        returns (address proxy);

    /// @notice Owner: make `registrar` the feed registrar, the one address besides the owner
    ///         that may call registerFeed (the ModelRegistry, which registers an approved
    ///         model's feeds; address(0) removes it). A registrar can only add feeds: it cannot
    ///         reset, reconfigure or remove any, nor touch the committee.
    function setFeedRegistrar(address registrar) external;

    /// @notice The feed registrar (see setFeedRegistrar); address(0) if none.
    function feedRegistrar() external view returns (address);

    /// @notice The digest the committee signs for `report` under `epoch` on this contract.
    function reportDigest(uint64 epoch, bytes calldata report) external view returns (bytes32);

    /// @notice Whether the owner registered `feedId`.
    function isRegistered(bytes32 feedId) external view returns (bool);

    /// @notice The feed's AggregatorV3Interface proxy; address(0) if not registered.
    function proxyOf(bytes32 feedId) external view returns (address);

    /// @notice How many feeds were registered.
    function feedCount() external view returns (uint256);

    /// @notice The `index`-th registered feed id, in registration order.
    function feedIdAt(uint256 index) external view returns (bytes32);

    /// @notice Decimals of the feed's fixed-point values; reverts FeedNotRegistered.
    function decimalsOf(bytes32 feedId) external view returns (uint8);

    /// @notice The feed's description ("ETH / USD"); reverts FeedNotRegistered.
    function descriptionOf(bytes32 feedId) external view returns (string memory);

    /// @notice How many of its latest updates the feed keeps for getRoundData.
    function historyDepthOf(bytes32 feedId) external view returns (uint256);

    /// @notice The feed's Chainlink phase: 1 at registration, + 1 at each reset.
    function phaseOf(bytes32 feedId) external view returns (uint16);

    /// @notice The feed's latest update as Chainlink's AggregatorV3Interface.latestRoundData
    ///         (through a proxy): roundId = phase << 64 | n for the feed's n-th update;
    ///         startedAt = updatedAt = observedAt (capped at block.timestamp). Before the first
    ///         update: (phase << 64, 0, 0, 0, phase << 64).
    function latestRoundData(bytes32 feedId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice A round as Chainlink's getRoundData (through a proxy): the data of a round its
    ///         phase's ring keeps (an earlier phase's ring as the reset that ended it left it);
    ///         (roundId, 0, 0, 0, roundId) for round 0, a round never made in its phase or no
    ///         longer kept; (phase << 64, 0, 0, 0, phase << 64) for an aggregator round above
    ///         2^32 − 1; reverts NoDataPresent for phase 0 or a phase not yet begun.
    function getRoundData(bytes32 feedId, uint80 roundId)
        external
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice Latest value of a feed; all zero if it never updated (or since a reset).
    ///         `observedAt` is never after block.timestamp: a value observed up to maxFutureDrift
    ///         ahead of the block is served as observed now, so `block.timestamp - updatedAt`
    ///         never underflows in a consumer.
    function latestRound(bytes32 feedId) external view returns (uint64 round, int128 value, uint64 observedAt);

    /// @notice Owner: schedule a reset of `feedId`: a new phase with no latest value and an empty
    ///         ring (the ended phase's rounds stay readable by their round ids), applicable after
    ///         `changeDelay()` seconds. The way out if a validly signed update (say, by a leaked
    ///         key in its grace period) ever pins a feed.
    function scheduleFeedReset(bytes32 feedId) external returns (uint64 eta);

    /// @notice Owner: cancel a scheduled reset.
    function cancelFeedReset(bytes32 feedId) external;

    /// @notice Owner: apply a scheduled reset whose delay has passed.
    function executeFeedReset(bytes32 feedId) external;

    /// @notice One byte per feed: the ring position of its latest entry. A transmitter appends
    ///         these bytes, in report order, after transmit's ABI-encoded arguments; a wrong or
    ///         missing hint only costs gas (the contract checks each hint, and scans otherwise).
    function ringHints(bytes32[] calldata feedIds) external view returns (bytes memory);

    /// @notice When the scheduled reset of `feedId` becomes applicable; 0 if none is scheduled.
    function feedResetEta(bytes32 feedId) external view returns (uint64);
}
