// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibSchnorr} from "../../src/libraries/LibSchnorr.sol";

/// @notice Exposes LibSchnorr to off-chain differential tests (Python signer ↔ Solidity
///         verifier). Test-only: never deployed by the deployment scripts.
contract SchnorrVerifierHarness {
    function challenge(uint256 px, uint8 parity, bytes32 message, address commitment)
        external
        pure
        returns (uint256)
    {
        return LibSchnorr.challenge(px, parity, message, commitment);
    }

    function verify(uint256 px, uint8 parity, bytes32 message, address commitment, uint256 z)
        external
        view
        returns (bool)
    {
        return LibSchnorr.verify(px, parity, message, commitment, z);
    }
}
