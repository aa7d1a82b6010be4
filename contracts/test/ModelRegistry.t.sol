// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Owned} from "../src/Owned.sol";
import {AggregatorV3Interface} from "../src/interfaces/AggregatorV3Interface.sol";
import {IMiraOracle} from "../src/interfaces/IMiraOracle.sol";
import {IModelRegistry} from "../src/interfaces/IModelRegistry.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice An oracle that re-enters the registry from registerFeed: what the registry's own
///         state says at that moment (the real oracle never calls back; this checks the
///         registry orders its effects before its interactions anyway).
contract ReentrantOracle {
    ModelRegistry internal _registry;
    uint256 internal _target;
    bytes[] internal _reverts;

    function owner() external view returns (address) {
        return address(this); // it approves, so its re-entering calls pass the owner check
    }

    function isRegistered(bytes32) external pure returns (bool) {
        return false;
    }

    function approveThrough(ModelRegistry registry, uint256 modelId, uint256 target) external {
        (_registry, _target) = (registry, target);
        registry.approve(modelId, 1);
    }

    function registerFeed(bytes32, uint8, string calldata) external returns (address) {
        // again the model being approved, then another model declaring the same feeds
        for (uint256 i; i < 2; ++i) {
            try _registry.approve(i == 0 ? 1 : _target, 1) {
                _reverts.push("");
            } catch (bytes memory data) {
                _reverts.push(data);
            }
        }
        return address(0);
    }

    function reverts() external view returns (bytes[] memory) {
        return _reverts;
    }
}

