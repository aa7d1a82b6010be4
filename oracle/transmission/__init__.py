"""Transmission: the transaction manager that carries reports on chain.

One service per key and chain (``TransmissionManager``) with a narrow API: ``enqueue`` a
call under an idempotency key and get an id; ``fate`` tells where it is. Inside, split by
job as in Chainlink's txmgr: broadcaster, confirmer, resender, nonce syncer, fee
estimator, balance monitor, over a pool of RPC endpoints with failover.
"""

from oracle.transmission.config import TxManagerConfig
from oracle.transmission.errors import (
    BadRpcResponse,
    IdempotencyConflict,
    InvalidTransmission,
    QueueFull,
    RpcError,
    RpcUnavailable,
    TransmissionError,
    UnknownTransmission,
)
from oracle.transmission.service import HealthReport, TransmissionManager
from oracle.transmission.states import State, Transmission

__all__ = [
    "BadRpcResponse",
    "HealthReport",
    "IdempotencyConflict",
    "InvalidTransmission",
    "QueueFull",
    "RpcError",
    "RpcUnavailable",
    "State",
    "Transmission",
    "TransmissionError",
    "TransmissionManager",
    "TxManagerConfig",
    "UnknownTransmission",
]
