"""The node's own keys for ``[network]``, read from its keystore once and handed to the
services that sign with them: the operator key to the transaction manager, the identity
key to the network service (p2p and DKG).

:class:`NetworkSetup` is what the node hands each ``[network]`` service.

One reader, so the passphrase is read and each key decrypted in one place, whichever
service starts first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.config.network import NetworkConfig
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.keystore import KeyStore, OperatorKey, read_passphrase


class NodeKeys:
    """Loads each key on first use (a service's start), then keeps it."""

    def __init__(self, keys_dir: Path, passphrase_file: Path | None) -> None:
        self._store = KeyStore(keys_dir)
        self._passphrase_file = passphrase_file
        self._passphrase: bytes | None = None
        self._operator: OperatorKey | None = None
        self._identity: IdentityKey | None = None

    def _read_passphrase(self) -> bytes:
        if self._passphrase is None:
            self._passphrase = read_passphrase(self._passphrase_file)
        return self._passphrase

    def operator(self) -> OperatorKey:
        """The operator key: the account that sends this node's transactions."""
        if self._operator is None:
            self._operator = self._store.load_operator(self._read_passphrase())
        return self._operator

    def identity(self) -> IdentityKey:
        """The identity key: signs this node's p2p messages and receives its DKG shares."""
        if self._identity is None:
            self._identity = self._store.load_identity(self._read_passphrase())
        return self._identity


@dataclass(frozen=True)
class NetworkSetup:
    """What each ``[network]`` service gets from the node: the section, the keys, the
    database and the metrics registry (and nothing else of the node)."""

    config: NetworkConfig
    keys: NodeKeys
    engine: Engine
    registry: CollectorRegistry