/// @notice Issue 17: the model registry. Anyone proposes, the oracle's owner approves (which
///         registers the declared feeds through the oracle's feed registrar), the author
///         publishes versions, the author or the owner deactivates.
contract ModelRegistryTest is OracleFixture {
    ModelRegistry internal registry;
    address internal author = address(0xA07);
    address internal stranger = address(0xBAD);
    bytes32 internal constant HASH = keccak256("spec v1");
    bytes32 internal constant HASH2 = keccak256("spec v2");
    string internal constant URI = "file://models/waterflow.toml";

    function setUp() public {
        _deploy();
        registry = new ModelRegistry(IMiraOracle(address(oracle)));
        vm.prank(owner);
        oracle.setFeedRegistrar(address(registry));
    }

    // ---------------------------------------------------------------- helpers

    function _decl(uint256 count, uint256 salt)
        internal
        pure
        returns (IModelRegistry.FeedDeclaration[] memory d)
    {
        d = new IModelRegistry.FeedDeclaration[](count);
        for (uint256 i; i < count; ++i) {
            d[i] = IModelRegistry.FeedDeclaration({
                feedId: keccak256(abi.encode("model-feed", salt, i)),
                decimals: uint8(6 + i),
                description: "M / USD"
            });
        }
    }

    function _ids(IModelRegistry.FeedDeclaration[] memory d) internal pure returns (bytes32[] memory ids) {
        ids = new bytes32[](d.length);
        for (uint256 i; i < d.length; ++i) {
            ids[i] = d[i].feedId;
        }
    }

    function _propose(IModelRegistry.FeedDeclaration[] memory d) internal returns (uint256 id) {
        vm.prank(author);
        id = registry.propose(HASH, URI, d);
    }

    function _approve(uint256 id, uint256 version) internal {
        vm.prank(owner);
        registry.approve(id, version);
    }

    function _string(uint256 length) internal pure returns (string memory) {
        bytes memory b = new bytes(length);
        for (uint256 i; i < length; ++i) {
            b[i] = "a";
        }
        return string(b);
    }

    // ---------------------------------------------------------------- the oracle's registrar

    function test_onlyTheOwnerSetsTheRegistrar() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, stranger));
        oracle.setFeedRegistrar(stranger);
        vm.prank(owner);
        vm.expectEmit(address(oracle));
        emit IMiraOracle.FeedRegistrarSet(stranger);
        oracle.setFeedRegistrar(stranger);
        vm.assertEq(oracle.feedRegistrar(), stranger, "registrar");
    }

    function test_theRegistrarRegistersFeedsAndNobodyElseButTheOwner() public {
        bytes32 a = keccak256("a");
        bytes32 b = keccak256("b");
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, stranger));
        oracle.registerFeed(a, 8, "A");
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, stranger));
        oracle.registerFeed(a, 8, "A", 10);

        vm.prank(address(registry));
        vm.assertTrue(oracle.registerFeed(a, 8, "A") != address(0), "registrar registers");
        vm.prank(owner);
        oracle.registerFeed(b, 8, "B", 10); // the owner still does
        vm.assertEq(oracle.historyDepthOf(b), 10, "owner's depth");

        // removed: the old registrar is anyone again
        vm.prank(owner);
        oracle.setFeedRegistrar(address(0));
        vm.prank(address(registry));
        vm.expectRevert(abi.encodeWithSelector(Owned.NotOwner.selector, address(registry)));
        oracle.registerFeed(keccak256("c"), 8, "C");
    }

    // ---------------------------------------------------------------- propose

    function test_proposeStoresVersionOneAndEmits() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(3, 1);
        vm.roll(42);
        vm.expectEmit(address(registry));
        emit IModelRegistry.ModelProposed(1, author, HASH, URI, _ids(d));
        uint256 id = _propose(d);
        vm.assertEq(id, 1, "first id");
        vm.assertEq(registry.modelCount(), 1, "count");
        IModelRegistry.Model memory m = registry.modelOf(1);
        vm.assertEq(m.author, author, "author");
        vm.assertEq(m.versionCount, 1, "versions");
        vm.assertEq(m.approvedVersion, 0, "not approved");
        vm.assertFalse(m.deactivated, "active");
        IModelRegistry.Version memory v = registry.versionOf(1, 1);
        vm.assertEq(v.specHash, HASH, "hash");
        vm.assertEq(v.specUri, URI, "uri");
        vm.assertEq(v.proposedBlock, 42, "proposed block");
        vm.assertEq(v.approvedBlock, 0, "approved block");
        IModelRegistry.FeedDeclaration[] memory got = registry.feedsOf(1);
        vm.assertEq(got.length, 3, "feeds");
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(got[i].feedId, d[i].feedId, "feed id, in order");
            vm.assertEq(got[i].decimals, d[i].decimals, "decimals");
            vm.assertEq(got[i].description, d[i].description, "description");
            vm.assertEq(registry.modelOfFeed(d[i].feedId), 0, "a proposal owns no feed");
            vm.assertFalse(oracle.isRegistered(d[i].feedId), "nothing registered before approval");
        }
        vm.assertEq(registry.oracle(), address(oracle), "oracle");
        vm.assertEq(_propose(_decl(1, 2)), 2, "ids count up");
    }

    function test_proposeRejectsBadSpecs() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(1, 1);
        vm.expectRevert(IModelRegistry.InvalidSpecHash.selector);
        registry.propose(bytes32(0), URI, d);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidSpecUri.selector, 0));
        registry.propose(HASH, "", d);
        uint256 tooLong = registry.MAX_URI_LENGTH() + 1;
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidSpecUri.selector, tooLong));
        registry.propose(HASH, _string(tooLong), d);
        registry.propose(HASH, _string(tooLong - 1), d); // the bound itself is fine
    }

    function test_proposeRejectsBadFeedLists() public {
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidFeedCount.selector, 0));
        registry.propose(HASH, URI, _decl(0, 1));
        uint256 max = registry.MAX_FEEDS();
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidFeedCount.selector, max + 1));
        registry.propose(HASH, URI, _decl(max + 1, 1));

        IModelRegistry.FeedDeclaration[] memory d = _decl(3, 1);
        d[1].feedId = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidFeedDeclaration.selector, bytes32(0)));
        registry.propose(HASH, URI, d);

        d = _decl(3, 1);
        d[2].description = _string(registry.MAX_DESCRIPTION_LENGTH() + 1);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidFeedDeclaration.selector, d[2].feedId));
        registry.propose(HASH, URI, d);

        d = _decl(3, 1);
        d[2].feedId = d[0].feedId;
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[0].feedId));
        registry.propose(HASH, URI, d);
        vm.assertEq(registry.modelCount(), 0, "nothing stored");
    }

    // ---------------------------------------------------------------- approve

    function test_approvalRegistersTheFeedsWithWorkingProxies() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(2, 1);
        uint256 id = _propose(d);
        uint256 before = oracle.feedCount();
        vm.roll(100);
        vm.expectEmit(address(registry));
        emit IModelRegistry.VersionApproved(id, 1, HASH);
        _approve(id, 1);
        vm.assertEq(registry.modelOf(id).approvedVersion, 1, "approved");
        vm.assertEq(registry.versionOf(id, 1).approvedBlock, 100, "approved block");
        vm.assertEq(oracle.feedCount(), before + 2, "two feeds registered");
        for (uint256 i; i < 2; ++i) {
            vm.assertEq(registry.modelOfFeed(d[i].feedId), id, "model of feed");
            AggregatorV3Interface proxy = AggregatorV3Interface(oracle.proxyOf(d[i].feedId));
            vm.assertTrue(address(proxy) != address(0), "proxy");
            vm.assertEq(proxy.decimals(), d[i].decimals, "decimals from the declaration");
            vm.assertEq(proxy.description(), d[i].description, "description from the declaration");
        }
        // the committee's next report lands on the new feeds and reads back through the proxy
        uint64 t = uint64(block.timestamp);
        _transmit(1, _nowRound(), _updates(_ids(d), 1234, t));
        (uint80 roundId, int256 answer,, uint256 updatedAt,) =
            AggregatorV3Interface(oracle.proxyOf(d[1].feedId)).latestRoundData();
        vm.assertEq(answer, 1235, "value");
        vm.assertEq(updatedAt, t, "updatedAt");
        vm.assertEq(roundId, (uint80(1) << 64) | 1, "phase 1, round 1");
    }

    function test_onlyTheOraclesOwnerApprovesAndOwnershipFollowsTheOracle() public {
        uint256 id = _propose(_decl(1, 1));
        vm.prank(author);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotOracleOwner.selector, author));
        registry.approve(id, 1);

        address next = address(0x0E2);
        vm.prank(owner);
        oracle.transferOwnership(next);
        // a pending transfer changes nothing
        vm.prank(next);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotOracleOwner.selector, next));
        registry.approve(id, 1);
        vm.prank(next);
        oracle.acceptOwnership();

        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotOracleOwner.selector, owner));
        registry.approve(id, 1);
        vm.prank(next);
        registry.approve(id, 1);
        vm.assertEq(registry.modelOf(id).approvedVersion, 1, "the new owner approved");
    }

    function test_approveRejectsUnknownModelsAndVersions() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 1));
        registry.approve(1, 1);
        uint256 id = _propose(_decl(1, 1));
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownVersion.selector, id, 0));
        registry.approve(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownVersion.selector, id, 2));
        registry.approve(id, 2);
        vm.stopPrank();
    }

    function test_aFeedRegisteredOnTheOracleFailsTheApprovalAndNothingIsRegistered() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(3, 1);
        vm.prank(owner);
        oracle.registerFeed(d[2].feedId, 8, "registered by the owner");
        uint256 id = _propose(d); // a proposal does not look at the oracle
        uint256 before = oracle.feedCount();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[2].feedId));
        registry.approve(id, 1);
        vm.assertEq(oracle.feedCount(), before, "nothing registered");
        vm.assertFalse(oracle.isRegistered(d[0].feedId), "first feed not registered");
        vm.assertEq(registry.modelOfFeed(d[0].feedId), 0, "first feed not taken");
        vm.assertEq(registry.modelOf(id).approvedVersion, 0, "not approved");
    }

    /// @dev The squatting attack: a stranger proposes a model declaring the feeds another
    ///      author is about to declare. The proposal reserves nothing: whichever is approved
    ///      first owns the feeds, and the other's approval fails.
    function test_aProposalCannotSquatFeedIds() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(2, 1);
        vm.prank(stranger);
        uint256 squat = registry.propose(keccak256("junk"), "data:,junk", d);
        uint256 real = _propose(d);
        _approve(real, 1);
        vm.assertEq(registry.modelOfFeed(d[0].feedId), real, "the approved model owns the feed");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[0].feedId));
        registry.approve(squat, 1);

        // the same holds between two models while both are approved: a feed has one owner
        IModelRegistry.FeedDeclaration[] memory e = _decl(2, 2);
        e[1].feedId = d[1].feedId;
        uint256 overlap = _propose(e);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[1].feedId));
        registry.approve(overlap, 1);
        vm.assertFalse(oracle.isRegistered(e[0].feedId), "the other feed stays unregistered");
    }

    function test_versionsAreApprovedInIncreasingOrderAndFeedsRegisterOnce() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(2, 1);
        uint256 id = _propose(d);
        vm.startPrank(author);
        vm.expectEmit(address(registry));
        emit IModelRegistry.VersionPublished(id, 2, HASH2, "data:,v2");
        vm.assertEq(registry.publish(id, HASH2, "data:,v2"), 2, "version 2");
        vm.assertEq(registry.publish(id, keccak256("v3"), "data:,v3"), 3, "version 3");
        vm.stopPrank();
        vm.assertEq(registry.modelOf(id).versionCount, 3, "three versions");
        vm.assertEq(registry.versionOf(id, 2).specHash, HASH2, "v2 hash");
        vm.assertEq(registry.versionOf(id, 3).specUri, "data:,v3", "v3 uri");

        _approve(id, 1);
        uint256 feeds = oracle.feedCount();
        _approve(id, 3);
        vm.assertEq(oracle.feedCount(), feeds, "a later version registers nothing");
        vm.assertEq(registry.modelOf(id).approvedVersion, 3, "v3 approved");
        vm.assertEq(registry.versionOf(id, 2).approvedBlock, 0, "v2 skipped");
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.VersionNotNewer.selector, id, 2, 3));
        registry.approve(id, 2);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.VersionNotNewer.selector, id, 3, 3));
        registry.approve(id, 3);
        vm.stopPrank();
    }

    function test_aFirstApprovalOfALaterVersionRegistersTheFeeds() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(1, 1);
        uint256 id = _propose(d);
        vm.prank(author);
        registry.publish(id, HASH2, URI);
        _approve(id, 2);
        vm.assertTrue(oracle.isRegistered(d[0].feedId), "registered");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.VersionNotNewer.selector, id, 1, 2));
        registry.approve(id, 1);
    }

    /// @dev The owner's cost of the largest approval: MAX_FEEDS feeds with the longest
    ///      descriptions must fit a 30M-gas block with room to spare.
    function test_theLargestApprovalFitsABlock() public {
        uint256 max = registry.MAX_FEEDS();
        IModelRegistry.FeedDeclaration[] memory d = _decl(max, 1);
        for (uint256 i; i < max; ++i) {
            d[i].description = _string(registry.MAX_DESCRIPTION_LENGTH());
        }
        uint256 id = _propose(d);
        vm.prank(owner);
        uint256 before = gasleft();
        registry.approve(id, 1);
        uint256 used = before - gasleft();
        vm.assertLe(used, 25_000_000, "approval gas");
        vm.assertEq(oracle.feedCount(), max, "all registered");
    }

    /// @dev The registry's state is final before it calls the oracle: a re-entering approval
    ///      of the same version, or of another model declaring the same feed, is refused.
    function test_reenteringApprovalsSeeTheApprovalDone() public {
        ReentrantOracle evil = new ReentrantOracle();
        ModelRegistry r = new ModelRegistry(IMiraOracle(address(evil)));
        IModelRegistry.FeedDeclaration[] memory d = _decl(1, 1);
        r.propose(HASH, URI, d);
        uint256 other = r.propose(HASH2, URI, d);
        evil.approveThrough(r, 1, other);
        bytes[] memory reverts = evil.reverts();
        vm.assertEq(reverts.length, 2, "two re-entries");
        vm.assertEq(
            reverts[0],
            abi.encodeWithSelector(IModelRegistry.VersionNotNewer.selector, 1, 1, 1),
            "the version is approved already"
        );
        vm.assertEq(
            reverts[1],
            abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[0].feedId),
            "the feed is taken already"
        );
        vm.assertEq(r.modelOf(other).approvedVersion, 0, "the other model stays unapproved");
    }

    // ---------------------------------------------------------------- publish

    function test_onlyTheAuthorPublishes() public {
        uint256 id = _propose(_decl(1, 1));
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotAuthor.selector, id, owner));
        registry.publish(id, HASH2, URI);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotAuthor.selector, id, stranger));
        registry.publish(id, HASH2, URI);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 7));
        registry.publish(7, HASH2, URI);
    }

    function test_publishChecksTheSpec() public {
        uint256 id = _propose(_decl(1, 1));
        vm.startPrank(author);
        vm.expectRevert(IModelRegistry.InvalidSpecHash.selector);
        registry.publish(id, bytes32(0), URI);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidSpecUri.selector, 0));
        registry.publish(id, HASH2, "");
        uint256 tooLong = registry.MAX_URI_LENGTH() + 1;
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.InvalidSpecUri.selector, tooLong));
        registry.publish(id, HASH2, _string(tooLong));
        vm.stopPrank();
        vm.assertEq(registry.modelOf(id).versionCount, 1, "no version added");
    }

    // ---------------------------------------------------------------- deactivate

    function test_theAuthorOrTheOwnerDeactivatesForGood() public {
        IModelRegistry.FeedDeclaration[] memory d = _decl(1, 1);
        uint256 a = _propose(d);
        uint256 b = _propose(_decl(1, 2));
        _approve(a, 1);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.NotAuthorOrOwner.selector, a, stranger));
        registry.deactivate(a);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 9));
        registry.deactivate(9);

        vm.roll(77);
        vm.prank(author);
        vm.expectEmit(address(registry));
        emit IModelRegistry.ModelDeactivated(a, author);
        registry.deactivate(a);
        vm.prank(owner);
        vm.expectEmit(address(registry));
        emit IModelRegistry.ModelDeactivated(b, owner);
        registry.deactivate(b);

        IModelRegistry.Model memory m = registry.modelOf(a);
        vm.assertTrue(m.deactivated, "deactivated");
        vm.assertEq(m.deactivatedBlock, 77, "deactivated block");
        vm.assertEq(m.approvedVersion, 1, "approval kept for the record");
        // the feed stays registered and owned: a new model cannot take it over
        vm.assertTrue(oracle.isRegistered(d[0].feedId), "feed kept");
        vm.assertEq(registry.modelOfFeed(d[0].feedId), a, "still the model's feed");

        vm.prank(author);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelDeactivatedAlready.selector, a));
        registry.publish(a, HASH2, URI);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelDeactivatedAlready.selector, b));
        registry.approve(b, 1);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.ModelDeactivatedAlready.selector, a));
        registry.deactivate(a);
        vm.assertFalse(oracle.isRegistered(registry.feedsOf(b)[0].feedId), "b never registered");
    }

    // ---------------------------------------------------------------- reads

    function test_readsRejectUnknownIds() public {
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 0));
        registry.modelOf(0);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 1));
        registry.feedsOf(1);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, 1));
        registry.versionOf(1, 1);
        uint256 id = _propose(_decl(1, 1));
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownVersion.selector, id, 0));
        registry.versionOf(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownVersion.selector, id, 2));
        registry.versionOf(id, 2);
        vm.assertEq(registry.modelOfFeed(keccak256("nothing")), 0, "no model");
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Any proposal is either stored exactly as sent or rejected with the error its first
    ///      bad input names, and stores nothing then.
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_proposal(
        uint256 count,
        uint256 uriLength,
        uint256 descLength,
        uint256 dupAt,
        bytes32 salt
    ) public {
        count = bound(count, 0, registry.MAX_FEEDS() + 2);
        uriLength = bound(uriLength, 0, registry.MAX_URI_LENGTH() + 2);
        descLength = bound(descLength, 0, registry.MAX_DESCRIPTION_LENGTH() + 2);
        IModelRegistry.FeedDeclaration[] memory d = new IModelRegistry.FeedDeclaration[](count);
        string memory desc = _string(descLength);
        for (uint256 i; i < count; ++i) {
            d[i] = IModelRegistry.FeedDeclaration(keccak256(abi.encode(salt, i)), uint8(i), desc);
        }
        // sometimes a duplicate of an earlier id
        bool dup = count >= 2 && dupAt % 3 == 0;
        uint256 at = count >= 2 ? 1 + dupAt % (count - 1) : 0;
        if (dup) d[at].feedId = d[0].feedId;
        string memory uri = _string(uriLength);

        bytes memory expected;
        if (uriLength == 0 || uriLength > registry.MAX_URI_LENGTH()) {
            expected = abi.encodeWithSelector(IModelRegistry.InvalidSpecUri.selector, uriLength);
        } else if (count == 0 || count > registry.MAX_FEEDS()) {
            expected = abi.encodeWithSelector(IModelRegistry.InvalidFeedCount.selector, count);
        } else if (descLength > registry.MAX_DESCRIPTION_LENGTH()) {
            expected = abi.encodeWithSelector(IModelRegistry.InvalidFeedDeclaration.selector, d[0].feedId);
        } else if (dup) {
            expected = abi.encodeWithSelector(IModelRegistry.FeedIdTaken.selector, d[0].feedId);
        }
        vm.prank(author);
        if (expected.length != 0) {
            vm.expectRevert(expected);
            registry.propose(HASH, uri, d);
            vm.assertEq(registry.modelCount(), 0, "nothing stored");
            return;
        }
        uint256 id = registry.propose(HASH, uri, d);
        vm.assertEq(registry.versionOf(id, 1).specUri, uri, "uri");
        IModelRegistry.FeedDeclaration[] memory got = registry.feedsOf(id);
        vm.assertEq(got.length, count, "count");
        for (uint256 i; i < count; ++i) {
            vm.assertEq(got[i].feedId, d[i].feedId, "id");
            vm.assertEq(got[i].decimals, d[i].decimals, "decimals");
            vm.assertEq(got[i].description, desc, "description");
        }
    }
}
