// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "./Owned.sol";
import {IMiraOracle} from "./interfaces/IMiraOracle.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title ModelRegistry
/// @notice The models a MiraOracle's committee runs (see IModelRegistry). Deploy it with the
///         oracle, then have the oracle's owner make it the oracle's feed registrar
///         (MiraOracle.setFeedRegistrar), so approving a model registers its feeds.
/// @dev What a hostile proposer can do, and why it gains nothing:
///        - squat feed ids: a proposal reserves nothing. Feed ids are taken at approval, checked
///          against the oracle and every approved model then; a proposal only has to be free of
///          duplicates within itself. An unapproved proposal never blocks an approved model.
///        - send huge strings or arrays: every input is bounded (MAX_FEEDS, MAX_URI_LENGTH,
///          MAX_DESCRIPTION_LENGTH) and paid for by the proposer; what the owner's approval
///          costs is bounded by MAX_FEEDS registrations.
///        - re-enter: the only external calls are to the oracle (trusted, fixed at
///          construction), and approve makes them after all of its state changes.
contract ModelRegistry is IModelRegistry {
    /// @notice The most feeds one model declares. Approval registers each on the oracle with
    ///         a proxy and DEFAULT_HISTORY_DEPTH ring slots (~1.98M gas a feed): 12 keep the
    ///         first approval well inside a 30M block (ModelRegistry.t.sol measures it).
    uint256 public constant MAX_FEEDS = 12;
    /// @notice The longest spec URI in bytes: room for a data: URI carrying a small
    ///         base64 TOML spec (the repository's specs are 1.7 to 2.4 kB as TOML).
    uint256 public constant MAX_URI_LENGTH = 4096;
    /// @notice The longest feed description in bytes (the oracle stores it for its proxy's
    ///         description(); Chainlink's are a few words).
    uint256 public constant MAX_DESCRIPTION_LENGTH = 256;

    IMiraOracle internal immutable _oracle;

    uint256 internal _modelCount;
    mapping(uint256 modelId => Model) internal _models;
    mapping(uint256 modelId => FeedDeclaration[]) internal _feeds;
    mapping(uint256 modelId => mapping(uint256 version => Version)) internal _versions;
    mapping(bytes32 feedId => uint256 modelId) internal _modelOfFeed;

    constructor(IMiraOracle oracle_) {
        _oracle = oracle_;
    }

    /// @inheritdoc IModelRegistry
    function propose(bytes32 specHash, string calldata specUri, FeedDeclaration[] calldata feeds)
        external
        returns (uint256 modelId)
    {
        _checkSpec(specHash, specUri);
        uint256 count = feeds.length;
        if (count == 0 || count > MAX_FEEDS) revert InvalidFeedCount(count);
        bytes32[] memory feedIds = new bytes32[](count);
        modelId = ++_modelCount;
        FeedDeclaration[] storage stored = _feeds[modelId];
        for (uint256 i; i < count; ++i) {
            FeedDeclaration calldata feed = feeds[i];
            bytes32 feedId = feed.feedId;
            if (feedId == bytes32(0) || bytes(feed.description).length > MAX_DESCRIPTION_LENGTH) {
                revert InvalidFeedDeclaration(feedId);
            }
            // quadratic, but over at most MAX_FEEDS ids
            for (uint256 j; j < i; ++j) {
                if (feedIds[j] == feedId) revert FeedIdTaken(feedId);
            }
            feedIds[i] = feedId;
            stored.push(feed);
        }
        _models[modelId] = Model({
            author: msg.sender, versionCount: 1, approvedVersion: 0, deactivated: false, deactivatedBlock: 0
        });
        _versions[modelId][1] = Version({
            specHash: specHash, specUri: specUri, proposedBlock: uint64(block.number), approvedBlock: 0
        });
        emit ModelProposed(modelId, msg.sender, specHash, specUri, feedIds);
    }

    /// @inheritdoc IModelRegistry
    function publish(uint256 modelId, bytes32 specHash, string calldata specUri)
        external
        returns (uint256 version)
    {
        Model storage model = _activeModel(modelId);
        if (msg.sender != model.author) revert NotAuthor(modelId, msg.sender);
        _checkSpec(specHash, specUri);
        version = ++model.versionCount;
        _versions[modelId][version] = Version({
            specHash: specHash, specUri: specUri, proposedBlock: uint64(block.number), approvedBlock: 0
        });
        emit VersionPublished(modelId, version, specHash, specUri);
    }

    /// @inheritdoc IModelRegistry
    /// @dev Checks (the owner, the version, every feed id free on the oracle and among
    ///      approved models), then every state change and the event, then the oracle's
    ///      registerFeed calls: a failing registration reverts the whole approval, so nothing
    ///      is left half-registered.
    function approve(uint256 modelId, uint256 version) external {
        if (msg.sender != Owned(address(_oracle)).owner()) revert NotOracleOwner(msg.sender);
        Model storage model = _activeModel(modelId);
        if (version == 0 || version > model.versionCount) revert UnknownVersion(modelId, version);
        uint256 approved = model.approvedVersion;
        if (version <= approved) revert VersionNotNewer(modelId, version, approved);
        FeedDeclaration[] storage feeds = _feeds[modelId];
        bool first = approved == 0;
        if (first) {
            for (uint256 i; i < feeds.length; ++i) {
                bytes32 feedId = feeds[i].feedId;
                if (_modelOfFeed[feedId] != 0 || _oracle.isRegistered(feedId)) revert FeedIdTaken(feedId);
                _modelOfFeed[feedId] = modelId;
            }
        }
        model.approvedVersion = uint32(version);
        Version storage v = _versions[modelId][version];
        v.approvedBlock = uint64(block.number);
        emit VersionApproved(modelId, version, v.specHash);
        if (first) {
            for (uint256 i; i < feeds.length; ++i) {
                FeedDeclaration storage feed = feeds[i];
                _oracle.registerFeed(feed.feedId, feed.decimals, feed.description);
            }
        }
    }

    /// @inheritdoc IModelRegistry
    function deactivate(uint256 modelId) external {
        Model storage model = _activeModel(modelId);
        if (msg.sender != model.author && msg.sender != Owned(address(_oracle)).owner()) {
            revert NotAuthorOrOwner(modelId, msg.sender);
        }
        model.deactivated = true;
        model.deactivatedBlock = uint64(block.number);
        emit ModelDeactivated(modelId, msg.sender);
    }

    /// @inheritdoc IModelRegistry
    function oracle() external view returns (address) {
        return address(_oracle);
    }

    /// @inheritdoc IModelRegistry
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @inheritdoc IModelRegistry
    function modelOf(uint256 modelId) external view returns (Model memory) {
        return _model(modelId);
    }

    /// @inheritdoc IModelRegistry
    function feedsOf(uint256 modelId) external view returns (FeedDeclaration[] memory) {
        _model(modelId);
        return _feeds[modelId];
    }

    /// @inheritdoc IModelRegistry
    function versionOf(uint256 modelId, uint256 version) external view returns (Version memory) {
        Model storage model = _model(modelId);
        if (version == 0 || version > model.versionCount) revert UnknownVersion(modelId, version);
        return _versions[modelId][version];
    }

    /// @inheritdoc IModelRegistry
    function modelOfFeed(bytes32 feedId) external view returns (uint256) {
        return _modelOfFeed[feedId];
    }

    function _checkSpec(bytes32 specHash, string calldata specUri) private pure {
        if (specHash == bytes32(0)) revert InvalidSpecHash();
        uint256 length = bytes(specUri).length;
        if (length == 0 || length > MAX_URI_LENGTH) revert InvalidSpecUri(length);
    }

    function _model(uint256 modelId) private view returns (Model storage model) {
        model = _models[modelId];
        if (model.author == address(0)) revert UnknownModel(modelId);
    }

    function _activeModel(uint256 modelId) private view returns (Model storage model) {
        model = _model(modelId);
        if (model.deactivated) revert ModelDeactivatedAlready(modelId);
    }
}
