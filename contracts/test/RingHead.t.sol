// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraFeedProxy} from "../src/MiraFeedProxy.sol";
import {RingScan} from "./harness/RingScan.sol";
import {OracleFixture} from "./utils/OracleFixture.sol";

/// @notice MiraOracle finds a feed's latest entry (its head) by a binary search over the ring
///         (`_head`), which `latestRound`, `latestRoundData` (and so every proxy read) and
///         `ringHints` use. Checked here against the linear scan it replaced (RingScan, reading
///         the oracle's storage directly) and against a model (the count of applied updates in
///         the current phase: the head is seq count at position count % depth), after every
///         transmit and every reset, for random depths, never-updated and unregistered feeds.
contract RingHeadTest is OracleFixture {
    /// @dev three updated feeds of fuzzed depths, one registered but never updated, one never
    ///      registered
    uint256 internal constant UPDATED = 3;
    uint256 internal constant FEEDS = 5;

    uint256 internal ringsSlot;
    uint256 internal t;
    bytes32[] internal feeds;
    MiraFeedProxy[] internal proxies;
    uint256[FEEDS] internal depths;
    /// @dev the model: updates applied in the current phase, and the last value applied
    uint256[FEEDS] internal counts;
    int128[FEEDS] internal lastValues;

    function setUp() public {
        _deploy();
        t = block.timestamp;
        bytes32 probe = keccak256("ring-head probe");
        vm.prank(owner);
        oracle.registerFeed(probe, 8, "PROBE / USD", 77);
        ringsSlot = RingScan.ringsSlot(address(oracle), probe, 77);
    }

    function _registerAll(uint256 d0, uint256 d1, uint256 d2) internal {
        depths = [d0, d1, d2, oracle.DEFAULT_HISTORY_DEPTH(), 0];
        vm.startPrank(owner);
        for (uint256 i; i < FEEDS; ++i) {
            bytes32 id = keccak256(abi.encode("ring-head", i));
            feeds.push(id);
            if (i == FEEDS - 1) {
                proxies.push(MiraFeedProxy(address(0)));
            } else {
                proxies.push(MiraFeedProxy(oracle.registerFeed(id, 8, "HEAD / USD", depths[i])));
            }
        }
        vm.stopPrank();
    }

    /// @dev One report updating the feeds whose bit is set in `mask` (of the first UPDATED).
    function _step(uint256 mask, int128 value) internal {
        uint256 k;
        for (uint256 i; i < UPDATED; ++i) {
            if (mask & (1 << i) != 0) ++k;
        }
        if (k == 0) return;
        vm.warp(++t);
        Update[] memory u = new Update[](k);
        k = 0;
        for (uint256 i; i < UPDATED; ++i) {
            if (mask & (1 << i) == 0) continue;
            int128 v = value + int128(int256(i));
            u[k++] = Update(feeds[i], v, uint64(t), keccak256("model"));
            ++counts[i];
            lastValues[i] = v;
        }
        _transmit(1, uint64(t * 1000), u);
    }

    function _reset(uint256 i) internal {
        vm.prank(owner);
        t = oracle.scheduleFeedReset(feeds[i]);
        vm.warp(t);
        vm.prank(owner);
        oracle.executeFeedReset(feeds[i]);
        counts[i] = 0;
        lastValues[i] = 0;
    }

    /// @dev The search (ringHints, latestRound, latestRoundData direct and through the proxy)
    ///      against the linear scan and the model, for every feed.
    function _check() internal view {
        bytes memory hints = oracle.ringHints(feeds);
        vm.assertEq(hints.length, FEEDS, "one hint per feed");
        for (uint256 i; i < FEEDS; ++i) {
            (uint256 position, uint256 seq, uint256 entry) =
                RingScan.head(address(oracle), ringsSlot, feeds[i]);
            vm.assertEq(uint8(hints[i]), position, "ringHints vs linear scan");
            if (i == FEEDS - 1) {
                vm.assertEq(entry, 0, "unregistered feed: empty storage");
                continue;
            }
            vm.assertEq(seq, counts[i], "linear scan vs model: seq");
            vm.assertEq(position, counts[i] % depths[i], "linear scan vs model: position");
            (uint64 round, int128 value, uint64 observedAt) = oracle.latestRound(feeds[i]);
            vm.assertEq(uint256(round), (entry >> 168) & 0xffffffffffff, "latestRound: round");
            vm.assertEq(int256(value), int256(lastValues[i]), "latestRound: value");
            vm.assertEq(uint256(observedAt), (entry >> 128) & 0x7fffffffff, "latestRound: observedAt");
            uint256 roundId = (uint256(oracle.phaseOf(feeds[i])) << 64) | seq;
            (uint80 id, int256 answer,, uint256 updatedAt, uint80 answeredIn) =
                oracle.latestRoundData(feeds[i]);
            vm.assertEq(uint256(id), roundId, "latestRoundData: roundId");
            vm.assertEq(uint256(answeredIn), roundId, "latestRoundData: answeredInRound");
            vm.assertEq(answer, int256(lastValues[i]), "latestRoundData: answer");
            vm.assertEq(updatedAt, uint256(observedAt), "latestRoundData: updatedAt");
            (id, answer,,,) = proxies[i].latestRoundData();
            vm.assertEq(uint256(id), roundId, "proxy latestRoundData: roundId");
            vm.assertEq(answer, int256(lastValues[i]), "proxy latestRoundData: answer");
        }
    }

    /// @dev Random depths, random subsets of feeds per report, occasional resets (new phases,
    ///      some of empty rings), checked after every step. Up to 280 steps: the deepest rings wrap.
    /// forge-config: default.fuzz.runs = 32
    /// forge-config: ci.fuzz.runs = 64
    function testFuzz_headMatchesLinearScan(uint256 seed) public {
        _registerAll(bound(seed, 2, 127), bound(seed >> 8, 2, 127), bound(seed >> 16, 2, 9));
        _check();
        uint256 steps = bound(seed >> 24, 0, 280);
        for (uint256 s; s < steps; ++s) {
            uint256 r = uint256(keccak256(abi.encode(seed, s)));
            if (r % 61 == 0) _reset((r >> 8) % UPDATED);
            else _step((r >> 16) % 8, int128(int256((r >> 32) % 2e12)) - 1e12);
            _check();
        }
    }

    /// @dev Every head position of the boundary depths, through two full laps and a reset.
    function test_headAtEveryPositionOfBoundaryDepths() public {
        _registerAll(2, 3, 127);
        for (uint256 s; s < 2 * 127 + 2; ++s) {
            _step(s < 8 ? 7 : 4, int128(int256(s)) - 100);
            _check();
        }
        _reset(2);
        _check();
        _step(7, 5);
        _check();
    }
}

