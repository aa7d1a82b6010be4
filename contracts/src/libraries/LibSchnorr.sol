// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title LibSchnorr
/// @notice Verifies a Schnorr signature over secp256k1 with a single `ecrecover`, the form in
///         which Mira's FROST committee signs (see docs/cryptography.md and oracle/crypto).
///
/// @dev Signature scheme. Let G be the generator and N the group order. The signer holds x
///      with public key P = x·G. A signature on the 32-byte message m is (R, z) where R = k·G
///      for a fresh nonce k, and
///
///          e = keccak256(Px ‖ parity(P) ‖ m ‖ address(R)) mod N      (uint256 ‖ uint8 ‖ bytes32 ‖ address)
///          z = k + e·x mod N.
///
///      Only address(R) travels: the verifier recomputes R and compares addresses.
///
///      Why one ecrecover suffices. ecrecover(h, v, r, s) returns the address of
///
///          Q = r⁻¹·(s·R' − h·G)
///
///      where R' is the curve point with x-coordinate r and y-parity v − 27. Choose R' = P, i.e.
///      r = Px and v = parity(P) + 27, and set s = −e·Px and h = −z·Px (mod N). Then
///
///          Q = Px⁻¹·(−e·Px·P + z·Px·G) = z·G − e·P = (k + e·x)·G − e·x·G = k·G = R,
///
///      so a valid signature makes ecrecover return address(R). Forging one means finding z
///      with address(z·G − e·P) equal to the committed address, where e depends on that
///      address: a hash-then-commit Schnorr, secure in the ROM like Chronicle's LibSchnorr.
///
///      Why the checks. ecrecover needs 0 < r < N and 0 < s < N: Px ≥ N is unusable as r (the
///      DKG re-runs until the group key's Px < N), and Px = 0 is not a curve x-coordinate.
///      z = 0 or z ≥ N would make the signature malleable (z and z + N are the same scalar).
///      e = 0 makes s = 0, which ecrecover rejects; we refuse it explicitly. A zero commitment
///      is what ecrecover returns on failure, so it can never count as a match.
library LibSchnorr {
    /// @dev Order of the secp256k1 group.
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @notice The challenge e for public key (px, parity), message and nonce commitment:
    ///         keccak256(px uint256 ‖ parity uint8 ‖ message bytes32 ‖ commitment address) mod N.
    function challenge(uint256 px, uint8 parity, bytes32 message, address commitment)
        internal
        pure
        returns (uint256 e)
    {
        assembly ("memory-safe") {
            // 85-byte preimage in unallocated memory past the free pointer (scratch only).
            let m := mload(0x40)
            mstore(m, px)
            mstore(add(m, 0x20), shl(248, parity)) // 1 byte; the rest is overwritten next
            mstore(add(m, 0x21), message)
            mstore(add(m, 0x41), shl(96, commitment)) // 20 bytes, left-aligned
            e := mod(keccak256(m, 0x55), N)
        }
    }

    /// @notice True iff (commitment, z) is a valid signature of `message` under the key whose
    ///         x-coordinate is `px` and whose y-coordinate has parity `parity` (0 even, 1 odd).
    /// @dev Never reverts; every malformed input yields false.
    function verify(uint256 px, uint8 parity, bytes32 message, address commitment, uint256 z)
        internal
        view
        returns (bool valid)
    {
        if (px == 0 || px >= N || parity > 1) return false;
        if (z == 0 || z >= N) return false;
        if (commitment == address(0)) return false;

        uint256 e = challenge(px, parity, message, commitment);
        if (e == 0) return false;

        assembly ("memory-safe") {
            // Let e, z, Px ∊ [1, N). N is prime, so e·Px and z·Px are non-zero mod N and both
            // negations land in [1, N), the range ecrecover accepts for h and s.
            let m := mload(0x40)
            mstore(m, sub(N, mulmod(z, px, N))) // h = −z·Px
            mstore(add(m, 0x20), add(parity, 27)) // v: R' = P
            mstore(add(m, 0x40), px) // r = Px
            mstore(add(m, 0x60), sub(N, mulmod(e, px, N))) // s = −e·Px
            // ecrecover writes nothing on failure: clear the output word first, and insist on
            // a 32-byte answer, so a stale word can never pass as a recovered address.
            mstore(0x00, 0)
            let ok := staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20)
            valid := and(and(ok, eq(returndatasize(), 0x20)), eq(mload(0x00), commitment))
        }
    }
}
