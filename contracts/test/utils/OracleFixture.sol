// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraOracle} from "../../src/MiraOracle.sol";
import {ICommittee} from "../../src/interfaces/ICommittee.sol";
import {IMiraOracle} from "../../src/interfaces/IMiraOracle.sol";
import {LibSchnorr} from "../../src/libraries/LibSchnorr.sol";
import {Test} from "../lib/Test.sol";
import {Vm} from "../lib/Vm.sol";

/// @notice A deployed oracle with an active epoch whose group key the test holds as one scalar.
///         FROST aggregates to exactly such a signature, so signing with the group secret
///         directly exercises the same verification path as a t-of-n committee.
abstract contract OracleFixture is Test {
    uint256 internal constant N = LibSchnorr.N;
    uint64 internal constant GRACE = 1 hours;
    uint64 internal constant DELAY = 2 days;
    uint256 internal constant MAX_AGE = 1 hours;
    uint256 internal constant MAX_FUTURE = 5 minutes;

    struct Update {
        bytes32 feedId;
        int128 value;
        uint64 observedAt;
        bytes32 modelCommitment;
    }

    address internal owner = address(0xA11CE);
    MiraOracle internal oracle;
    uint256 internal groupSecret;
    uint256 internal groupPx;
    uint8 internal groupParity;
    uint256 internal nonceCounter = 1;

    function _deploy() internal {
        vm.warp(1_700_000_000);
        oracle = new MiraOracle(owner, GRACE, DELAY, MAX_AGE, MAX_FUTURE);
        _startEpoch(0xB0B5EC12E7, 3, 4);
    }

    /// @dev A secret whose public x-coordinate is < N (all but ~2^-128 of them). The first epoch
    ///      starts at once; a later one is scheduled and started after the owner's delay (the
    ///      clock moves DELAY forward).
    function _startEpoch(uint256 secret, uint16 t, uint256 n) internal returns (uint64 epoch) {
        Vm.Wallet memory w = vm.createWallet(secret);
        require(w.publicKeyX < N, "fixture secret has px >= N");
        groupSecret = secret;
        groupPx = w.publicKeyX;
        groupParity = uint8(w.publicKeyY & 1);
        vm.startPrank(owner);
        if (oracle.currentEpoch() == 0) {
            epoch = oracle.startEpoch(groupPx, groupParity, t, _members(n));
        } else {
            (, uint64 eta) = oracle.scheduleEpochStart(groupPx, groupParity, t, _members(n));
            vm.warp(eta);
            epoch = oracle.executeEpochStart();
        }
        vm.stopPrank();
    }

    /// @dev The current time in ms: the round the committee would give a report now.
    function _nowRound() internal view returns (uint64) {
        return uint64(block.timestamp * 1000);
    }

    function _members(uint256 n) internal pure returns (ICommittee.Member[] memory m) {
        m = new ICommittee.Member[](n);
        for (uint256 i; i < n; ++i) {
            m[i] = ICommittee.Member({
                operator: address(uint160(0x1000 + i)),
                identityKey: abi.encodePacked(uint8(2), keccak256(abi.encode(i))),
                p2pUrl: string.concat("http://127.0.0.1:", vm_toString(9000 + i))
            });
        }
    }

    function vm_toString(uint256 v) internal pure returns (string memory s) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 x = v; x != 0; x /= 10) {
            ++len;
        }
        bytes memory b = new bytes(len);
        for (; v != 0; v /= 10) {
            b[--len] = bytes1(uint8(48 + v % 10));
        }
        s = string(b);
    }

    function _feedId(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("feed-", i));
    }

    function _register(uint256 count) internal returns (bytes32[] memory ids) {
        ids = new bytes32[](count);
        vm.startPrank(owner);
        for (uint256 i; i < count; ++i) {
            ids[i] = _feedId(i);
            oracle.registerFeed(ids[i], 8, "TEST / USD");
        }
        vm.stopPrank();
    }

    function _encode(uint64 epoch, uint64 round, Update[] memory updates)
        internal
        pure
        returns (bytes memory r)
    {
        r = abi.encodePacked(epoch, round);
        for (uint256 i; i < updates.length; ++i) {
            Update memory u = updates[i];
            r = abi.encodePacked(r, u.feedId, u.value, u.observedAt, u.modelCommitment);
        }
    }

    /// @dev `a` with `x` appended.
    function _append(Update[] memory a, Update memory x) internal pure returns (Update[] memory b) {
        b = new Update[](a.length + 1);
        for (uint256 i; i < a.length; ++i) {
            b[i] = a[i];
        }
        b[a.length] = x;
    }

    function _one(bytes32 id, int128 value, uint64 observedAt) internal pure returns (Update[] memory u) {
        u = new Update[](1);
        u[0] = Update(id, value, observedAt, keccak256("model"));
    }

    function _updates(bytes32[] memory ids, int128 value, uint64 observedAt)
        internal
        pure
        returns (Update[] memory u)
    {
        u = new Update[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            u[i] =
                Update(ids[i], value + int128(int256(i)), observedAt, keccak256(abi.encode("model", ids[i])));
        }
    }

    /// @dev Schnorr-sign `digest` with the group secret: z = k + e·x mod N.
    function _signDigest(uint256 secret, bytes32 digest) internal returns (IMiraOracle.Signature memory sig) {
        Vm.Wallet memory w = vm.createWallet(secret);
        uint256 k = uint256(keccak256(abi.encode(digest, nonceCounter++))) % (N - 1) + 1;
        sig.px = w.publicKeyX;
        sig.parity = uint8(w.publicKeyY & 1);
        sig.commitment = vm.addr(k);
        uint256 e = LibSchnorr.challenge(sig.px, sig.parity, digest, sig.commitment);
        sig.z = addmod(k, mulmod(e, secret, N), N);
    }

    function _sign(uint64 epoch, bytes memory report) internal returns (IMiraOracle.Signature memory) {
        return _signDigest(groupSecret, oracle.reportDigest(epoch, report));
    }

    function _transmit(uint64 epoch, uint64 round, Update[] memory updates)
        internal
        returns (bytes memory report)
    {
        report = _encode(epoch, round, updates);
        _transmitHinted(report, _sign(epoch, report), updates);
    }

    /// @dev transmit as a node sends it: the ABI call followed by one head-position hint per update.
    function _transmitHinted(bytes memory report, IMiraOracle.Signature memory sig, Update[] memory updates)
        internal
    {
        bytes32[] memory feeds = new bytes32[](updates.length);
        for (uint256 i; i < updates.length; ++i) {
            feeds[i] = updates[i].feedId;
        }
        bytes memory hints = oracle.ringHints(feeds);
        (bool ok, bytes memory ret) =
            address(oracle).call(abi.encodePacked(abi.encodeCall(oracle.transmit, (report, sig)), hints));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }
}
