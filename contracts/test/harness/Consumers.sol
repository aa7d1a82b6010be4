// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMiraSubscriptions} from "../../src/consumer/IMiraSubscriptions.sol";
import {MiraConsumer} from "../../src/consumer/MiraConsumer.sol";
import {IMiraOracle} from "../../src/interfaces/IMiraOracle.sol";

/// @notice Records every callback: how often, its updates, and the gas it had on entry.
contract RecordingConsumer is MiraConsumer {
    uint256 public calls;
    uint256 public gasAtEntry;
    Update[] internal _last;

    constructor(address oracle) MiraConsumer(oracle) {}

    function _onMiraUpdate(Update[] calldata updates) internal override {
        gasAtEntry = gasleft();
        ++calls;
        delete _last;
        for (uint256 i; i < updates.length; ++i) {
            _last.push(updates[i]);
        }
    }

    function last() external view returns (Update[] memory) {
        return _last;
    }
}

/// @notice Measures the gas it was handed, and does nothing else (fuzzed against the transmitter's gas).
contract GasProbeConsumer is MiraConsumer {
    uint256 public gasAtEntry;

    constructor(address oracle) MiraConsumer(oracle) {}

    function _onMiraUpdate(Update[] calldata) internal override {
        gasAtEntry = gasleft();
    }
}

/// @notice Spends exactly what it is told, then returns: the consumers' own gas in benchmarks.
contract NoopConsumer is MiraConsumer {
    constructor(address oracle) MiraConsumer(oracle) {}

    function _onMiraUpdate(Update[] calldata) internal override {}
}

/// @notice Always reverts, with a message.
contract RevertingConsumer {
    /// @notice Its deployer may subscribe it (IMiraConsumer).
    address public immutable miraSubscriptionManager = msg.sender;

    function miraCallback(MiraConsumer.Update[] calldata) external pure {
        revert("no thanks");
    }
}

/// @notice Loops until its gas runs out.
contract GasBurningConsumer {
    /// @notice Its deployer may subscribe it (IMiraConsumer).
    address public immutable miraSubscriptionManager = msg.sender;

    uint256 public sink;

    function miraCallback(MiraConsumer.Update[] calldata) external {
        while (true) {
            ++sink;
        }
    }
}

/// @notice Returns (and, in a second mode, reverts with) 600 kB of data: a caller that
///         copied it would pay ~750,000 gas of memory for it.
contract ReturnBombConsumer {
    /// @notice Its deployer may subscribe it (IMiraConsumer).
    address public immutable miraSubscriptionManager = msg.sender;

    bool public revertIt;

    function setRevert(bool r) external {
        revertIt = r;
    }

    fallback() external {
        bool r = revertIt;
        assembly {
            if r { revert(0, 600000) }
            return(0, 600000)
        }
    }
}

/// @notice Tries to re-enter the oracle from its callback: transmit and every
///         subscription-changing function. Stores the revert data of each attempt, then
///         either swallows them (so the callback succeeds) or reverts.
contract ReentrantConsumer is MiraConsumer {
    bytes public transmitData;
    bytes[] public revertData;
    bool public swallow = true;
    bytes32 public feed;

    constructor(address oracle, bytes32 feed_) MiraConsumer(oracle) {
        feed = feed_;
    }

    function setSwallow(bool s) external {
        swallow = s;
    }

    function setTransmitData(bytes calldata data) external {
        transmitData = data;
    }

    function revertCount() external view returns (uint256) {
        return revertData.length;
    }

    receive() external payable {}

    function _onMiraUpdate(Update[] calldata) internal override {
        IMiraSubscriptions o = IMiraSubscriptions(miraOracle);
        bytes32[] memory feeds = new bytes32[](1);
        feeds[0] = feed;
        bytes[] memory attempts = new bytes[](8);
        attempts[0] =
            transmitData.length != 0 ? transmitData : abi.encodeWithSelector(IMiraOracle.transmit.selector);
        attempts[1] = abi.encodeCall(o.subscribe, (address(this), feeds, 100_000));
        attempts[2] = abi.encodeCall(o.unsubscribe, (address(this), feeds));
        attempts[3] = abi.encodeCall(o.deposit, (address(this)));
        attempts[4] = abi.encodeCall(o.withdraw, (address(this), payable(address(this)), 1));
        attempts[5] = abi.encodeCall(o.withdrawReimbursement, (payable(address(this))));
        attempts[6] = abi.encodeCall(o.setMaxSubscribers, (4));
        attempts[7] = abi.encodeCall(o.setCallbackPricing, (0, 0));
        for (uint256 i; i < attempts.length; ++i) {
            (bool ok, bytes memory ret) = miraOracle.call(attempts[i]);
            if (ok) ret = "succeeded";
            revertData.push(ret);
        }
        if (!swallow) revert("reentry refused");
    }
}

/// @notice Refuses ether: a withdrawal to it fails.
contract EtherRefuser {}

/// @notice Names a manager only after burning all the gas it is given: reading its consent
///         must cost subscribe a bounded amount.
contract GreedyManagerConsumer {
    function miraCallback(MiraConsumer.Update[] calldata) external {}

    function miraSubscriptionManager() external view returns (address) {
        uint256 i;
        while (true) {
            i += gasleft();
        }
        return address(uint160(i));
    }
}
