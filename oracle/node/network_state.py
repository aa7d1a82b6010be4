"""The network service's shared state (oracle.node.network)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from oracle.chain.oracle_calls import MemberInfo
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import KeyPackage, PublicKeyPackage
from oracle.crypto.group import Point
from oracle.node.keygen import DKGInbox, NetworkDKG
from oracle.node.keys import NetworkSetup
from oracle.node.keyshare import load_share, share_file, shares_dir
from oracle.node.transmission import TransmissionService
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.transport import Peer, Transport
from oracle.reporting.protocol import (
    RoundMetrics,
    RoundProtocol,
)
from oracle.reporting.pull_store import PullRoots
from oracle.reporting.transmit import ManagedTransmitter

if TYPE_CHECKING:
    from oracle.node.feeds import FeedRunner


class NetworkState:
    """What the network service's parts share: the node's pieces it was handed, the
    transport and authenticator, the epochs it serves, and where its key shares are."""

    name = "network"
    identity: IdentityKey  # read at start
    transmitter: ManagedTransmitter  # through the transaction manager, from start

    def __init__(
        self,
        setup: NetworkSetup,
        runners: Mapping[str, FeedRunner],
        transmission: TransmissionService,
    ) -> None:
        self.config = setup.config
        self.keys = setup.keys
        self.engine = setup.engine
        self.runners = runners
        self.transmission = transmission
        self.p2p_metrics = P2PMetrics(setup.registry)
        self.round_metrics = RoundMetrics(setup.registry)
        # what consumers' callbacks have paid this node's transmitter, not yet withdrawn
        # (`mira feed reimbursement --withdraw`); read from the oracle every supervisor step
        self.reimbursement_wei: int | None = None
        self.reimbursement_gauge = Gauge(
            "mira_transmitter_reimbursement_wei",
            "wei of callback reimbursements this node's transmitter can withdraw",
            registry=setup.registry,
        )
        self.protocol: RoundProtocol | None = None
        # signed pull roots outlive an epoch's protocol: served until retention drops them
        self.pull_roots = PullRoots(self.config.pull_retention)
        self.transport: Transport | None = None
        self._listener: socket.socket | None = None  # the p2p port, bound at start
        self.auth: Authenticator | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = "not started"
        self.epoch: int | None = None
        self.members: list[dict[str, Any]] = []
        self._active_members: EpochMembers | None = None
        self._pending_members: EpochMembers | None = None
        self.inbox = DKGInbox()
        self._keygen: NetworkDKG | None = None
        self._keygen_task: asyncio.Task[None] | None = None
        self._keygen_state = ""
        self._keygen_for: tuple[int, int] | None = None  # (epoch, proposal) we run
        self._considered: tuple[int, int] | None = None  # the last proposal looked at
        self._proposed: set[tuple[int, int]] = set()
        self._chain_id: int | None = None

    @property
    def shares_dir(self) -> Path:
        """This chain's and contract's shares (known once the RPC told the chain id)."""
        assert self._chain_id is not None, "the chain id is read before any key share"
        return shares_dir(self.config.keys_dir, self._chain_id, self.config.oracle)

    def _peers(self, members: list[MemberInfo]) -> tuple[Peer, ...]:
        """The members as p2p peers, by index (a member's URL may be overridden by config)."""
        return tuple(
            Peer(i, self.config.peer_url(m.operator, m.p2p_url), m.identity_key)
            for i, m in enumerate(members)
        )

    def _serve(self) -> None:
        assert self.auth is not None
        self.auth.serve_epochs(
            [e for e in (self._active_members, self._pending_members) if e is not None]
        )

    def _share_path(self, epoch: int, proposal: int) -> Path:
        return share_file(self.shares_dir, epoch, proposal)

    def _find_share(
        self, epoch: int, chain_key: Point
    ) -> tuple[KeyPackage, PublicKeyPackage] | None:
        """This node's share of ``epoch``'s on-chain key: from the network DKG, or the
        configured ``share_file`` (a committee provisioned by other means)."""
        candidates = sorted(self.shares_dir.glob(f"epoch-{epoch}-proposal-*.json"))
        if self.config.share_file.exists():
            candidates.append(self.config.share_file)
        for path in candidates:
            key, public = load_share(path, self.identity)
            if public.group_key == chain_key:
                return key, public
        return None
