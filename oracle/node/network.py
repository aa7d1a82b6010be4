"""The network service: joins the epoch's committee on-chain, serves p2p, runs the
reporting rounds over this node's feed outputs and transmits signed reports.

Start-up never blocks the node on the chain: the service bootstraps in the background
(read the epoch, its members and key; check this node's key share matches) and retries
until the RPC answers, so a node started while its RPC is down joins once it is back.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog

from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import KeyPackage, PublicKeyPackage, Signer
from oracle.crypto.group import Point
from oracle.crypto.keystore import KeyStore, read_passphrase
from oracle.crypto.suites import MIRA_EVM
from oracle.node.keyshare import load_share
from oracle.node.service import Health
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import MAX_MESSAGE_BYTES
from oracle.reporting.protocol import (
    EpochContext,
    FeedPolicy,
    ProtocolConfig,
    RoundMetrics,
    RoundProtocol,
)
from oracle.reporting.report import FeedUpdate
from oracle.reporting.store import RoundStore
from oracle.reporting.transmit import ManagedTransmitter, Web3Transmitter
from oracle.storage import SqlUsedNonceLog

if TYPE_CHECKING:
    from oracle.node.feeds import FeedRunner
    from oracle.node.node import Node

log = structlog.get_logger(__name__)


class NodeOutputs:
    """The round protocol's view of this node's feed pipelines."""

    def __init__(self, runners: dict[str, FeedRunner]) -> None:
        self.runners = list(runners.values())

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        out = {}
        for r in self.runners:
            for update in r.latest_updates():  # one per arm for a policy feed
                out[update.feed_id] = update
        return out

    def make_durable(self) -> None:
        for r in self.runners:
            r.pipeline.flush()


class NetworkService:
    name = "network"

    def __init__(self, node: Node) -> None:
        assert node.config.network is not None
        self.node = node
        self.config = node.config.network
        self.p2p_metrics = P2PMetrics(node.registry)
        self.round_metrics = RoundMetrics(node.registry)
        self.protocol: RoundProtocol | None = None
        self.transport: Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = "not started"
        self.epoch: int | None = None
        self.members: list[dict[str, Any]] = []

    async def start(self) -> None:
        cfg = self.config
        passphrase = read_passphrase(cfg.passphrase_file)
        keys = KeyStore(cfg.keys_dir)
        self.identity: IdentityKey = keys.load_identity(passphrase)
        self.operator_secret = keys.load_operator(passphrase).secret_bytes()
        self.key, self.public = load_share(cfg.share_file, self.identity)
        self.transmitter: ManagedTransmitter | Web3Transmitter
        manager = self.node.transmission
        if manager is not None:  # [network] transmitter = "manager" (the default)
            self.transmitter = ManagedTransmitter(
                cfg.rpc_url,
                cfg.oracle,
                manager.sender,
                manager.running,
                rpc_timeout=cfg.rpc_timeout_s,
            )
        else:  # transmitter = "direct"
            self.transmitter = Web3Transmitter(
                cfg.rpc_url, cfg.oracle, self.operator_secret, rpc_timeout=cfg.rpc_timeout_s
            )
        self._state = "bootstrapping"
        self._task = asyncio.create_task(self._bootstrap(), name="network-bootstrap")

    async def _bootstrap(self) -> None:
        attempt = 0
        while True:
            try:
                await self._join()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self._state = f"bootstrapping: {type(exc).__name__}: {exc}"[:300]
                if attempt in (1, 5) or attempt % 30 == 0:
                    log.warning("network.bootstrap_retry", attempt=attempt, error=str(exc)[:300])
                await asyncio.sleep(min(2.0, 0.2 * attempt))

    async def _join(self) -> None:
        tx = self.transmitter
        oracle = tx.contract
        chain_id = await tx.chain_id()
        epoch = int(await oracle.functions.currentEpoch().call())
        if epoch == 0:
            raise RuntimeError("no epoch started on-chain yet")
        px, parity = await oracle.functions.groupKey(epoch).call()
        members = await oracle.functions.members(epoch).call()
        chain_key = Point.deserialize(bytes([2 + int(parity)]) + int(px).to_bytes(32, "big"))
        if chain_key != self.public.group_key:
            raise RuntimeError(f"epoch {epoch}'s group key is not this node's key share's")
        identity_keys = tuple(bytes(m[1]) for m in members)
        me = identity_keys.index(self.identity.public_bytes)
        if me + 1 != self.key.identifier:
            raise RuntimeError(f"member index {me} does not match key share {self.key.identifier}")
        auth = Authenticator(
            chain_id=chain_id,
            committee=bytes.fromhex(self.config.oracle[2:]),
            metrics=self.p2p_metrics,
            max_bytes=MAX_MESSAGE_BYTES,
        )
        auth.serve_epochs([EpochMembers(epoch, identity_keys)])
        peers = tuple(
            Peer(i, str(m[2]).rstrip("/"), identity_keys[i]) for i, m in enumerate(members)
        )
        engine = self.node.storage.engine
        signer = Signer(MIRA_EVM, self.key, self.public, SqlUsedNonceLog(engine))
        ctx = EpochContext(
            chain_id,
            bytes.fromhex(self.config.oracle[2:]),
            epoch,
            peers,
            tuple(str(m[0]) for m in members),
            me,
            self.public,
            signer,
        )
        policies = {}
        for runner in self.node.runners.values():
            spec = runner.spec
            static = runner.pipeline.model.commitment() if spec.model is None else None
            for output in spec.outputs:  # one per arm for a policy feed
                policies[output.id_bytes32] = FeedPolicy(
                    output.id_bytes32,
                    output.id,
                    spec.deviation_bps,
                    spec.heartbeat_s,
                    spec.tolerance_bps,
                    static,
                )
        transport = Transport(
            self.identity.secret_bytes(),
            auth,
            host=self.config.listen_host,
            port=self.config.listen_port,
        )
        await transport.start()
        self.transport = transport
        cfg = ProtocolConfig(
            round_period_s=self.config.round_period_s,
            observe_timeout_s=self.config.observe_timeout_s,
            transmit_timeout_s=self.config.transmit_timeout_s,
            corrupt_signature_shares=self.config.corrupt_signature_shares,
        )
        self.protocol = RoundProtocol(
            ctx,
            transport,
            NodeOutputs(self.node.runners),
            policies,
            tx,
            RoundStore(engine),
            self.round_metrics,
            cfg,
        )
        await self.protocol.start()
        self.epoch = epoch
        self.members = [
            {
                "index": i,
                "operator": str(m[0]),
                "identity_key": "0x" + bytes(m[1]).hex(),
                "p2p_url": str(m[2]),
            }
            for i, m in enumerate(members)
        ]
        self._state = "active"
        log.info(
            "network.joined", epoch=epoch, index=me, n=len(members), threshold=self.public.threshold
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.protocol is not None:
            await self.protocol.stop()
        if self.transport is not None:
            await self.transport.stop()

    def health(self) -> Health:
        return Health(self._state == "active", "" if self._state == "active" else self._state)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self._state, "time": time.time()}
        if self.protocol is not None:
            out.update(self.protocol.status())
            out["members"] = self.members
            out["transmitter"] = self.transmitter.sender
            out["transmit_via"] = self.config.transmitter
        return out


__all__ = ["KeyPackage", "NetworkService", "NodeOutputs", "PublicKeyPackage"]
