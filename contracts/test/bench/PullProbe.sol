// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraPullVerifier} from "../../src/interfaces/IMiraPullVerifier.sol";

/// @notice Several pulls in one transaction, for `mira bench pull-gas`: the marginal gas of a
///         pull under a root already verified in the same transaction is the gas of
///         verifyAll([a, b]) minus that of verifyAll([a]). Test-only.
contract PullProbe {
    IMiraPullVerifier public immutable verifier;

    constructor(IMiraPullVerifier verifier_) {
        verifier = verifier_;
    }

    function verifyAll(bytes[] calldata payloads, uint256 maxAge) external {
        for (uint256 i; i < payloads.length; ++i) {
            verifier.verify(payloads[i], maxAge);
        }
    }
}
