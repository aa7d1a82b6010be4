// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title LibPull
/// @notice The one Solidity side of Mira's pull format (layout, leaves, multiproof, digest);
///         oracle/reporting/pull.py is the one Python codec, and tests/reporting/test_pull_codec.py
///         checks the two against each other. The layout is in IMiraPullVerifier's NatSpec.
///
/// @dev The tree. OpenZeppelin's StandardMerkleTree shape and MerkleProof.multiProofVerify
///      semantics, hand-written here rather than imported: OpenZeppelin is not a dependency of
///      this project (nothing is fetched at build time), and its multiproof takes ABI arrays
///      (`bytes32[]` proof, `bool[]` flags: 32 bytes of calldata per flag, and the leaves copied
///      into memory first) where the payload packs flags 8 to a byte and leaves are hashed in
///      place, which keeps a fresh single-value verification under the 30,000-gas bar.
///
///      Let the k leaves ℓ₀ … ℓ_{k−1} (in tree order), m proof nodes π₀ … π_{m−1} and
///      F = k + m − 1 flags be given. Step i ∊ [0, F) computes
///
///          hᵢ = H(a, b),   a = next(),   b = flagᵢ ? next() : π_{next proof},
///
///      where next() yields the leaves in order and then h₀, h₁, … in order, and
///      H(a, b) = keccak256(min(a, b) ‖ max(a, b)). The root is h_{F−1} (ℓ₀ when F = 0).
///      Each step consumes two items and produces one, so with k + m = F + 1 items given, all
///      are consumed except the last hash, which is the root. We refuse a multiproof that
///      reads a proof node it does not have, leaves one unread, or reads hⱼ at a step i ≤ j
///      (before hⱼ exists; OpenZeppelin would read a zero word there).
///
///      Why a proof cannot pass off an inner node as a leaf: the verifier computes every leaf
///      itself from a 96-byte preimage, and an inner node is the hash of a 64-byte one; equal
///      digests of different-length preimages are a keccak collision.
library LibPull {
    uint256 internal constant FIXED_SIZE = 169;
    uint256 internal constant LEAF_SIZE = 88;

    // Offsets of the fixed fields (see IMiraPullVerifier).
    uint256 internal constant OFF_VERIFIER = 8;
    uint256 internal constant OFF_EPOCH = 28;
    uint256 internal constant OFF_ROUND = 36;
    uint256 internal constant OFF_LEAF_COUNT = 44;
    uint256 internal constant OFF_ROOT = 48;
    uint256 internal constant OFF_SIGNATURE = 80; // px ‖ parity ‖ commitment ‖ z: 85 bytes
    uint256 internal constant SIGNATURE_SIZE = 85;
    uint256 internal constant OFF_K = 165;

    /// @notice Where the payload's variable parts start (absolute calldata offsets), or
    ///         leaves = 0 if the payload is malformed: shorter than FIXED_SIZE, k = 0, a length
    ///         other than FIXED_SIZE + ⌈(k+m−1)/8⌉ + 88·k + 32·m, or a non-zero unused flag bit.
    function layout(bytes calldata payload)
        internal
        pure
        returns (uint256 k, uint256 m, uint256 flags, uint256 leaves, uint256 proof)
    {
        assembly ("memory-safe") {
            let len := payload.length
            if iszero(lt(len, FIXED_SIZE)) {
                let w := calldataload(add(payload.offset, OFF_K))
                k := shr(240, w)
                m := and(shr(224, w), 0xffff)
                // k, m < 2^16: no overflow anywhere below.
                let nflags := sub(add(k, m), 1)
                let flagBytes := shr(3, add(nflags, 7))
                flags := add(payload.offset, FIXED_SIZE)
                leaves := add(flags, flagBytes)
                proof := add(leaves, mul(k, LEAF_SIZE))
                let ok :=
                    and(gt(k, 0), eq(len, add(add(FIXED_SIZE, flagBytes), add(mul(k, LEAF_SIZE), shl(5, m)))))
                // The last flag byte uses nflags − 8·(flagBytes − 1) bits; the rest must be 0, so
                // that each multiproof has exactly one encoding.
                if and(ok, gt(flagBytes, 0)) {
                    let used := sub(nflags, shl(3, sub(flagBytes, 1)))
                    let last := byte(0, calldataload(sub(leaves, 1)))
                    ok := iszero(and(last, shr(used, 0xff)))
                }
                if iszero(ok) { k := 0 }
            }
        }
    }

    /// @notice The leaf at calldata offset `at` (88 bytes: feedId ‖ value ‖ observedAt ‖
    ///         modelCommitment) in `round`: keccak256(feedId ‖ value ‖ observedAt ‖ round ‖ modelCommitment).
    function leafHash(uint256 at, uint64 round) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let buf := mload(0x40) // scratch past the free pointer: 96 bytes
            calldatacopy(buf, at, 56)
            mstore(add(buf, 56), shl(192, round))
            calldatacopy(add(buf, 64), add(at, 56), 32)
            h := keccak256(buf, 96)
        }
    }

    /// @notice The root the payload's leaves, flags and proof lead to in `round`; ok = false
    ///         for an inconsistent multiproof. Takes `layout`'s offsets (k ≥ 1).
    function processMultiproof(
        uint256 k,
        uint256 m,
        uint256 flags,
        uint256 leaves,
        uint256 proof,
        uint64 round
    ) internal pure returns (bytes32 root, bool ok) {
        uint256 total = k + m - 1;
        if (total == 0) return (leafHash(leaves, round), true);
        ok = true;
        if (k == 1) {
            // One leaf: step i has only hᵢ₋₁ (or the leaf) to take, so a set flag would read a
            // hash that does not exist yet; every flag must be 0, and the general loop below
            // reduces to folding the proof into the leaf, done here for a third of its gas.
            root = leafHash(leaves, round);
            assembly ("memory-safe") {
                let flagEnd := add(flags, shr(3, add(total, 7)))
                for { let f := flags } lt(f, flagEnd) { f := add(f, 1) } {
                    if byte(0, calldataload(f)) { ok := 0 }
                }
                let proofEnd := add(proof, shl(5, m))
                for {} lt(proof, proofEnd) { proof := add(proof, 0x20) } {
                    let b := calldataload(proof)
                    // H(root, b) = keccak256(min ‖ max), as below
                    switch lt(root, b)
                    case 1 {
                        mstore(0x00, root)
                        mstore(0x20, b)
                    }
                    default {
                        mstore(0x00, b)
                        mstore(0x20, root)
                    }
                    root := keccak256(0x00, 0x40)
                }
            }
            if (!ok) root = bytes32(0);
            return (root, ok);
        }
        assembly ("memory-safe") {
            // Scratch past the free pointer: 96 bytes for leaf preimages, then h₀ … h_{F−1}.
            let buf := mload(0x40)
            let hashes := add(buf, 0x60)
            let leafEnd := proof // the leaves end where the proof begins
            let proofEnd := add(proof, shl(5, m))
            let hashPos := hashes
            for { let i := 0 } lt(i, total) { i := add(i, 1) } {
                let a
                switch lt(leaves, leafEnd)
                case 1 {
                    calldatacopy(buf, leaves, 56)
                    mstore(add(buf, 56), shl(192, round))
                    calldatacopy(add(buf, 64), add(leaves, 56), 32)
                    a := keccak256(buf, 96)
                    leaves := add(leaves, LEAF_SIZE)
                }
                default {
                    // hⱼ exists iff j < i, i.e. hashPos < hashes + 32·i
                    if iszero(lt(hashPos, add(hashes, shl(5, i)))) {
                        ok := 0
                        break
                    }
                    a := mload(hashPos)
                    hashPos := add(hashPos, 0x20)
                }
                let b
                switch and(byte(0, calldataload(add(flags, shr(3, i)))), shr(and(i, 7), 0x80))
                case 0 {
                    if iszero(lt(proof, proofEnd)) {
                        ok := 0
                        break
                    }
                    b := calldataload(proof)
                    proof := add(proof, 0x20)
                }
                default {
                    switch lt(leaves, leafEnd)
                    case 1 {
                        calldatacopy(buf, leaves, 56)
                        mstore(add(buf, 56), shl(192, round))
                        calldatacopy(add(buf, 64), add(leaves, 56), 32)
                        b := keccak256(buf, 96)
                        leaves := add(leaves, LEAF_SIZE)
                    }
                    default {
                        if iszero(lt(hashPos, add(hashes, shl(5, i)))) {
                            ok := 0
                            break
                        }
                        b := mload(hashPos)
                        hashPos := add(hashPos, 0x20)
                    }
                }
                // H(a, b) = keccak256(min ‖ max): the commutative hash of OpenZeppelin's Hashes.
                if gt(a, b) {
                    let t := a
                    a := b
                    b := t
                }
                mstore(0x00, a)
                mstore(0x20, b)
                root := keccak256(0x00, 0x40)
                mstore(add(hashes, shl(5, i)), root)
            }
            if iszero(eq(proof, proofEnd)) { ok := 0 }
        }
        if (!ok) root = bytes32(0);
    }

    /// @notice The message the committee signs:
    ///         keccak256("MIRA-PULL-v1" ‖ chainId uint256 ‖ verifier address ‖ epoch uint64 ‖ round uint64 ‖ root ‖ leafCount uint32).
    function digest(
        uint256 chainId,
        address verifier,
        uint64 epoch,
        uint64 round,
        bytes32 root,
        uint32 leafCount
    ) internal pure returns (bytes32 d) {
        assembly ("memory-safe") {
            // 116-byte preimage 12 ‖ 32 ‖ 20 ‖ 8 ‖ 8 ‖ 32 ‖ 4 past the free pointer, written left
            // to right so that each mstore overwrites the previous one's padding.
            let p := mload(0x40)
            mstore(p, "MIRA-PULL-v1")
            mstore(add(p, 12), chainId)
            mstore(add(p, 44), shl(96, verifier))
            mstore(add(p, 64), shl(192, epoch))
            mstore(add(p, 72), shl(192, round))
            mstore(add(p, 80), root)
            mstore(add(p, 112), shl(224, leafCount))
            d := keccak256(p, 116)
        }
    }
}
