// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ICommittee
/// @notice The oracle committee, epoch by epoch. Each epoch has one FROST group key that
///         signs every report of that epoch, a threshold t and n members. The previous epoch's
///         key keeps verifying for `gracePeriod` seconds after a rotation so that reports
///         signed just before it still land.
///
///         Rotation without a trusted dealer: the owner proposes the next committee
///         (`proposeCommittee`); its members see the proposal, run the DKG among themselves
///         over p2p and each proposes the resulting group key from its operator address
///         (`proposeGroupKey`); once at least t members proposed the same key the owner
///         activates it (`activateEpoch`).
///
///         The owner's other powers wait out `changeDelay()` seconds, announced by an event and
///         readable on-chain while pending, so members and consumers can react first:
///         installing a key without the DKG (`scheduleEpochStart`, then `executeEpochStart`)
///         and changing the grace period (`scheduleGracePeriod`, then `executeGracePeriod`;
///         at most MAX_GRACE_PERIOD). Only the very first epoch starts at once (`startEpoch`).
///         See docs/contracts.md, "The owner's powers".
interface ICommittee {
    /// @notice A committee member as peers and transmitters find it.
    /// @param operator    the address that sends the member's transactions
    /// @param identityKey the member's p2p identity public key (33-byte compressed secp256k1)
    /// @param p2pUrl      where peers reach the member
    struct Member {
        address operator;
        bytes identityKey;
        string p2pUrl;
    }

    /// @notice The public part of an epoch that transmit() reads: one storage slot.
    /// @param keyHash    bytes20(keccak256(abi.encodePacked(px, parity))) of the group key
    /// @param validUntil last timestamp at which the epoch's signatures are accepted
    ///                   (type(uint64).max while it is the current epoch)
    /// @param threshold  t: signers needed for a signature
    /// @param size       n: committee members
    struct EpochKey {
        bytes20 keyHash;
        uint64 validUntil;
        uint16 threshold;
        uint16 size;
    }

    /// @notice A new epoch started; `previous` stays valid until `previousValidUntil`.
    event EpochStarted(
        uint64 indexed epoch,
        uint256 groupKeyX,
        uint8 groupKeyParity,
        uint16 threshold,
        uint16 size,
        uint64 previous,
        uint64 previousValidUntil
    );
    /// @notice The owner proposed the committee of `epoch`; its members now run the DKG.
    ///         `proposal` numbers proposals: a later one replaces an earlier pending one.
    event CommitteeProposed(uint64 indexed epoch, uint64 indexed proposal, uint16 threshold, uint16 size);
    /// @notice Member `index` of pending proposal `proposal` proposed a group key.
    event GroupKeyProposed(
        uint64 indexed epoch, uint64 indexed proposal, uint16 index, uint256 groupKeyX, uint8 groupKeyParity
    );
    /// @notice The grace period for outgoing epochs changed.
    event GracePeriodSet(uint64 gracePeriod);
    /// @notice The owner scheduled a grace period change, applicable from `eta` on.
    event GracePeriodScheduled(uint64 gracePeriod, uint64 eta);
    /// @notice A scheduled grace period change was cancelled.
    event GracePeriodCancelled(uint64 gracePeriod);
    /// @notice The owner scheduled epoch `epoch` with a key from outside the DKG, applicable
    ///         from `eta` on; its members are readable through `scheduledEpochStart()`.
    event EpochStartScheduled(
        uint64 indexed epoch,
        uint256 groupKeyX,
        uint8 groupKeyParity,
        uint16 threshold,
        uint16 size,
        uint64 eta
    );
    /// @notice A scheduled epoch start was cancelled (by the owner, or by a committee proposal).
    event EpochStartCancelled(uint64 indexed epoch);

    /// @notice The group key's x-coordinate is 0 or ≥ N: unusable with ecrecover. Re-run the DKG.
    error InvalidGroupKey(uint256 px, uint8 parity);
    /// @notice Threshold or member count out of range (1 ≤ t ≤ n ≤ 255).
    error InvalidThreshold(uint256 threshold, uint256 size);
    /// @notice A member entry is unusable (zero operator or identity key not 33 bytes).
    error InvalidMember(uint256 index);
    /// @notice The same operator appears twice.
    error DuplicateMember(address operator);
    /// @notice No such epoch was ever started.
    error UnknownEpoch(uint64 epoch);
    /// @notice The epoch existed but its grace period is over.
    error EpochExpired(uint64 epoch, uint64 validUntil);
    /// @notice The group key presented does not match the epoch's key.
    error WrongGroupKey(uint64 epoch);
    /// @notice There is no pending committee proposal (none made, or it was activated or
    ///         overtaken by a direct `startEpoch`).
    error NoPendingCommittee();
    /// @notice The caller is not an operator of the pending committee.
    error NotProposedMember(address caller);
    /// @notice The proposal names another epoch than the pending one.
    error WrongPendingEpoch(uint64 expected, uint64 given);
    /// @notice This member already proposed a group key for the pending proposal.
    error AlreadyProposedKey(uint16 index);
    /// @notice Fewer than t members proposed this key.
    error NotEnoughKeyProposals(uint256 proposals, uint256 threshold);
    /// @notice `startEpoch` installs only the first epoch; later keys from outside the DKG go
    ///         through `scheduleEpochStart`.
    error FirstEpochOnly(uint64 currentEpoch);
    /// @notice Nothing of this kind is scheduled.
    error NothingScheduled();
    /// @notice The scheduled change applies from `eta` on, not yet.
    error ChangeNotReady(uint64 eta);
    /// @notice The grace period exceeds MAX_GRACE_PERIOD.
    error GracePeriodTooLong(uint256 gracePeriod, uint256 max);
    /// @notice The change delay exceeds MAX_CHANGE_DELAY.
    error ChangeDelayTooLong(uint256 delay, uint256 max);

