// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Target for the transaction manager's tests on anvil: records each key once and
///         reverts with a custom error on a repeat, so a duplicate delivery is visible on
///         chain and a simulation has a decodable revert to report. Test-only.
contract TransmissionProbe {
    /// @notice `key` was recorded already, in block `atBlock`.
    error AlreadyRecorded(bytes32 key, uint256 atBlock);

    event Recorded(bytes32 indexed key, address indexed sender);

    mapping(bytes32 key => uint256 blockNumber) public recordedAt;
    uint256 public count;

    function record(bytes32 key) external {
        uint256 at = recordedAt[key];
        if (at != 0) revert AlreadyRecorded(key, at);
        recordedAt[key] = block.number;
        ++count;
        emit Recorded(key, msg.sender);
    }
}
