// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraPullVerifier} from "../interfaces/IMiraPullVerifier.sol";

/// @title MiraPullConsumer
/// @notice Base of a contract that takes Mira values in pull mode: its callers pass a payload
///         (from any committee member's `GET /v1/pull?feeds=…`) and the contract verifies it in
///         the same transaction. Several pulls of one root in one transaction pay for its
///         signature once.
abstract contract MiraPullConsumer {
    /// @notice The verifier whose payloads this contract accepts.
    IMiraPullVerifier public immutable pullVerifier;

    /// @notice The verified payload carries no value for `feedId`.
    error FeedNotInPayload(bytes32 feedId);

    constructor(IMiraPullVerifier verifier) {
        pullVerifier = verifier;
    }

    /// @notice Every value of `payload`, verified, each observed at most `maxAge` seconds ago.
    function _pullAll(bytes calldata payload, uint256 maxAge)
        internal
        returns (IMiraPullVerifier.Value[] memory values)
    {
        return pullVerifier.verify(payload, maxAge);
    }

    /// @notice The verified value of `feedId` in `payload`, observed at most `maxAge` seconds
    ///         ago; reverts FeedNotInPayload if the payload does not carry it.
    function _pull(bytes calldata payload, bytes32 feedId, uint256 maxAge)
        internal
        returns (int128 value, uint64 observedAt)
    {
        IMiraPullVerifier.Value[] memory values = pullVerifier.verify(payload, maxAge);
        for (uint256 i; i < values.length; ++i) {
            if (values[i].feedId == feedId) return (values[i].value, values[i].observedAt);
        }
        revert FeedNotInPayload(feedId);
    }
}
