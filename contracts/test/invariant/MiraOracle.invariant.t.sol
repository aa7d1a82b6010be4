// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {OracleFixture} from "../utils/OracleFixture.sol";
import {OracleHandler} from "./OracleHandler.sol";

/// @notice Properties of MiraOracle under random sequences of valid, stale and forged reports.
contract MiraOracleInvariantTest is OracleFixture {
    OracleHandler internal handler;

    function setUp() public {
        _deploy();
        bytes32[] memory registered = _register(4);
        bytes32[4] memory ids = [registered[0], registered[1], registered[2], registered[3]];
        handler = new OracleHandler(oracle, groupSecret, owner, ids, block.timestamp);
        targetContract(address(handler));
    }

    /// @notice Only validly signed reports change state.
    function invariant_onlyValidSignaturesChangeState() public view {
        vm.assertEq(handler.invalidChangedState(), 0, "an invalid report changed state");
    }

    /// @notice A feed's latest round never decreases.
    function invariant_roundsNeverDecrease() public view {
        vm.assertEq(handler.roundsDecreased(), 0, "a feed's latest round decreased");
    }

    /// @notice A feed's latest time never decreases (the latest observedAt, checked against the
    ///         feed's latest, not the ring entry an update replaces).
    function invariant_timesNeverDecrease() public view {
        vm.assertEq(handler.timesDecreased(), 0, "a feed's latest time decreased");
    }

    /// @notice A feed's value or time changes only with a new, higher round.
    function invariant_noChangeWithoutNewRound() public view {
        vm.assertEq(handler.valueChangedInPlace(), 0, "a feed changed without a new round");
    }

    /// @notice Whatever reports came before (pinning ones included), the owner's delayed reset
    ///         always makes the feed accept the committee's current round again.
    function invariant_ownerCanAlwaysRecoverAFeed() public view {
        vm.assertEq(handler.unrecoverable(), 0, "a feed stayed stuck after the owner's reset");
    }

    /// @notice A skipped update leaves its feed untouched.
    function invariant_skippedUpdateLeavesFeedUntouched() public view {
        vm.assertEq(handler.skippedChangedFeed(), 0, "a skipped update changed its feed");
    }

    /// @notice Chainlink round ids: consecutive per feed within a phase, a reset starts the next
    ///         phase, and no round id is ever answered with two different values.
    function invariant_roundIdsConsecutiveAndAnsweredOnce() public view {
        vm.assertEq(handler.idsNotConsecutive(), 0, "round ids not consecutive");
        vm.assertEq(handler.idAnsweredTwice(), 0, "a round id answered with two values");
    }

    /// @notice A reset never changes what an earlier phase's round ids answer, and nothing after
    ///         it does either (valid, pinning and forged reports, arbitrary hints): every round id
    ///         of an ended phase answers as it did just before the reset that ended it.
    function invariant_endedPhasesAnswerAsBeforeTheirReset() public view {
        vm.assertEq(handler.oldPhaseChanged(), 0, "an ended phase's round answered differently");
    }
}
