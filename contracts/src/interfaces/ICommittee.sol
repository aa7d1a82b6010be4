// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ICommittee
/// @notice The oracle committee, epoch by epoch. Each epoch has one FROST group key that
///         signs every report of that epoch, a threshold t and n members. The owner starts a
///         new epoch (after the members ran a DKG); the previous epoch's key keeps verifying
///         for `gracePeriod` seconds so that reports signed just before the rotation still land.
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
    /// @notice The grace period for outgoing epochs changed.
    event GracePeriodSet(uint64 gracePeriod);

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

    /// @notice Start epoch `currentEpoch() + 1` with group key (px, parity) and `members`.
    function startEpoch(uint256 px, uint8 parity, uint16 threshold, Member[] calldata members)
        external
        returns (uint64 epoch);

    /// @notice Seconds an outgoing epoch stays valid after the next one starts.
    function setGracePeriod(uint64 gracePeriod) external;

    function gracePeriod() external view returns (uint64);

    function currentEpoch() external view returns (uint64);

    function epochKey(uint64 epoch) external view returns (EpochKey memory);

    /// @notice The group key of `epoch` as it was registered.
    function groupKey(uint64 epoch) external view returns (uint256 px, uint8 parity);

    function members(uint64 epoch) external view returns (Member[] memory);
}
