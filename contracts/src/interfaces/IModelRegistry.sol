// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice The models a MiraOracle's committee runs, and their versions.
///
///         - Anyone proposes a model: the sha256 spec hash the node computes over the canonical
///           spec (oracle/config/feeds.py, "MIRA-FEED-SPEC-v1"), a URI to fetch the spec from
///           (file://, http(s)://, data:), and the output feeds it declares (id, decimals,
///           description). That is version 1. The proposer is the model's author.
///         - The oracle's owner approves a version (the registry has no owner of its own: it asks
///           the oracle, so governance follows the oracle's ownership). Approving a model's
///           first version registers its declared feeds on the oracle, each with its
///           AggregatorV3Interface proxy, in the same transaction (the registry is the oracle's
///           feed registrar). Why approval at all: a permissionless registry would let anyone
///           make every node run arbitrary compute.
///         - The author publishes new versions (same declared feeds; a spec declaring others is
///           rejected by the nodes); the owner approves them the same way. Approving version v
///           supersedes every earlier one; versions are approved in increasing order.
///         - The author or the owner deactivates a model, for good: nodes stop its feeds; the
///           feeds stay registered and their proxies keep the last value and its age.
///         - Agreement: the block of `VersionApproved` fixes where every member starts the
///           version (see oracle/registry): the first observation it learns from and, for a new
///           version, the round boundary at which it replaces the old one.
///
///         Models are numbered 1, 2, … in proposal order; versions 1, 2, … per model.
interface IModelRegistry {
    /// @notice One output feed a model declares.
    struct FeedDeclaration {
        bytes32 feedId;
        uint8 decimals;
        string description;
    }

    /// @notice A model; `approvedVersion` 0 until its first approval.
    struct Model {
        address author;
        uint32 versionCount;
        uint32 approvedVersion;
        bool deactivated;
        uint64 deactivatedBlock;
    }

    /// @notice One version of a model; `approvedBlock` 0 while not approved.
    struct Version {
        bytes32 specHash;
        string specUri;
        uint64 proposedBlock;
        uint64 approvedBlock;
    }

    /// @notice `author` proposed model `modelId` (its version 1) declaring `feedIds`.
    event ModelProposed(
        uint256 indexed modelId, address indexed author, bytes32 specHash, string specUri, bytes32[] feedIds
    );
    /// @notice The author published `version` (≥ 2) of `modelId`.
    event VersionPublished(
        uint256 indexed modelId, uint256 indexed version, bytes32 specHash, string specUri
    );
    /// @notice The oracle's owner approved `version` of `modelId`: nodes run it from this block.
    event VersionApproved(uint256 indexed modelId, uint256 indexed version, bytes32 specHash);
    /// @notice `by` (the author or the oracle's owner) deactivated `modelId`.
    event ModelDeactivated(uint256 indexed modelId, address indexed by);

    /// @notice `caller` is not the oracle's owner.
    error NotOracleOwner(address caller);
    /// @notice `caller` is not the model's author.
    error NotAuthor(uint256 modelId, address caller);
    /// @notice `caller` is neither the model's author nor the oracle's owner.
    error NotAuthorOrOwner(uint256 modelId, address caller);
    /// @notice No model `modelId`.
    error UnknownModel(uint256 modelId);
    /// @notice Model `modelId` has no version `version`.
    error UnknownVersion(uint256 modelId, uint256 version);
    /// @notice Model `modelId` was deactivated.
    error ModelDeactivatedAlready(uint256 modelId);
    /// @notice `version` is not after the approved version `approved`.
    error VersionNotNewer(uint256 modelId, uint256 version, uint256 approved);
    /// @notice The spec hash is zero.
    error InvalidSpecHash();
    /// @notice The spec URI is empty or longer than MAX_URI_LENGTH bytes.
    error InvalidSpecUri(uint256 length);
    /// @notice A model declares 0 or more than MAX_FEEDS feeds.
    error InvalidFeedCount(uint256 count);
    /// @notice A declared feed id is zero, or a description is longer than MAX_DESCRIPTION_LENGTH.
    error InvalidFeedDeclaration(bytes32 feedId);
    /// @notice `feedId` is declared twice, already belongs to an approved model, or is already
    ///         registered on the oracle.
    /// @dev propose checks only the first (a proposal reserves no feed id, so a squatting
    ///      proposal cannot block anyone); approve checks the other two, at the time it
    ///      registers the feeds.
    error FeedIdTaken(bytes32 feedId);

    /// @notice Propose a model: version 1 with `specHash` at `specUri`, declaring `feeds`.
    function propose(bytes32 specHash, string calldata specUri, FeedDeclaration[] calldata feeds)
        external
        returns (uint256 modelId);

    /// @notice Author: publish the next version of `modelId`.
    function publish(uint256 modelId, bytes32 specHash, string calldata specUri)
        external
        returns (uint256 version);

    /// @notice The oracle's owner: approve `version` of `modelId` (the first approval registers
    ///         the model's feeds on the oracle).
    function approve(uint256 modelId, uint256 version) external;

    /// @notice The author or the oracle's owner: deactivate `modelId` for good.
    function deactivate(uint256 modelId) external;

    /// @notice The oracle whose feeds this registry registers, and whose owner approves.
    function oracle() external view returns (address);

    /// @notice How many models were proposed (ids 1 … modelCount).
    function modelCount() external view returns (uint256);

    /// @notice Model `modelId`; reverts UnknownModel.
    function modelOf(uint256 modelId) external view returns (Model memory);

    /// @notice The feeds model `modelId` declares, in declaration order; reverts UnknownModel.
    function feedsOf(uint256 modelId) external view returns (FeedDeclaration[] memory);

    /// @notice `version` of `modelId`; reverts UnknownModel / UnknownVersion.
    function versionOf(uint256 modelId, uint256 version) external view returns (Version memory);

    /// @notice The approved model that owns `feedId`; 0 if none.
    function modelOfFeed(bytes32 feedId) external view returns (uint256);
}
