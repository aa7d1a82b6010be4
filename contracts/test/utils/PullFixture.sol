// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraOracle} from "../../src/interfaces/IMiraOracle.sol";
import {MiraPullVerifier} from "../../src/pull/MiraPullVerifier.sol";
import {OracleFixture} from "./OracleFixture.sol";

/// @notice An oracle with an active epoch, a pull verifier reading its committee, and a
///         test-side builder of pull trees, multiproofs and payloads: an independent Solidity
///         rendering of oracle/reporting/pull.py (OpenZeppelin's makeMerkleTree and
///         getMultiProof), so that the forge tests need no Python.
abstract contract PullFixture is OracleFixture {
    MiraPullVerifier internal verifier;

    struct Tree {
        uint64 round;
        Update[] leaves; // ascending feed id
        bytes32[] nodes; // array form, nodes[0] the root
    }

    struct Proof {
        Update[] leaves;
        bytes32[] proof;
        bool[] flags;
    }

    function _deployPull() internal {
        _deploy();
        verifier = new MiraPullVerifier(oracle, MAX_FUTURE);
    }

    /// @dev Ascending, hash-like feed ids (all 32 bytes used, as real ids): the top 16 bits
    ///      count up, the rest is a hash.
    function _pullFeedId(uint256 i) internal pure returns (bytes32) {
        return bytes32((i + 1) << 240 | uint256(keccak256(abi.encode("pull-feed", i))) >> 16);
    }

    function _leafHash(Update memory u, uint64 round) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(u.feedId, u.value, u.observedAt, round, u.modelCommitment));
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    function _tree(uint256 n, uint64 round, uint64 observedAt) internal pure returns (Tree memory t) {
        t.round = round;
        t.leaves = new Update[](n);
        for (uint256 i; i < n; ++i) {
            t.leaves[i] = Update(
                _pullFeedId(i), int128(int256(3000e8 + i)), observedAt, keccak256(abi.encode("model", i))
            );
        }
        t.nodes = new bytes32[](2 * n - 1);
        for (uint256 j; j < n; ++j) {
            t.nodes[2 * n - 2 - j] = _leafHash(t.leaves[j], round);
        }
        for (uint256 i = n - 1; i > 0; --i) {
            t.nodes[i - 1] = _hashPair(t.nodes[2 * i - 1], t.nodes[2 * i]);
        }
    }

    /// @dev OpenZeppelin's getMultiProof for the leaves at positions `idx` (ascending, unique).
    function _multiproof(Tree memory t, uint256[] memory idx) internal pure returns (Proof memory p) {
        uint256 n = t.leaves.length;
        uint256 last = 2 * n - 2;
        uint256[] memory queue = new uint256[](2 * n);
        uint256 head;
        uint256 tail;
        p.leaves = new Update[](idx.length);
        for (uint256 i; i < idx.length; ++i) {
            queue[tail++] = last - idx[i]; // descending tree indices
            p.leaves[i] = t.leaves[idx[i]];
        }
        bytes32[] memory proof = new bytes32[](2 * n);
        bool[] memory flags = new bool[](2 * n);
        uint256 np;
        uint256 nf;
        while (head < tail && queue[head] > 0) {
            uint256 j = queue[head++];
            uint256 s = j % 2 == 0 ? j - 1 : j + 1;
            if (head < tail && queue[head] == s) {
                flags[nf++] = true;
                ++head;
            } else {
                flags[nf++] = false;
                proof[np++] = t.nodes[s];
            }
            queue[tail++] = (j - 1) / 2;
        }
        p.proof = new bytes32[](np);
        for (uint256 i; i < np; ++i) {
            p.proof[i] = proof[i];
        }
        p.flags = new bool[](nf);
        for (uint256 i; i < nf; ++i) {
            p.flags[i] = flags[i];
        }
    }

    function _packFlags(bool[] memory flags) internal pure returns (bytes memory out) {
        out = new bytes((flags.length + 7) / 8);
        for (uint256 i; i < flags.length; ++i) {
            if (flags[i]) out[i / 8] = bytes1(uint8(out[i / 8]) | uint8(128 / 2 ** (i % 8)));
        }
    }

    function _encodePayload(
        uint64 chainId,
        address verifierAddress,
        uint64 epoch,
        Tree memory t,
        Proof memory p,
        IMiraOracle.Signature memory sig
    ) internal pure returns (bytes memory out) {
        out = abi.encodePacked(
            chainId, verifierAddress, epoch, t.round, uint32(t.leaves.length), t.nodes[0], sig.px, sig.parity
        );
        out = abi.encodePacked(
            out, sig.commitment, sig.z, uint16(p.leaves.length), uint16(p.proof.length), _packFlags(p.flags)
        );
        for (uint256 i; i < p.leaves.length; ++i) {
            Update memory u = p.leaves[i];
            out = abi.encodePacked(out, u.feedId, u.value, u.observedAt, u.modelCommitment);
        }
        for (uint256 i; i < p.proof.length; ++i) {
            out = abi.encodePacked(out, p.proof[i]);
        }
    }

    /// @dev Sign the tree's root for `verifier` under `epoch` with the group secret.
    function _signRoot(uint64 epoch, Tree memory t) internal returns (IMiraOracle.Signature memory) {
        bytes32 d = verifier.rootDigest(epoch, t.round, t.nodes[0], uint32(t.leaves.length));
        return _signDigest(groupSecret, d);
    }

    /// @dev A signed payload for the leaves at `idx` of `t`.
    function _payload(uint64 epoch, Tree memory t, uint256[] memory idx) internal returns (bytes memory) {
        return _encodePayload(
            uint64(block.chainid), address(verifier), epoch, t, _multiproof(t, idx), _signRoot(epoch, t)
        );
    }

    function _idx1(uint256 a) internal pure returns (uint256[] memory i) {
        i = new uint256[](1);
        i[0] = a;
    }

    function _range(uint256 from, uint256 count) internal pure returns (uint256[] memory i) {
        i = new uint256[](count);
        for (uint256 j; j < count; ++j) {
            i[j] = from + j;
        }
    }
}
