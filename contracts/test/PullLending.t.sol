// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PullLendingMarket} from "../src/examples/PullLendingMarket.sol";
import {IMiraPullVerifier} from "../src/interfaces/IMiraPullVerifier.sol";
import {MiraPullConsumer} from "../src/pull/MiraPullConsumer.sol";
import {PullFixture} from "./utils/PullFixture.sol";

contract PullLendingTest is PullFixture {
    PullLendingMarket internal market;
    address internal alice = address(0xA1);

    function setUp() public {
        _deployPull();
        // feed 3 of the fixture's trees is ETH / USD here (value 3000e8 + 3, 8 decimals)
        market = new PullLendingMarket(verifier, _pullFeedId(3), 8, 120, 5000);
        vm.deal(alice, 10 ether);
        vm.prank(alice);
        market.deposit{value: 2 ether}();
    }

    function test_borrowsAgainstThePulledPrice() public {
        Tree memory t = _tree(16, _nowRound(), uint64(block.timestamp));
        bytes memory p = _payload(1, t, _range(2, 3)); // feeds 2, 3, 4: the market picks its own
        // 2 ETH at 3000.00000003 USD, 50%: 3000.00000003 USD
        uint256 limit = uint256(2 ether) * uint256(int256(t.leaves[3].value)) / 1e18 * 5000 / 10_000;
        vm.prank(alice);
        market.borrow(limit, p);
        vm.assertEq(market.debtOf(alice), limit, "debt");
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(PullLendingMarket.InsufficientCollateral.selector, limit + 1, limit)
        );
        market.borrow(1, p);
    }

    function test_refusesAPayloadWithoutItsFeed() public {
        Tree memory t = _tree(16, _nowRound(), uint64(block.timestamp));
        bytes memory p = _payload(1, t, _idx1(5));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MiraPullConsumer.FeedNotInPayload.selector, _pullFeedId(3)));
        market.borrow(1, p);
    }

    function test_refusesAStalePrice() public {
        uint64 old = uint64(block.timestamp - 121);
        Tree memory t = _tree(16, _nowRound(), old);
        bytes memory p = _payload(1, t, _idx1(3));
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IMiraPullVerifier.StaleValue.selector, _pullFeedId(3), old, 120)
        );
        market.borrow(1, p);
    }

    function test_refusesATamperedPrice() public {
        Tree memory t = _tree(16, _nowRound(), uint64(block.timestamp));
        Proof memory proof = _multiproof(t, _idx1(3));
        proof.leaves[0].value *= 100; // a borrower inflating the collateral's price
        bytes memory p =
            _encodePayload(uint64(block.chainid), address(verifier), 1, t, proof, _signRoot(1, t));
        vm.prank(alice);
        (bool ok, bytes memory ret) = address(market).call(abi.encodeCall(market.borrow, (1e8, p)));
        vm.assertFalse(ok, "tampered price accepted");
        vm.assertEq(bytes32(bytes4(bytes32(ret))), bytes32(IMiraPullVerifier.RootMismatch.selector), "error");
        vm.assertEq(market.debtOf(alice), 0, "debt");
    }
}
