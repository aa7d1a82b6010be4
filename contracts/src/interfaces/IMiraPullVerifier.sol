// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICommittee} from "./ICommittee.sol";

/// @title IMiraPullVerifier
/// @notice Pull mode: each round the committee signs one Merkle root over the current output of
///         every feed it carries; a consumer brings the values it needs, with a multiproof, into
///         its own transaction, and this verifier checks them there. Push and pull share the
///         committee: the verifier reads each epoch's group key and validity from the
///         MiraOracle (ICommittee), so a retired epoch's roots are refused as its reports are.
///
///         Leaf (see LibPull and oracle/reporting/pull.py, the one Python codec):
///             keccak256(feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ round uint64 ‖ modelCommitment bytes32)
///         Leaves sorted by feedId; OpenZeppelin's StandardMerkleTree shape and multiproof
///         semantics (commutative inner hash).
///
///         Signed message (one FROST Schnorr signature per round, whatever the number of feeds):
///             keccak256("MIRA-PULL-v1" ‖ chainId uint256 ‖ verifier address ‖ epoch uint64 ‖ round uint64 ‖ root bytes32 ‖ leafCount uint32)
///
///         Payload (packed, big-endian):
///             chainId uint64 ‖ verifier address ‖ epoch uint64 ‖ round uint64 ‖ leafCount uint32 ‖ root bytes32
///             ‖ px uint256 ‖ parity uint8 ‖ commitment address ‖ z uint256
///             ‖ k uint16 ‖ m uint16 ‖ flags bytes⌈(k+m−1)/8⌉ ‖ leaf[k] (88 bytes each) ‖ proof[m] (32 bytes each)
///             leaf = feedId bytes32 ‖ value int128 ‖ observedAt uint64 ‖ modelCommitment bytes32
///
///         A root's signature is checked once per transaction: later calls in the same
///         transaction with the same root and signature skip it (transient storage).
interface IMiraPullVerifier {
    /// @notice `verifyAndStore` recorded this root (with its signature) for later transactions.
    event RootStored(uint64 indexed epoch, uint64 indexed round, bytes32 root, uint32 leafCount);

    /// @notice One verified feed output.
    /// @param observedAt when the feed's source observed it (unix seconds), never after
    ///                   block.timestamp: a value observed up to maxFutureDrift ahead of the
    ///                   block is served as observed now, so `block.timestamp - observedAt`
    ///                   never underflows in a consumer (as the push path's latestRound).
    struct Value {
        bytes32 feedId;
        int128 value;
        uint64 observedAt;
        bytes32 modelCommitment;
    }

    /// @notice The payload's length does not fit its own k and m (or it is shorter than the
    ///         fixed part, or k = 0), or its flag bitmap has a non-zero unused bit.
    error MalformedPayload(uint256 length);
    /// @notice The payload was made for another chain.
    error WrongChain(uint256 expected, uint256 given);
    /// @notice The payload was made for another verifier contract.
    error WrongVerifier(address expected, address given);
    /// @notice leafCount is 0 or below the number of leaves the payload carries.
    error InvalidLeafCount(uint256 leafCount, uint256 leaves);
    /// @notice The payload's leaves are not in strictly ascending feed id order at `index`.
    error LeavesNotSorted(uint256 index);
    /// @notice The multiproof is inconsistent: a proof node missing or left over, or a hash
    ///         used before it is computed.
    error InvalidMultiproof();
    /// @notice The leaves and proof lead to `computed`, not to the root the payload claims (a
    ///         tampered leaf or proof, or a proof for another leaf).
    error RootMismatch(bytes32 computed, bytes32 claimed);
    /// @notice The root's round (unix ms) is older than the caller's maxAge.
    error StaleRoot(uint64 round, uint256 maxAge);
    /// @notice The root's round (unix ms) is more than maxFutureDrift ahead of the block.
    error RoundInFuture(uint64 round);
    /// @notice A value's observedAt is older than the caller's maxAge.
    error StaleValue(bytes32 feedId, uint64 observedAt, uint256 maxAge);
    /// @notice A value's observedAt is more than maxFutureDrift ahead of the block (the push
    ///         path skips such an update as FutureTimestamp).
    error ValueInFuture(bytes32 feedId, uint64 observedAt);
    /// @notice No epoch `epoch` was ever started on the committee.
    error UnknownEpoch(uint64 epoch);
    /// @notice `epoch` is retired: its grace period ended at `validUntil`.
    error EpochRetired(uint64 epoch, uint64 validUntil);
    /// @notice The payload's group key is not `epoch`'s.
    error WrongGroupKey(uint64 epoch);
    /// @notice The signature does not verify for this chain, verifier, epoch, round, root and
    ///         leaf count.
    error InvalidSignature();
    /// @notice `verifyStored` was given a root (or signature) that `verifyAndStore` never recorded.
    error RootNotStored(bytes32 digest);

    /// @notice Verify `payload` and return its values, in payload (ascending feed id) order.
    ///         Reverts with one of this interface's errors unless every check passes: the
    ///         layout, chain and verifier, the multiproof against the claimed root, the root's
    ///         round and every value no older than `maxAge` seconds and no more than
    ///         maxFutureDrift ahead of the block, leaves in ascending feed id order, and the signature by the
    ///         group key of an epoch that is not retired.
    function verify(bytes calldata payload, uint256 maxAge) external returns (Value[] memory values);

    /// @notice `verify`, and record the root with its signature (RootStored, once) so that
    ///         `verifyStored` accepts its leaves in later transactions without the signature
    ///         check. A root is recorded only while its epoch is valid; a recorded root stays
    ///         usable after that epoch retires, as a landed push report stays readable, and
    ///         like every root only while it is fresher than the caller's maxAge.
    function verifyAndStore(bytes calldata payload, uint256 maxAge) external returns (Value[] memory values);

    /// @notice `verify` for a root that `verifyAndStore` recorded: every check but the
    ///         signature's (and the epoch's), which are replaced by one storage read; reverts
    ///         RootNotStored otherwise.
    function verifyStored(bytes calldata payload, uint256 maxAge) external returns (Value[] memory values);

    /// @notice The message the committee signs for a root on this verifier.
    function rootDigest(uint64 epoch, uint64 round, bytes32 root, uint32 leafCount)
        external
        view
        returns (bytes32);

    /// @notice The committee (the MiraOracle) whose epoch keys sign the roots.
    function committee() external view returns (ICommittee);

    /// @notice How far ahead of the block (seconds) a root's round may be.
    function maxFutureDrift() external view returns (uint256);
}
