// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibSchnorr} from "../src/libraries/LibSchnorr.sol";
import {SchnorrVerifierHarness} from "./harness/SchnorrVerifierHarness.sol";
import {Test} from "./lib/Test.sol";
import {Vm} from "./lib/Vm.sol";

contract LibSchnorrTest is Test {
    uint256 internal constant N = LibSchnorr.N;
    bytes32 internal constant MSG = keccak256("message");
    SchnorrVerifierHarness internal harness;

    struct Sig {
        uint256 px;
        uint8 parity;
        address commitment;
        uint256 z;
    }

    function setUp() public {
        harness = new SchnorrVerifierHarness();
    }

    /// @dev Signs with secret x and nonce k entirely through cheatcodes: P = x·G and R = k·G come
    ///      from forge's secp256k1, z = k + e·x mod N is the scheme's response.
    function _sign(uint256 x, uint256 k, bytes32 message) internal returns (Sig memory sig) {
        Vm.Wallet memory w = vm.createWallet(x);
        sig.px = w.publicKeyX;
        sig.parity = uint8(w.publicKeyY & 1);
        sig.commitment = vm.addr(k);
        uint256 e = LibSchnorr.challenge(sig.px, sig.parity, message, sig.commitment);
        sig.z = addmod(k, mulmod(e, x, N), N);
    }

    function _keys(uint256 x, uint256 k) internal pure returns (uint256, uint256) {
        return (bound(x, 1, N - 1), bound(k, 1, N - 1));
    }

    function testFuzz_acceptsValidSignature(uint256 x, uint256 k, bytes32 message) public {
        (x, k) = _keys(x, k);
        Sig memory s = _sign(x, k, message);
        vm.assume(s.px < N);
        vm.assertTrue(harness.verify(s.px, s.parity, message, s.commitment, s.z), "valid signature rejected");
    }

    function testFuzz_rejectsOtherMessage(uint256 x, uint256 k, bytes32 message, bytes32 other) public {
        vm.assume(message != other);
        (x, k) = _keys(x, k);
        Sig memory s = _sign(x, k, message);
        vm.assume(s.px < N);
        vm.assertFalse(
            harness.verify(s.px, s.parity, other, s.commitment, s.z), "signature moved to another message"
        );
    }

    function testFuzz_rejectsTamperedZ(uint256 x, uint256 k, bytes32 message, uint256 delta) public {
        (x, k) = _keys(x, k);
        delta = bound(delta, 1, N - 1);
        Sig memory s = _sign(x, k, message);
        vm.assume(s.px < N);
        uint256 z2 = addmod(s.z, delta, N);
        vm.assertFalse(harness.verify(s.px, s.parity, message, s.commitment, z2), "tampered z accepted");
    }

    function testFuzz_rejectsOtherKey(uint256 x, uint256 k, uint256 x2, bytes32 message) public {
        (x, k) = _keys(x, k);
        x2 = bound(x2, 1, N - 1);
        vm.assume(x2 != x && x2 != N - x); // ±x share an x-coordinate
        Sig memory s = _sign(x, k, message);
        Vm.Wallet memory w2 = vm.createWallet(x2);
        vm.assume(s.px < N && w2.publicKeyX < N);
        vm.assertFalse(
            harness.verify(w2.publicKeyX, uint8(w2.publicKeyY & 1), message, s.commitment, s.z),
            "signature accepted under another key"
        );
    }

    function testFuzz_rejectsFlippedParity(uint256 x, uint256 k, bytes32 message) public {
        (x, k) = _keys(x, k);
        Sig memory s = _sign(x, k, message);
        vm.assume(s.px < N);
        vm.assertFalse(harness.verify(s.px, 1 - s.parity, message, s.commitment, s.z), "negated key accepted");
    }

    function testFuzz_rejectsOtherCommitment(uint256 x, uint256 k, bytes32 message, address other) public {
        (x, k) = _keys(x, k);
        Sig memory s = _sign(x, k, message);
        vm.assume(s.px < N && other != s.commitment);
        vm.assertFalse(harness.verify(s.px, s.parity, message, other, s.z), "other commitment accepted");
    }

    function test_rejectsZeroAndOutOfRangeScalars() public {
        Sig memory s = _sign(0xC0FFEE, 0xBEEF, MSG);
        vm.assertTrue(harness.verify(s.px, s.parity, MSG, s.commitment, s.z), "baseline must verify");
        vm.assertFalse(harness.verify(s.px, s.parity, MSG, s.commitment, 0), "z = 0 accepted");
        vm.assertFalse(harness.verify(s.px, s.parity, MSG, s.commitment, N), "z = N accepted");
        vm.assertFalse(harness.verify(s.px, s.parity, MSG, s.commitment, type(uint256).max), "z > N accepted");
        vm.assertFalse(harness.verify(0, s.parity, MSG, s.commitment, s.z), "Px = 0 accepted");
        vm.assertFalse(harness.verify(N, s.parity, MSG, s.commitment, s.z), "Px = N accepted");
        vm.assertFalse(harness.verify(s.px, 2, MSG, s.commitment, s.z), "parity 2 accepted");
        vm.assertFalse(harness.verify(s.px, s.parity, MSG, address(0), s.z), "zero commitment accepted");
    }
}
