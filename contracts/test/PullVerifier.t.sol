// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {IMiraPullVerifier} from "../src/interfaces/IMiraPullVerifier.sol";
import {MiraPullVerifier} from "../src/pull/MiraPullVerifier.sol";
import {PullFixture} from "./utils/PullFixture.sol";

contract PullVerifierTest is PullFixture {
    uint256 internal constant AGE = 60;

    function setUp() public {
        _deployPull();
    }

    function _fresh(uint256 n) internal view returns (Tree memory) {
        return _tree(n, _nowRound(), uint64(block.timestamp));
    }

    function _assertValues(IMiraPullVerifier.Value[] memory got, Tree memory t, uint256[] memory idx)
        internal
        pure
    {
        vm.assertEq(got.length, idx.length, "count");
        for (uint256 i; i < idx.length; ++i) {
            Update memory u = t.leaves[idx[i]];
            vm.assertEq(got[i].feedId, u.feedId, "feedId");
            vm.assertEq(int256(got[i].value), int256(u.value), "value");
            vm.assertEq(uint256(got[i].observedAt), uint256(u.observedAt), "observedAt");
            vm.assertEq(got[i].modelCommitment, u.modelCommitment, "commitment");
        }
    }

    function test_singleLeafTree() public {
        Tree memory t = _fresh(1);
        uint256[] memory idx = _idx1(0);
        _assertValues(verifier.verify(_payload(1, t, idx), AGE), t, idx);
    }

    function test_subsetsOfOneRoot() public {
        Tree memory t = _fresh(37);
        uint256[] memory idx = new uint256[](5);
        (idx[0], idx[1], idx[2], idx[3], idx[4]) = (0, 1, 17, 18, 36);
        _assertValues(verifier.verify(_payload(1, t, idx), AGE), t, idx);
        _assertValues(verifier.verify(_payload(1, t, _range(0, 37)), AGE), t, _range(0, 37));
        _assertValues(verifier.verify(_payload(1, t, _idx1(36)), AGE), t, _idx1(36));
    }

    function test_valueObservedAheadOfTheBlockIsServedAsNow() public {
        Tree memory t = _tree(4, _nowRound(), uint64(block.timestamp + 30));
        IMiraPullVerifier.Value[] memory v = verifier.verify(_payload(1, t, _idx1(2)), AGE);
        vm.assertEq(uint256(v[0].observedAt), block.timestamp, "capped at the block's time");
    }

    function test_secondPullOfARootInTheSameTransactionSkipsTheSignature() public {
        Tree memory t = _fresh(64);
        uint256[] memory idx = _idx1(5);
        IMiraOracle.Signature memory sig = _signRoot(1, t);
        bytes memory a =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, idx), sig);
        bytes memory b =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(40)), sig);
        uint256 g0 = gasleft();
        verifier.verify(a, AGE);
        uint256 first = g0 - gasleft();
        g0 = gasleft();
        verifier.verify(b, AGE);
        uint256 second = g0 - gasleft();
        // The signature check (an external call to the committee, a cold slot, ecrecover) is
        // well over 5,000 gas: the second pull must not pay it.
        vm.assertLe(second + 5000, first, "second pull of the same root paid for its signature again");
    }

    function test_storedRootServesLaterTransactionsWithoutItsSignature() public {
        Tree memory t = _fresh(32);
        IMiraOracle.Signature memory sig = _signRoot(1, t);
        bytes memory a =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(3)), sig);
        bytes memory b = _encodePayload(
            uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _range(20, 4)), sig
        );
        vm.expectRevert(); // RootNotStored(digest)
        verifier.verifyStored(a, AGE);

        vm.expectEmit(address(verifier));
        emit IMiraPullVerifier.RootStored(1, t.round, t.nodes[0], 32);
        verifier.verifyAndStore(a, AGE);
        vm.recordLogs();
        verifier.verifyAndStore(b, AGE); // recorded once
        vm.assertEq(vm.getRecordedLogs().length, 0, "stored twice");

        // Later (the new epoch waits out DELAY = 2 days, then epoch 1 its GRACE), with epoch 1
        // retired: the stored root still serves while fresh enough for the caller.
        uint64 validUntil;
        _startEpoch(0xC0FFEE, 3, 4);
        validUntil = oracle.epochKey(1).validUntil;
        vm.warp(validUntil + 1);
        _assertValues(verifier.verifyStored(b, 3 days), t, _range(20, 4));
        // (verify would still accept b here: this test is one transaction, and b's signature was
        // checked in it; test_retiredEpoch shows verify refusing a retired epoch's root)
        // ... and the caller's bound still applies
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.StaleRoot.selector, t.round, AGE));
        verifier.verifyStored(b, AGE);
        // tampered signature bytes: not what was recorded
        bytes memory c = _copy(b);
        c[160] = bytes1(uint8(c[160]) ^ 1);
        (bool ok, bytes memory ret) =
            address(verifier).call(abi.encodeCall(verifier.verifyStored, (c, 3 days)));
        vm.assertFalse(ok, "tampered signature accepted from the store");
        vm.assertEq(bytes32(bytes4(bytes32(ret))), bytes32(IMiraPullVerifier.RootNotStored.selector), "error");
    }

    // ---------------------------------------------------------------- errors, one by one

    function test_malformedPayloads() public {
        Tree memory t = _fresh(8);
        bytes memory p = _payload(1, t, _range(2, 3));
        bytes memory shortP = new bytes(p.length - 1);
        for (uint256 i; i < shortP.length; ++i) {
            shortP[i] = p[i];
        }
        _expectMalformed(shortP);
        _expectMalformed(abi.encodePacked(p, bytes1(0)));
        _expectMalformed(new bytes(0));
        _expectMalformed(new bytes(168));
        bytes memory noLeaves = _copy(p);
        noLeaves[165] = 0;
        noLeaves[166] = 0;
        _expectMalformed(noLeaves);
        // 3 leaves, m proof nodes: k + m − 1 flags; set an unused bit of the last flag byte
        uint256 m = uint8(p[168]);
        uint256 nflags = 3 + m - 1;
        if (nflags % 8 != 0) {
            bytes memory pad = _copy(p);
            uint256 lastByte = 169 + (nflags + 7) / 8 - 1;
            pad[lastByte] = bytes1(uint8(pad[lastByte]) | 1);
            _expectMalformed(pad);
        }
    }

    function test_wrongChain() public {
        Tree memory t = _fresh(8);
        bytes memory p = _payload(1, t, _idx1(3));
        vm.chainId(block.chainid + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPullVerifier.WrongChain.selector, block.chainid, block.chainid - 1)
        );
        verifier.verify(p, AGE);
    }

    function test_otherChainsRootIsRefusedEvenIfRelabelled() public {
        // Signed for chain id + 1, with the payload claiming this chain: the digest differs.
        // (The digest is written out here rather than read from rootDigest under vm.chainId: an
        // independent rendering of the signed message.)
        Tree memory t = _fresh(8);
        bytes32 d = keccak256(
            abi.encodePacked(
                "MIRA-PULL-v1",
                block.chainid + 1,
                address(verifier),
                uint64(1),
                t.round,
                t.nodes[0],
                uint32(8)
            )
        );
        IMiraOracle.Signature memory sig = _signDigest(groupSecret, d);
        bytes memory p =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(3)), sig);
        vm.expectRevert(IMiraPullVerifier.InvalidSignature.selector);
        verifier.verify(p, AGE);
    }

    function test_wrongVerifier() public {
        MiraPullVerifier other = new MiraPullVerifier(oracle, MAX_FUTURE);
        Tree memory t = _fresh(8);
        bytes memory p = _payload(1, t, _idx1(3)); // made for `verifier`
        vm.expectRevert(
            abi.encodeWithSelector(
                IMiraPullVerifier.WrongVerifier.selector, address(other), address(verifier)
            )
        );
        other.verify(p, AGE);
        // Signed for `verifier`, relabelled for `other`: the digest binds the contract.
        bytes memory relabelled = _encodePayload(
            uint64(block.chainid), address(other), 1, t, _multiproof(t, _idx1(3)), _signRoot(1, t)
        );
        vm.expectRevert(IMiraPullVerifier.InvalidSignature.selector);
        other.verify(relabelled, AGE);
    }

    function test_leafCountBelowLeaves() public {
        Tree memory t = _fresh(8);
        bytes memory p = _payload(1, t, _range(0, 4));
        p[44] = 0;
        p[45] = 0;
        p[46] = 0;
        p[47] = 0x03;
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.InvalidLeafCount.selector, 3, 4));
        verifier.verify(p, AGE);
    }

    function test_tamperedLeafValue() public {
        Tree memory t = _fresh(16);
        bytes memory p = _payload(1, t, _idx1(9));
        uint256 valueByte = 169 + 1 + 32 + 15; // flags: 4 proof nodes → 4 flags, 1 byte
        p[valueByte] = bytes1(uint8(p[valueByte]) ^ 1);
        vm.expectRevert(); // RootMismatch(computed, claimed): computed is not known here
        verifier.verify(p, AGE);
        (bool ok, bytes memory ret) = address(verifier).call(abi.encodeCall(verifier.verify, (p, AGE)));
        vm.assertFalse(ok, "tampered value accepted");
        vm.assertEq(bytes32(bytes4(bytes32(ret))), bytes32(IMiraPullVerifier.RootMismatch.selector), "error");
    }

    function test_proofForAnotherLeaf() public {
        Tree memory t = _fresh(16);
        Proof memory p9 = _multiproof(t, _idx1(9));
        Proof memory p4 = _multiproof(t, _idx1(4));
        p9.proof = p4.proof; // leaf 9 with leaf 4's path
        bytes memory p = _encodePayload(uint64(block.chainid), address(verifier), 1, t, p9, _signRoot(1, t));
        (bool ok, bytes memory ret) = address(verifier).call(abi.encodeCall(verifier.verify, (p, AGE)));
        vm.assertFalse(ok, "proof for another leaf accepted");
        vm.assertEq(bytes32(bytes4(bytes32(ret))), bytes32(IMiraPullVerifier.RootMismatch.selector), "error");
    }

    function test_inconsistentMultiproof() public {
        Tree memory t = _fresh(16);
        Proof memory p = _multiproof(t, _range(3, 2));
        // all flags true: the hashes run out of items before the proof nodes are used
        for (uint256 i; i < p.flags.length; ++i) {
            p.flags[i] = true;
        }
        bytes memory raw = _encodePayload(uint64(block.chainid), address(verifier), 1, t, p, _signRoot(1, t));
        vm.expectRevert(IMiraPullVerifier.InvalidMultiproof.selector);
        verifier.verify(raw, AGE);
        // all flags false: the proof runs out
        for (uint256 i; i < p.flags.length; ++i) {
            p.flags[i] = false;
        }
        raw = _encodePayload(uint64(block.chainid), address(verifier), 1, t, p, _signRoot(1, t));
        vm.expectRevert(IMiraPullVerifier.InvalidMultiproof.selector);
        verifier.verify(raw, AGE);
    }

    function test_swappedSiblingsKeepTheRootButAreRefused() public {
        Tree memory t = _fresh(8);
        Proof memory p = _multiproof(t, _range(0, 2)); // leaves 0 and 1 are siblings
        (p.leaves[0], p.leaves[1]) = (p.leaves[1], p.leaves[0]);
        bytes memory raw = _encodePayload(uint64(block.chainid), address(verifier), 1, t, p, _signRoot(1, t));
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.LeavesNotSorted.selector, 1));
        verifier.verify(raw, AGE);
    }

    function test_staleRoot() public {
        Tree memory t = _fresh(4);
        bytes memory p = _payload(1, t, _idx1(1));
        vm.warp(block.timestamp + AGE + 1);
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.StaleRoot.selector, t.round, AGE));
        verifier.verify(p, AGE);
        verifier.verify(p, AGE + 1); // the caller's bound decides
    }

    function test_staleValueUnderAFreshRoot() public {
        uint64 old = uint64(block.timestamp - AGE - 1);
        Tree memory t = _tree(4, _nowRound(), old);
        bytes memory p = _payload(1, t, _idx1(2));
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPullVerifier.StaleValue.selector, t.leaves[2].feedId, old, AGE)
        );
        verifier.verify(p, AGE);
    }

    function test_valueTooFarAhead() public {
        uint64 ahead = uint64(block.timestamp + MAX_FUTURE + 1);
        Tree memory t = _tree(4, _nowRound(), ahead);
        bytes memory p = _payload(1, t, _idx1(1));
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPullVerifier.ValueInFuture.selector, t.leaves[1].feedId, ahead)
        );
        verifier.verify(p, AGE);
    }

    function test_roundInFuture() public {
        uint64 round = uint64((block.timestamp + MAX_FUTURE + 1) * 1000);
        Tree memory t = _tree(4, round, uint64(block.timestamp));
        bytes memory p = _payload(1, t, _idx1(2));
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.RoundInFuture.selector, round));
        verifier.verify(p, AGE);
    }

    function test_unknownEpoch() public {
        Tree memory t = _fresh(4);
        bytes memory p = _payload(7, t, _idx1(2));
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.UnknownEpoch.selector, 7));
        verifier.verify(p, AGE);
    }

    function test_retiredEpoch() public {
        // Times are kept in variables: via-IR may reuse a block.timestamp read across vm.warp.
        uint256 oldSecret = groupSecret;
        _startEpoch(0xC0FFEE, 3, 4); // epoch 2; epoch 1 stays valid for GRACE
        uint64 validUntil = oracle.epochKey(1).validUntil;
        uint256 start = validUntil - GRACE;
        Tree memory t = _tree(4, uint64(start * 1000), uint64(start));
        bytes32 d = verifier.rootDigest(1, t.round, t.nodes[0], 4);
        IMiraOracle.Signature memory sig = _signDigest(oldSecret, d);
        bytes memory p =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(0)), sig);
        verifier.verify(p, AGE); // within the grace period
        vm.warp(validUntil + 1);
        t = _tree(4, uint64((validUntil + 1) * 1000), validUntil + 1);
        d = verifier.rootDigest(1, t.round, t.nodes[0], 4);
        p = _encodePayload(
            uint64(block.chainid),
            address(verifier),
            1,
            t,
            _multiproof(t, _idx1(0)),
            _signDigest(oldSecret, d)
        );
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.EpochRetired.selector, 1, validUntil));
        verifier.verify(p, AGE);
        // the new epoch's key signs
        verifier.verify(_payload(2, t, _idx1(0)), AGE);
    }

    function test_wrongGroupKey() public {
        Tree memory t = _fresh(4);
        bytes32 d = verifier.rootDigest(1, t.round, t.nodes[0], 4);
        IMiraOracle.Signature memory sig = _signDigest(0xBAD5EC12E7, d);
        bytes memory p =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(0)), sig);
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.WrongGroupKey.selector, 1));
        verifier.verify(p, AGE);
    }

    function test_invalidSignature() public {
        Tree memory t = _fresh(4);
        IMiraOracle.Signature memory sig = _signRoot(1, t);
        sig.z = addmod(sig.z, 1, N);
        bytes memory p =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(0)), sig);
        vm.expectRevert(IMiraPullVerifier.InvalidSignature.selector);
        verifier.verify(p, AGE);
        // a root signed for another leaf count
        sig = _signDigest(groupSecret, verifier.rootDigest(1, t.round, t.nodes[0], 5));
        p = _encodePayload(uint64(block.chainid), address(verifier), 1, t, _multiproof(t, _idx1(0)), sig);
        vm.expectRevert(IMiraPullVerifier.InvalidSignature.selector);
        verifier.verify(p, AGE);
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Any single-byte change to a valid payload reverts, even after the untouched payload
    ///      was verified earlier in the same transaction (the transient record must not let it
    ///      through).
    function testFuzz_anyTamperedPayloadReverts(uint256 n, uint256 mask, uint256 at, uint8 flip, bool warm)
        public
    {
        n = bound(n, 1, 24);
        Tree memory t = _fresh(n);
        uint256 count;
        uint256[] memory idx = new uint256[](n);
        mask = mask | 2 ** (mask % n); // at least one leaf
        for (uint256 i; i < n; ++i) {
            if (mask >> i & 1 == 1) idx[count++] = i;
        }
        assembly ("memory-safe") {
            mstore(idx, count)
        }
        bytes memory p = _payload(1, t, idx);
        if (warm) _assertValues(verifier.verify(p, AGE), t, idx);
        if (flip == 0) flip = 1;
        at = bound(at, 0, p.length - 1);
        p[at] = bytes1(uint8(p[at]) ^ flip);
        (bool ok,) = address(verifier).call(abi.encodeCall(verifier.verify, (p, AGE)));
        vm.assertFalse(ok, "a tampered payload returned values");
    }

    /// @dev Truncated and extended payloads revert MalformedPayload.
    function testFuzz_wrongLengthIsMalformed(uint256 n, uint256 cut, bytes calldata extra) public {
        n = bound(n, 1, 16);
        Tree memory t = _fresh(n);
        bytes memory p = _payload(1, t, _idx1(n - 1));
        cut = bound(cut, 0, p.length - 1);
        bytes memory shortP = new bytes(cut);
        for (uint256 i; i < cut; ++i) {
            shortP[i] = p[i];
        }
        _expectMalformed(shortP);
        if (extra.length > 0) _expectMalformed(abi.encodePacked(p, extra));
    }

    function _expectMalformed(bytes memory p) internal {
        vm.expectRevert(abi.encodeWithSelector(IMiraPullVerifier.MalformedPayload.selector, p.length));
        verifier.verify(p, AGE);
    }

    function _copy(bytes memory a) internal pure returns (bytes memory b) {
        b = new bytes(a.length);
        for (uint256 i; i < a.length; ++i) {
            b[i] = a[i];
        }
    }
}
