// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "../src/Owned.sol";
import {ICommittee} from "../src/interfaces/ICommittee.sol";
import {Vm} from "./lib/Vm.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice Rotation without a trusted dealer: owner proposes a committee, its members propose
///         the group key their DKG produced, the owner activates a key t members agree on.
contract CommitteeRotationTest is OracleFixture {
    bytes32[] internal ids;
    uint256 internal nextSecret = 0xD1C6E11;
    uint256 internal nextPx;
    uint8 internal nextParity;

    function setUp() public {
        _deploy();
        ids = _register(2);
        Vm.Wallet memory w = vm.createWallet(nextSecret);
        require(w.publicKeyX < N, "fixture secret has px >= N");
        nextPx = w.publicKeyX;
        nextParity = uint8(w.publicKeyY & 1);
    }

    function _operator(uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + i)); // OracleFixture._members' operators
    }

    function _propose(uint16 t, uint256 n) internal returns (uint64 epoch, uint64 proposal) {
        vm.prank(owner);
        (epoch, proposal) = oracle.proposeCommittee(t, _members(n));
    }

    function _keyFrom(uint256 member, uint64 epoch, uint256 px, uint8 parity) internal {
        vm.prank(_operator(member));
        oracle.proposeGroupKey(epoch, px, parity);
    }

    function test_fullRotation_newKeySignsOldKeyInGrace() public {
        (uint64 epoch, uint64 proposal) = _propose(3, 5);
        vm.assertEq(epoch, 2, "next epoch");
        vm.assertEq(proposal, 1, "first proposal");
        (uint64 pe, uint64 pp, uint16 pt, ICommittee.Member[] memory pm) = oracle.pendingCommittee();
        vm.assertEq(pe, 2, "pending epoch");
        vm.assertEq(pp, 1, "pending proposal");
        vm.assertEq(pt, 3, "pending t");
        vm.assertEq(pm.length, 5, "pending n");
        vm.assertEq(pm[4].p2pUrl, "http://127.0.0.1:9004", "pending member url");
        // Not readable as an epoch before activation.
        vm.expectRevert(abi.encodeWithSelector(ICommittee.UnknownEpoch.selector, uint64(2)));
        oracle.members(2);

        _keyFrom(0, 2, nextPx, nextParity);
        _keyFrom(3, 2, nextPx, nextParity);
        vm.assertEq(oracle.groupKeyProposals(nextPx, nextParity), 2, "two proposals");
        (uint256 px, uint8 parity) = oracle.proposedGroupKey(3);
        vm.assertEq(px, nextPx, "member 3's key");
        vm.assertEq(parity, nextParity, "member 3's parity");
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.NotEnoughKeyProposals.selector, uint256(2), uint256(3))
        );
        oracle.activateEpoch(nextPx, nextParity);

        _keyFrom(4, 2, nextPx, nextParity);
        vm.prank(owner);
        vm.assertEq(oracle.activateEpoch(nextPx, nextParity), 2, "activated epoch");
        vm.assertEq(oracle.currentEpoch(), 2, "current epoch");
        ICommittee.EpochKey memory k = oracle.epochKey(2);
        vm.assertEq(k.threshold, 3, "t");
        vm.assertEq(k.size, 5, "n");
        vm.assertEq(oracle.members(2).length, 5, "members stored");
        (pe,,,) = oracle.pendingCommittee();
        vm.assertEq(pe, 0, "nothing pending after activation");

        // The new key signs; the old one still does during its grace period.
        uint256 oldSecret = groupSecret;
        groupSecret = nextSecret;
        _transmit(2, 1, _one(ids[0], 7, uint64(block.timestamp)));
        bytes memory report = _encode(1, 2, _one(ids[1], 8, uint64(block.timestamp)));
        oracle.transmit(report, _signDigest(oldSecret, oracle.reportDigest(1, report)));
        (, int128 value,) = oracle.latestRound(ids[1]);
        vm.assertEq(int256(value), 8, "old epoch's report landed in grace");
    }

    function test_proposeGroupKeyErrors() public {
        vm.expectRevert(ICommittee.NoPendingCommittee.selector);
        oracle.proposeGroupKey(2, nextPx, nextParity);

        _propose(3, 4);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.NotProposedMember.selector, address(this)));
        oracle.proposeGroupKey(2, nextPx, nextParity);
        vm.prank(_operator(0));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.WrongPendingEpoch.selector, uint64(2), uint64(3)));
        oracle.proposeGroupKey(3, nextPx, nextParity);
        vm.prank(_operator(0));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidGroupKey.selector, N, uint8(0)));
        oracle.proposeGroupKey(2, N, 0);
        vm.prank(_operator(0));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidGroupKey.selector, nextPx, uint8(2)));
        oracle.proposeGroupKey(2, nextPx, 2);

        _keyFrom(1, 2, nextPx, nextParity);
        vm.prank(_operator(1));
        vm.expectRevert(abi.encodeWithSelector(ICommittee.AlreadyProposedKey.selector, uint16(1)));
        oracle.proposeGroupKey(2, nextPx ^ 1, nextParity); // no changing one's vote
        vm.assertEq(oracle.groupKeyProposals(nextPx, nextParity), 1, "one proposal counted");
    }

    function test_disagreeingKeysDoNotAddUp() public {
        _propose(3, 4);
        _keyFrom(0, 2, nextPx, nextParity);
        _keyFrom(1, 2, nextPx, nextParity);
        _keyFrom(2, 2, groupPx, groupParity); // a member whose DKG ended elsewhere
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.NotEnoughKeyProposals.selector, uint256(2), uint256(3))
        );
        oracle.activateEpoch(nextPx, nextParity);
        vm.assertEq(oracle.currentEpoch(), 1, "still epoch 1");
    }

    function test_reproposalResetsKeyProposals() public {
        _propose(3, 4);
        _keyFrom(0, 2, nextPx, nextParity);
        _keyFrom(1, 2, nextPx, nextParity);
        _keyFrom(2, 2, nextPx, nextParity);
        (uint64 epoch, uint64 proposal) = _propose(2, 3); // owner changes its mind
        vm.assertEq(epoch, 2, "same epoch");
        vm.assertEq(proposal, 2, "new proposal");
        vm.assertEq(oracle.groupKeyProposals(nextPx, nextParity), 0, "old proposals do not count");
        (uint256 px,) = oracle.proposedGroupKey(0);
        vm.assertEq(px, 0, "member 0 has not proposed for the new proposal");
        (,,, ICommittee.Member[] memory pm) = oracle.pendingCommittee();
        vm.assertEq(pm.length, 3, "replaced member list");
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(ICommittee.NotEnoughKeyProposals.selector, uint256(0), uint256(2))
        );
        oracle.activateEpoch(nextPx, nextParity);
        _keyFrom(0, 2, nextPx, nextParity);
        _keyFrom(2, 2, nextPx, nextParity);
        vm.prank(owner);
        oracle.activateEpoch(nextPx, nextParity);
        vm.assertEq(oracle.members(2).length, 3, "activated with the new list");
    }

    function test_directStartOvertakesProposal() public {
        _propose(3, 4);
        _keyFrom(0, 2, nextPx, nextParity);
        _startEpoch(0xFEED5EC2E7, 2, 2); // owner rotates directly
        (uint64 pe,,,) = oracle.pendingCommittee();
        vm.assertEq(pe, 0, "proposal dropped");
        vm.assertEq(oracle.members(2).length, 2, "direct start's members");
        vm.prank(_operator(1));
        vm.expectRevert(ICommittee.NoPendingCommittee.selector);
        oracle.proposeGroupKey(2, nextPx, nextParity);
        vm.prank(owner);
        vm.expectRevert(ICommittee.NoPendingCommittee.selector);
        oracle.activateEpoch(nextPx, nextParity);
    }

    function test_onlyOwnerProposesAndActivates() public {
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.proposeCommittee(3, _members(4));
        _propose(1, 1);
        _keyFrom(0, 2, nextPx, nextParity);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(this)));
        oracle.activateEpoch(nextPx, nextParity);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(ICommittee.InvalidThreshold.selector, uint256(5), uint256(4)));
        oracle.proposeCommittee(5, _members(4));
        ICommittee.Member[] memory m = _members(4);
        m[3].operator = m[0].operator;
        vm.expectRevert(abi.encodeWithSelector(ICommittee.DuplicateMember.selector, m[0].operator));
        oracle.proposeCommittee(3, m);
        vm.stopPrank();
        (uint64 pe, uint64 pp,,) = oracle.pendingCommittee();
        vm.assertEq(pe, 2, "failed proposals leave the pending one");
        vm.assertEq(pp, 1, "proposal number unchanged");
    }

    /// Any subset of at least t distinct members proposing the same key lets the owner
    /// activate; fewer never does.
    function testFuzz_activationNeedsThresholdProposals(uint8 tSeed, uint8 nSeed, uint32 mask) public {
        uint256 n = bound(nSeed, 1, 24);
        uint16 t = uint16(bound(tSeed, 1, n));
        _propose(t, n);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            if ((mask >> i) & 1 != 0) {
                _keyFrom(i, 2, nextPx, nextParity);
                ++count;
            }
        }
        vm.prank(owner);
        if (count < t) {
            vm.expectRevert(
                abi.encodeWithSelector(ICommittee.NotEnoughKeyProposals.selector, count, uint256(t))
            );
            oracle.activateEpoch(nextPx, nextParity);
            vm.assertEq(oracle.currentEpoch(), 1, "not activated");
        } else {
            oracle.activateEpoch(nextPx, nextParity);
            vm.assertEq(oracle.currentEpoch(), 2, "activated");
        }
    }
}
