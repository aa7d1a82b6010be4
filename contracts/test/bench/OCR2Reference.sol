// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {OCR2Base} from "@chainlink/contracts/src/v0.8/shared/ocr2/OCR2Base.sol";

/// @notice The gas benchmark's reference point: Chainlink's OCR2Base, unchanged, with the
///         smallest useful `_report`: decode one int192 and store it. What it costs is what
///         verifying f + 1 ECDSA signatures costs, plus one storage write.
contract OCR2Reference is OCR2Base {
    int192 public latestAnswer;

    constructor() OCR2Base(false) {}

    function typeAndVersion() external pure override returns (string memory) {
        return "OCR2Reference 1.0.0";
    }

    function _beforeSetConfig(uint8, bytes memory) internal override {}

    function _afterSetConfig(uint8, bytes memory) internal override {}

    function _validateReport(bytes32, uint40, bytes memory) internal pure override returns (bool) {
        return true;
    }

    function _report(uint256, address, uint8, address[MAX_NUM_ORACLES] memory, bytes calldata report)
        internal
        override
    {
        latestAnswer = abi.decode(report, (int192));
    }
}
