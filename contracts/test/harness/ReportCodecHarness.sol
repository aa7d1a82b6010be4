// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibReport} from "../../src/libraries/LibReport.sol";

/// @notice Exposes LibReport to the Python ↔ Solidity differential tests. Test-only.
contract ReportCodecHarness {
    struct Update {
        bytes32 feedId;
        int128 value;
        uint64 observedAt;
        bytes32 modelCommitment;
    }

    error MalformedReport(uint256 length);

    function decode(bytes calldata report)
        external
        pure
        returns (uint64 epoch, uint64 round, Update[] memory updates)
    {
        uint256 k = LibReport.count(report);
        if (k == 0) revert MalformedReport(report.length);
        (epoch, round) = LibReport.header(report);
        updates = new Update[](k);
        for (uint256 i; i < k; ++i) {
            Update memory u = updates[i];
            (u.feedId, u.value, u.observedAt, u.modelCommitment) = LibReport.update(report, i);
        }
    }

    function digest(uint256 chainId, address oracle, uint64 epoch, bytes calldata report)
        external
        pure
        returns (bytes32)
    {
        return LibReport.digest(chainId, oracle, epoch, report);
    }
}