    /// @notice Start the first epoch with group key (px, parity) and `members`, at once.
    ///         Reverts FirstEpochOnly once an epoch exists.
    function startEpoch(uint256 px, uint8 parity, uint16 threshold, Member[] calldata members)
        external
        returns (uint64 epoch);

    /// @notice Schedule epoch `currentEpoch() + 1` with a key from outside the DKG (validated
    ///         like `startEpoch`), applicable after `changeDelay()`. Replaces a scheduled start
    ///         and cancels a pending committee proposal; a later proposal cancels it in turn.
    function scheduleEpochStart(uint256 px, uint8 parity, uint16 threshold, Member[] calldata members)
        external
        returns (uint64 epoch, uint64 eta);

    /// @notice Start the scheduled epoch once its delay has passed.
    function executeEpochStart() external returns (uint64 epoch);

    /// @notice Cancel the scheduled epoch start.
    function cancelEpochStart() external;

    /// @notice The scheduled epoch start: epoch 0 when there is none.
    function scheduledEpochStart()
        external
        view
        returns (
            uint64 epoch,
            uint256 px,
            uint8 parity,
            uint16 threshold,
            uint64 eta,
            Member[] memory members
        );

    /// @notice Propose the committee of epoch `currentEpoch() + 1` (validated like
    ///         `startEpoch`'s). Replaces a pending proposal and its key proposals.
    function proposeCommittee(uint16 threshold, Member[] calldata members)
        external
        returns (uint64 epoch, uint64 proposal);

    /// @notice Called by a pending member's operator: the group key its DKG produced.
    ///         `epoch` must be the pending epoch (guards against a stale proposal).
    function proposeGroupKey(uint64 epoch, uint256 px, uint8 parity) external;

    /// @notice Start the pending epoch with (px, parity), which at least t members proposed.
    function activateEpoch(uint256 px, uint8 parity) external returns (uint64 epoch);

    /// @notice The pending proposal: epoch 0 when there is none.
    function pendingCommittee()
        external
        view
        returns (uint64 epoch, uint64 proposal, uint16 threshold, Member[] memory members);

    /// @notice How many members of the pending proposal proposed (px, parity).
    function groupKeyProposals(uint256 px, uint8 parity) external view returns (uint256);

    /// @notice The key member `index` proposed for the pending proposal (0, 0 if none yet).
    function proposedGroupKey(uint16 index) external view returns (uint256 px, uint8 parity);

    /// @notice Schedule a new grace period (≤ MAX_GRACE_PERIOD), applicable after `changeDelay()`.
    function scheduleGracePeriod(uint64 gracePeriod) external returns (uint64 eta);

    /// @notice Apply the scheduled grace period once its delay has passed.
    function executeGracePeriod() external;

    /// @notice Cancel the scheduled grace period change.
    function cancelGracePeriod() external;

    /// @notice The scheduled grace period and when it applies; eta 0 when none is scheduled.
    function scheduledGracePeriod() external view returns (uint64 gracePeriod, uint64 eta);

    /// @notice Seconds between scheduling an owner change and applying it (set at deployment).
    function changeDelay() external view returns (uint64);

    /// @notice Seconds an outgoing epoch stays valid after the next one starts.
    function gracePeriod() external view returns (uint64);

    /// @notice The epoch whose key signs reports now; 0 before the first epoch.
    function currentEpoch() external view returns (uint64);

    /// @notice `epoch`'s key hash, threshold, size and validity window (all zero if unknown).
    function epochKey(uint64 epoch) external view returns (EpochKey memory);

    /// @notice The group key of `epoch` as it was registered.
    function groupKey(uint64 epoch) external view returns (uint256 px, uint8 parity);

    /// @notice `epoch`'s members (signer and transmitter addresses, in index order); reverts
    ///         UnknownEpoch for an epoch never proposed or started.
    function members(uint64 epoch) external view returns (Member[] memory);
}
