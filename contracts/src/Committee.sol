// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "./Owned.sol";
import {ICommittee} from "./interfaces/ICommittee.sol";
import {LibSchnorr} from "./libraries/LibSchnorr.sol";

/// @notice Epochs of the oracle committee. Kept in the oracle contract itself so transmit()
///         reads the epoch's key hash and validity from one local slot.
abstract contract Committee is ICommittee, Owned {
    uint256 internal constant MAX_MEMBERS = 255;
    /// @notice Longest grace period: an outgoing key (which may leak once its members move on)
    ///         keeps signing for at most a day after the next epoch starts.
    uint64 public constant MAX_GRACE_PERIOD = 1 days;
    /// @notice Longest change delay the deployer may choose.
    uint64 public constant MAX_CHANGE_DELAY = 30 days;

    /// @inheritdoc ICommittee
    /// @dev Immutable: an owner who could shorten it could skip it.
    uint64 public immutable changeDelay;

    /// @dev An EpochKey packed into the one word transmit() reads:
    ///      bits 0..159 keyHash, 160..223 validUntil, 224..239 threshold, 240..255 size.
    ///      Zero for an epoch that never started.
    mapping(uint64 epoch => uint256) internal _epochWords;

    struct GroupKey {
        uint256 px;
        uint8 parity;
    }

    uint64 private _currentEpoch;
    uint64 private _gracePeriod;
    mapping(uint64 epoch => GroupKey) private _groupKeys;
    mapping(uint64 epoch => Member[]) private _members;

    // The pending committee proposal (epoch 0: none). Its members live in _members[epoch].
    uint64 private _pendingEpoch;
    uint64 private _pendingProposal;
    uint64 private _proposalCount;
    uint16 private _pendingThreshold;
    mapping(uint64 proposal => mapping(uint16 index => GroupKey)) private _keyProposals;
    mapping(uint64 proposal => mapping(bytes20 keyHash => uint256)) private _keyProposalCounts;

    /// @dev A key installation from outside the DKG waiting out the change delay (epoch 0: none).
    ///      Its members are stored in _members[epoch], unreadable through members() until it starts.
    struct ScheduledStart {
        uint64 epoch;
        uint64 eta;
        uint16 threshold;
        uint8 parity;
        uint256 px;
    }

    ScheduledStart private _scheduledStart;
    uint64 private _scheduledGrace;
    uint64 private _scheduledGraceEta; // 0: no grace period change scheduled

    constructor(address initialOwner, uint64 initialGracePeriod, uint64 changeDelay_) Owned(initialOwner) {
        if (initialGracePeriod > MAX_GRACE_PERIOD) {
            revert GracePeriodTooLong(initialGracePeriod, MAX_GRACE_PERIOD);
        }
        if (changeDelay_ > MAX_CHANGE_DELAY) revert ChangeDelayTooLong(changeDelay_, MAX_CHANGE_DELAY);
        changeDelay = changeDelay_;
        _gracePeriod = initialGracePeriod;
        emit GracePeriodSet(initialGracePeriod);
    }

    /// @inheritdoc ICommittee
    /// @dev Immediate only while no epoch exists: there are no members, reports or consumers
    ///      yet to protect, and the deployment needs a first key to be usable at all.
    function startEpoch(uint256 px, uint8 parity, uint16 threshold, Member[] calldata newMembers)
        external
        onlyOwner
        returns (uint64 epoch)
    {
        if (_currentEpoch != 0) revert FirstEpochOnly(_currentEpoch);
        _checkGroupKey(px, parity);
        epoch = 1;
        _storeMembers(epoch, threshold, newMembers);
        _pendingEpoch = 0;
        _activate(epoch, px, parity, threshold, uint16(newMembers.length));
    }

    /// @inheritdoc ICommittee
    /// @dev Installing a key without the DKG hands the feeds to whoever holds that key: the
    ///      delay gives members and consumers `changeDelay` seconds to see it coming.
    function scheduleEpochStart(uint256 px, uint8 parity, uint16 threshold, Member[] calldata newMembers)
        external
        onlyOwner
        returns (uint64 epoch, uint64 eta)
    {
        _checkGroupKey(px, parity);
        epoch = _currentEpoch + 1;
        _storeMembers(epoch, threshold, newMembers);
        _pendingEpoch = 0; // a scheduled start overtakes any pending proposal
        eta = _eta();
        _scheduledStart =
            ScheduledStart({epoch: epoch, eta: eta, threshold: threshold, parity: parity, px: px});
        emit EpochStartScheduled(epoch, px, parity, threshold, uint16(newMembers.length), eta);
    }

    /// @inheritdoc ICommittee
    function executeEpochStart() external onlyOwner returns (uint64 epoch) {
        ScheduledStart memory s = _scheduledStart;
        if (s.epoch == 0) revert NothingScheduled();
        _requireReady(s.eta);
        delete _scheduledStart;
        epoch = s.epoch;
        _activate(epoch, s.px, s.parity, s.threshold, uint16(_members[epoch].length));
    }

    /// @inheritdoc ICommittee
    function cancelEpochStart() external onlyOwner {
        if (_scheduledStart.epoch == 0) revert NothingScheduled();
        _cancelScheduledStart();
    }

    /// @inheritdoc ICommittee
    function scheduledEpochStart()
        external
        view
        returns (
            uint64 epoch,
            uint256 px,
            uint8 parity,
            uint16 threshold,
            uint64 eta,
            Member[] memory scheduledMembers
        )
    {
        ScheduledStart memory s = _scheduledStart;
        if (s.epoch != 0) return (s.epoch, s.px, s.parity, s.threshold, s.eta, _members[s.epoch]);
    }

    function _cancelScheduledStart() private {
        uint64 epoch = _scheduledStart.epoch;
        delete _scheduledStart;
        emit EpochStartCancelled(epoch);
    }

    function _checkGroupKey(uint256 px, uint8 parity) private pure {
        if (px == 0 || px >= LibSchnorr.N || parity > 1) revert InvalidGroupKey(px, parity);
    }

    /// @dev When a change scheduled now becomes applicable.
    function _eta() internal view returns (uint64) {
        return uint64(block.timestamp) + changeDelay;
    }

    /// @dev Reverts unless a change with this eta is scheduled (eta ≠ 0) and due.
    function _requireReady(uint64 eta) internal view {
        if (eta == 0) revert NothingScheduled();
        if (block.timestamp < eta) revert ChangeNotReady(eta);
    }

    /// @inheritdoc ICommittee
    function proposeCommittee(uint16 threshold, Member[] calldata newMembers)
        external
        onlyOwner
        returns (uint64 epoch, uint64 proposal)
    {
        epoch = _currentEpoch + 1;
        // A proposal replaces a scheduled start: both would store their members in epoch's slot.
        if (_scheduledStart.epoch != 0) _cancelScheduledStart();
        // The members are stored where the epoch will keep them; members(epoch) stays
        // unreadable until the epoch word exists, i.e. until activation.
        _storeMembers(epoch, threshold, newMembers);
        proposal = ++_proposalCount;
        _pendingEpoch = epoch;
        _pendingProposal = proposal;
        _pendingThreshold = threshold;
        emit CommitteeProposed(epoch, proposal, threshold, uint16(newMembers.length));
    }

    /// @inheritdoc ICommittee
    function proposeGroupKey(uint64 epoch, uint256 px, uint8 parity) external {
        uint64 pending = _pendingEpoch;
        if (pending == 0) revert NoPendingCommittee();
        if (epoch != pending) revert WrongPendingEpoch(pending, epoch);
        _checkGroupKey(px, parity);
        Member[] storage ms = _members[pending];
        uint256 n = ms.length;
        uint16 index = type(uint16).max;
        for (uint256 i; i < n; ++i) {
            if (ms[i].operator == msg.sender) {
                index = uint16(i);
                break;
            }
        }
        if (index == type(uint16).max) revert NotProposedMember(msg.sender);
        uint64 proposal = _pendingProposal;
        GroupKey storage mine = _keyProposals[proposal][index];
        if (mine.px != 0) revert AlreadyProposedKey(index);
        mine.px = px;
        mine.parity = parity;
        ++_keyProposalCounts[proposal][keyHash(px, parity)];
        emit GroupKeyProposed(pending, proposal, index, px, parity);
    }

    /// @inheritdoc ICommittee
    function activateEpoch(uint256 px, uint8 parity) external onlyOwner returns (uint64 epoch) {
        epoch = _pendingEpoch;
        if (epoch == 0) revert NoPendingCommittee();
        uint256 count = _keyProposalCounts[_pendingProposal][keyHash(px, parity)];
        uint16 threshold = _pendingThreshold;
        // t matching proposals: at least t members hold shares of this key, enough to sign.
        if (count < threshold) revert NotEnoughKeyProposals(count, threshold);
        _pendingEpoch = 0;
        _activate(epoch, px, parity, threshold, uint16(_members[epoch].length));
    }

    /// @inheritdoc ICommittee
    function pendingCommittee()
        external
        view
        returns (uint64 epoch, uint64 proposal, uint16 threshold, Member[] memory pendingMembers)
    {
        epoch = _pendingEpoch;
        if (epoch != 0) {
            proposal = _pendingProposal;
            threshold = _pendingThreshold;
            pendingMembers = _members[epoch];
        }
    }

    /// @inheritdoc ICommittee
    function groupKeyProposals(uint256 px, uint8 parity) external view returns (uint256) {
        if (_pendingEpoch == 0) return 0;
        return _keyProposalCounts[_pendingProposal][keyHash(px, parity)];
    }

    /// @inheritdoc ICommittee
    function proposedGroupKey(uint16 index) external view returns (uint256 px, uint8 parity) {
        if (_pendingEpoch == 0) return (0, 0);
        GroupKey storage k = _keyProposals[_pendingProposal][index];
        return (k.px, k.parity);
    }

    /// @dev Validate a committee and store it as `epoch`'s members (replacing a proposal's).
    function _storeMembers(uint64 epoch, uint16 threshold, Member[] calldata newMembers) private {
        uint256 n = newMembers.length;
        if (threshold == 0 || n == 0 || threshold > n || n > MAX_MEMBERS) {
            revert InvalidThreshold(threshold, n);
        }
        Member[] storage stored = _members[epoch];
        delete _members[epoch];
        for (uint256 i; i < n; ++i) {
            Member calldata m = newMembers[i];
            if (m.operator == address(0) || m.identityKey.length != 33) revert InvalidMember(i);
            for (uint256 j; j < i; ++j) {
                if (newMembers[j].operator == m.operator) revert DuplicateMember(m.operator);
            }
            stored.push(m);
        }
    }

    /// @dev Make `epoch` current with its key; the outgoing epoch gets its grace period.
    function _activate(uint64 epoch, uint256 px, uint8 parity, uint16 threshold, uint16 n) private {
        uint64 previous = _currentEpoch;
        uint64 previousValidUntil;
        if (previous != 0) {
            previousValidUntil = uint64(block.timestamp) + _gracePeriod;
            EpochKey memory old = _unpackEpoch(_epochWords[previous]);
            old.validUntil = previousValidUntil;
            _epochWords[previous] = _packEpoch(old);
        }
        _epochWords[epoch] = _packEpoch(
            EpochKey({
                keyHash: keyHash(px, parity), validUntil: type(uint64).max, threshold: threshold, size: n
            })
        );
        _groupKeys[epoch] = GroupKey(px, parity);
        _currentEpoch = epoch;
        emit EpochStarted(epoch, px, parity, threshold, n, previous, previousValidUntil);
    }

    /// @inheritdoc ICommittee
    /// @dev Delayed: a longer grace period keeps an outgoing (possibly leaked) key signing longer.
    function scheduleGracePeriod(uint64 newGracePeriod) external onlyOwner returns (uint64 eta) {
        if (newGracePeriod > MAX_GRACE_PERIOD) revert GracePeriodTooLong(newGracePeriod, MAX_GRACE_PERIOD);
        eta = _eta();
        _scheduledGrace = newGracePeriod;
        _scheduledGraceEta = eta;
        emit GracePeriodScheduled(newGracePeriod, eta);
    }

    /// @inheritdoc ICommittee
    function executeGracePeriod() external onlyOwner {
        _requireReady(_scheduledGraceEta);
        uint64 g = _scheduledGrace;
        _scheduledGraceEta = 0;
        _gracePeriod = g;
        emit GracePeriodSet(g);
    }

    /// @inheritdoc ICommittee
    function cancelGracePeriod() external onlyOwner {
        if (_scheduledGraceEta == 0) revert NothingScheduled();
        _scheduledGraceEta = 0;
        emit GracePeriodCancelled(_scheduledGrace);
    }

    /// @inheritdoc ICommittee
    function scheduledGracePeriod() external view returns (uint64, uint64 eta) {
        eta = _scheduledGraceEta;
        return (eta == 0 ? 0 : _scheduledGrace, eta);
    }

    /// @inheritdoc ICommittee
    function gracePeriod() external view returns (uint64) {
        return _gracePeriod;
    }

    /// @inheritdoc ICommittee
    function currentEpoch() external view returns (uint64) {
        return _currentEpoch;
    }

    /// @inheritdoc ICommittee
    function epochKey(uint64 epoch) external view returns (EpochKey memory) {
        return _unpackEpoch(_epochWords[epoch]);
    }

    /// @inheritdoc ICommittee
    function groupKey(uint64 epoch) external view returns (uint256 px, uint8 parity) {
        if (_epochWords[epoch] == 0) revert UnknownEpoch(epoch);
        GroupKey storage k = _groupKeys[epoch];
        return (k.px, k.parity);
    }

    /// @inheritdoc ICommittee
    function members(uint64 epoch) external view returns (Member[] memory) {
        if (_epochWords[epoch] == 0) revert UnknownEpoch(epoch);
        return _members[epoch];
    }

    /// @dev 160 bits of keccak: forging a key for a stored hash is a second-preimage search
    ///      (~2^160 work), the same security an Ethereum address gives its key.
    function keyHash(uint256 px, uint8 parity) internal pure returns (bytes20 h) {
        assembly ("memory-safe") {
            mstore(0x00, px)
            mstore8(0x20, parity) // px ‖ parity: 33 bytes in scratch space
            h := and(keccak256(0x00, 0x21), not(0xffffffffffffffffffffffff))
        }
    }

    /// @dev Reverts unless (px, parity) is `epoch`'s key and the epoch is still valid.
    ///      One SLOAD and one 33-byte keccak: the cheapest way to authenticate the key.
    function _checkEpochKey(uint64 epoch, uint256 px, uint8 parity) internal view {
        uint256 word = _epochWords[epoch];
        if (word == 0) revert UnknownEpoch(epoch);
        uint64 validUntil = uint64(word >> 160);
        if (block.timestamp > validUntil) revert EpochExpired(epoch, validUntil);
        if (uint160(word) != uint160(keyHash(px, parity))) revert WrongGroupKey(epoch);
    }

    function _packEpoch(EpochKey memory k) private pure returns (uint256) {
        return uint256(uint160(k.keyHash)) | (uint256(k.validUntil) << 160) | (uint256(k.threshold) << 224)
            | (uint256(k.size) << 240);
    }

    function _unpackEpoch(uint256 word) private pure returns (EpochKey memory k) {
        k.keyHash = bytes20(uint160(word));
        k.validUntil = uint64(word >> 160);
        k.threshold = uint16(word >> 224);
        k.size = uint16(word >> 240);
    }
}