/// @notice Gas of one latest-value read on a ring that has wrapped, with the oracle's and the
///         proxy's storage and accounts cold (as in a consumer's own transaction), direct and
///         through the feed's proxy (what a Chainlink consumer calls). Printed with -vv; the
///         bounds are far below the scan of every slot this replaced (~130k at depth 61).
///         Not in `.gas-snapshot` (GasTest): that file records the transmit path.
contract LatestReadGasBench is OracleFixture {
    /// @dev forge prints it with -vv
    event log_named_uint(string key, uint256 val);

    function _filled(uint256 depth) internal returns (bytes32 feed, MiraFeedProxy proxy) {
        feed = keccak256(abi.encode("read-gas", depth));
        vm.prank(owner);
        proxy = MiraFeedProxy(oracle.registerFeed(feed, 8, "GAS / USD", depth));
        uint256 t = block.timestamp;
        for (uint256 i = 1; i <= 2 * depth + 5; ++i) {
            vm.warp(++t);
            _transmit(1, uint64(t * 1000), _one(feed, int128(int256(i)), uint64(t)));
        }
    }

    function _measure(uint256 depth, uint256 bound_) internal {
        _deploy();
        (bytes32 feed, MiraFeedProxy proxy) = _filled(depth);
        vm.cool(address(oracle));
        vm.cool(address(proxy));
        uint256 before = gasleft();
        proxy.latestRoundData();
        uint256 viaProxy = before - gasleft();
        vm.cool(address(oracle));
        before = gasleft();
        oracle.latestRoundData(feed);
        uint256 direct = before - gasleft();
        emit log_named_uint(string.concat("latestRoundData via proxy, depth ", vm_toString(depth)), viaProxy);
        emit log_named_uint(string.concat("latestRoundData direct, depth ", vm_toString(depth)), direct);
        vm.assertLe(viaProxy, bound_, "latestRoundData through the proxy");
        vm.assertLe(direct, bound_, "latestRoundData direct");
    }

    function test_latestRoundDataGasDepth2() public {
        _measure(2, 20_000);
    }

    function test_latestRoundDataGasDepth61() public {
        _measure(61, 30_000);
    }

    function test_latestRoundDataGasDepth127() public {
        _measure(127, 30_000);
    }
}
