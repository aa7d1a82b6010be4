"""Which transmitter sends this node's reports and key proposals on-chain."""

from __future__ import annotations

from oracle.config.network import NetworkConfig
from oracle.node.keys import NodeKeys
from oracle.node.transmission import TransmissionService
from oracle.reporting.transmit import ManagedTransmitter, Web3Transmitter


def make_transmitter(
    config: NetworkConfig, keys: NodeKeys, manager: TransmissionService | None
) -> ManagedTransmitter | Web3Transmitter:
    """Through the node's transaction manager (``[network] transmitter = "manager"``, the
    default), else directly with the operator key (``"direct"``)."""
    if manager is not None:
        return ManagedTransmitter(
            config.rpc_url,
            config.oracle,
            manager.sender,
            manager.running,
            rpc_timeout=config.rpc_timeout_s,
        )
    return Web3Transmitter(
        config.rpc_url,
        config.oracle,
        keys.operator().secret_bytes(),
        rpc_timeout=config.rpc_timeout_s,
    )
