"""The network service: follows the committee on-chain, runs the DKG when a committee
naming this node is proposed, serves p2p, runs the reporting rounds over this node's feed
outputs and transmits signed reports.

Start-up never blocks the node on the chain: the supervisor works in the background and
retries until the RPC answers, so a node started while its RPC is down joins once it is
back.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from eth_utils.crypto import keccak

from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import KeyPackage, PublicKeyPackage, Signer
from oracle.crypto.group import Point
from oracle.crypto.keystore import KeyStore, read_passphrase
from oracle.crypto.suites import MIRA_EVM
from oracle.node.keygen import DKGInbox, KeygenError, NetworkDKG, PendingCommittee
from oracle.node.keyshare import load_share, save_share, share_file, shares_dir
from oracle.node.service import Health
from oracle.p2p.auth import Authenticator, EpochMembers, P2PMetrics
from oracle.p2p.transport import Peer, Transport
from oracle.p2p.wire import MAX_MESSAGE_BYTES
from oracle.reporting import rounds
from oracle.reporting.protocol import (
    EpochContext,
    FeedPolicy,
    ProtocolConfig,
    RoundMetrics,
    RoundProtocol,
)
from oracle.reporting.report import FeedUpdate
from oracle.reporting.store import RoundStore
from oracle.reporting.transmit import Fate, ManagedTransmitter
from oracle.storage import SqlUsedNonceLog

if TYPE_CHECKING:
    from oracle.node.feeds import FeedRunner
    from oracle.node.node import Node

log = structlog.get_logger(__name__)

_POLL_S = 1.0  # how often the supervisor reads the committee from the chain


class NodeOutputs:
    """The round protocol's view of this node's feed pipelines."""

    def __init__(self, runners: dict[str, FeedRunner]) -> None:
        self.runners = list(runners.values())
        self._by_output = {o.id_bytes32: r for r in self.runners for o in r.spec.outputs}

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        out = {}
        for r in self.runners:
            for update in r.latest_updates():  # one per arm for a policy feed
                out[update.feed_id] = update
        return out

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        runner = self._by_output.get(feed_id)
        if runner is None:
            return None
        for update in runner.updates_at(observed_at):
            if update.feed_id == feed_id:
                return update
        return None

    def make_durable(self) -> None:
        for r in self.runners:
            r.pipeline.flush()


class NetworkService:
    """Follows the committee on-chain and serves whichever epoch this node has a key for.

    A supervisor loop reads the current epoch and any pending committee proposal every
    ``_POLL_S``. For a proposal naming this node it runs the DKG over p2p
    (:mod:`oracle.node.keygen`), stores the share and proposes the group key on-chain;
    when an epoch this node holds a share for becomes current, it (re)starts the round
    protocol on it, so a rotation needs no restart. Messages of the current and the
    pending epoch are accepted; every other epoch's are refused.
    """

    name = "network"

    def __init__(self, node: Node) -> None:
        assert node.config.network is not None
        self.node = node
        self.config = node.config.network
        self.p2p_metrics = P2PMetrics(node.registry)
        self.round_metrics = RoundMetrics(node.registry)
        self.protocol: RoundProtocol | None = None
        self.transport: Transport | None = None
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

    async def start(self) -> None:
        cfg = self.config
        passphrase = read_passphrase(cfg.passphrase_file)
        keys = KeyStore(cfg.keys_dir)
        self.identity: IdentityKey = keys.load_identity(passphrase)
        manager = self.node.transmission
        assert manager is not None, "the transaction manager starts before the network"
        self.transmitter = ManagedTransmitter(
            cfg.rpc_url,
            cfg.oracle,
            manager.sender,
            manager.running,
            rpc_timeout=cfg.rpc_timeout_s,
        )
        self._state = "bootstrapping"
        self._task = asyncio.create_task(self._supervise(), name="network-supervisor")

    async def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                await self._step()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if self.protocol is None:
                    self._state = f"bootstrapping: {type(exc).__name__}: {exc}"[:300]
                if failures in (1, 5) or failures % 30 == 0:
                    log.warning("network.supervisor_retry", attempt=failures, error=str(exc)[:300])
                await asyncio.sleep(min(2.0, 0.2 * failures))
                continue
            await asyncio.sleep(_POLL_S)

    async def _step(self) -> None:
        tx = self.transmitter
        oracle = tx.contract
        chain_id = await tx.chain_id()
        self._chain_id = chain_id
        await self._ensure_transport(chain_id)
        epoch = int(await oracle.functions.currentEpoch().call())
        p_epoch, proposal, threshold, p_members = await oracle.functions.pendingCommittee().call()
        if int(p_epoch) != 0 and (int(p_epoch), int(proposal)) != self._considered:
            await self._consider_proposal(
                chain_id, int(p_epoch), int(proposal), int(threshold), p_members
            )
            self._considered = (int(p_epoch), int(proposal))
        elif int(p_epoch) == 0 and self._keygen_for is not None and epoch >= self._keygen_for[0]:
            await self._end_keygen()  # activated (or overtaken): stop serving the proposal
        await self._maybe_propose_key()
        if epoch != 0 and epoch != self.epoch:
            await self._enter_epoch(chain_id, epoch)
        elif epoch == 0 and self.protocol is None and self._keygen_for is None:
            self._state = "waiting: no epoch started and no committee proposed on-chain yet"

    async def _ensure_transport(self, chain_id: int) -> None:
        if self.transport is not None:
            return
        self.auth = Authenticator(
            chain_id=chain_id,
            committee=bytes.fromhex(self.config.oracle[2:]),
            metrics=self.p2p_metrics,
            max_bytes=MAX_MESSAGE_BYTES,
            round_span=rounds.period_ms(self.config.round_period_s),
        )
        self.auth.serve_epochs([])
        transport = Transport(
            self.identity.secret_bytes(),
            self.auth,
            host=self.config.listen_host,
            port=self.config.listen_port,
        )
        self.inbox.attach(transport)
        await transport.start()
        self.transport = transport

    def _serve(self) -> None:
        assert self.auth is not None
        self.auth.serve_epochs(
            [e for e in (self._active_members, self._pending_members) if e is not None]
        )

    # -- key generation for a proposed committee ----------------------------------------------

    async def _consider_proposal(
        self, chain_id: int, epoch: int, proposal: int, threshold: int, members: list[Any]
    ) -> None:
        await self._end_keygen()  # a newer proposal replaces the one we were serving
        identity_keys = tuple(bytes(m[1]) for m in members)
        if self.identity.public_bytes not in identity_keys:
            return  # not ours to run
        me = identity_keys.index(self.identity.public_bytes)
        pending = PendingCommittee(
            epoch,
            proposal,
            threshold,
            tuple(
                Peer(i, self.config.peer_url(str(m[0]), str(m[2])), identity_keys[i])
                for i, m in enumerate(members)
            ),
            tuple(str(m[0]) for m in members),
        )
        self._keygen_for = (epoch, proposal)
        if self.protocol is None:
            self._state = f"key generation for epoch {epoch} (see keygen)"
        self._pending_members = EpochMembers(epoch, identity_keys)
        self.inbox.expect(epoch, proposal, identity_keys)  # its members' DKG messages only
        self._serve()
        path = self._share_path(epoch, proposal)
        if path.exists():
            load_share(path, self.identity)  # readable and ours, or KeyShareError
            self._keygen_state = f"key share for epoch {epoch} proposal {proposal} stored"
            return
        assert self.transport is not None
        self._keygen = NetworkDKG(
            self.transport,
            self.inbox,
            chain_id,
            bytes.fromhex(self.config.oracle[2:]),
            pending,
            me,
            self.identity,
            attempt_file=path.with_suffix(".attempt"),
            phase_timeout=self.config.dkg_phase_timeout_s,
            on_status=self._set_keygen_state,
        )
        self._keygen_task = asyncio.create_task(
            self._run_keygen(self._keygen, path), name="network-keygen"
        )
        log.info("network.keygen_started", epoch=epoch, proposal=proposal, index=me, n=len(members))

    def _set_keygen_state(self, state: str) -> None:
        self._keygen_state = state

    async def _run_keygen(self, dkg: NetworkDKG, path: Path) -> None:
        try:
            out = await dkg.run()
        except KeygenError as exc:
            self._keygen_state = f"failed: {exc}"
            log.error("network.keygen_failed", error=str(exc))
            return
        save_share(path, self.identity, out.key, out.public)
        self._keygen_state = (
            f"key share for epoch {dkg.pending.epoch} proposal {dkg.pending.proposal} stored"
        )
        if dkg.progress["left_out"]:
            self._keygen_state += (
                f"; went on without members {dkg.progress['left_out']} (silent in round 1)"
            )

    async def _maybe_propose_key(self) -> None:
        """Propose our DKG's group key on-chain once per proposal (idempotent by key)."""
        if self._keygen_for is None or self._keygen_for in self._proposed:
            return
        epoch, proposal = self._keygen_for
        path = self._share_path(epoch, proposal)
        if not path.exists():
            return
        key, public = load_share(path, self.identity)
        oracle = self.transmitter.contract
        px, _ = await oracle.functions.proposedGroupKey(key.identifier - 1).call()
        if int(px) != 0:
            self._proposed.add(self._keygen_for)
            return
        gk = public.group_key
        result = await self.transmitter.call(
            "proposeGroupKey",
            [epoch, gk.x, gk.parity],
            key=bytes(keccak(b"proposeGroupKey" + path.name.encode())),
        )
        if result.fate in (Fate.LANDED, Fate.ALREADY_APPLIED):
            self._proposed.add(self._keygen_for)
            log.info("network.group_key_proposed", epoch=epoch, proposal=proposal)
        else:
            log.warning(
                "network.group_key_proposal_failed", fate=result.fate.value, detail=result.detail
            )

    async def _end_keygen(self) -> None:
        if self._keygen_task is not None:
            self._keygen_task.cancel()
            await asyncio.gather(self._keygen_task, return_exceptions=True)
        if self._keygen is not None:
            await self._keygen.close()
        self._keygen = self._keygen_task = None
        self._keygen_for = None
        self._pending_members = None
        self.inbox.clear()
        if self.auth is not None:
            self._serve()

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

    # -- serving an epoch -------------------------------------------------------------------

    async def _enter_epoch(self, chain_id: int, epoch: int) -> None:
        oracle = self.transmitter.contract
        px, parity = await oracle.functions.groupKey(epoch).call()
        members = await oracle.functions.members(epoch).call()
        chain_key = Point.deserialize(bytes([2 + int(parity)]) + int(px).to_bytes(32, "big"))
        identity_keys = tuple(bytes(m[1]) for m in members)
        if self.identity.public_bytes not in identity_keys:
            await self._leave_epoch()
            self.epoch = epoch
            self._state = f"idle: not a member of epoch {epoch}"
            return
        me = identity_keys.index(self.identity.public_bytes)
        found = self._find_share(epoch, chain_key)
        if found is None:
            if self.protocol is None:
                self._state = f"waiting: no key share for epoch {epoch}'s group key"
            return  # keep serving the old epoch (in its grace period) until one appears
        key, public = found
        if me + 1 != key.identifier:
            raise RuntimeError(f"member index {me} does not match key share {key.identifier}")
        await self._leave_epoch()
        self._active_members = EpochMembers(epoch, identity_keys)
        self._serve()
        peers = tuple(
            Peer(i, self.config.peer_url(str(m[0]), str(m[2])), identity_keys[i])
            for i, m in enumerate(members)
        )
        engine = self.node.storage.engine
        signer = Signer(MIRA_EVM, key, public, SqlUsedNonceLog(engine))
        ctx = EpochContext(
            chain_id,
            bytes.fromhex(self.config.oracle[2:]),
            epoch,
            peers,
            tuple(str(m[0]) for m in members),
            me,
            public,
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
                    # two honest members' latest outputs are about a poll interval apart
                    max_skew_s=math.ceil(2 * spec.poll_interval_s) + 2,
                )
        cfg = ProtocolConfig(
            round_period_s=self.config.round_period_s,
            observe_timeout_s=self.config.observe_timeout_s,
            transmit_timeout_s=self.config.transmit_timeout_s,
        )
        assert self.transport is not None
        self.protocol = RoundProtocol(
            ctx,
            self.transport,
            NodeOutputs(self.node.runners),
            policies,
            self.transmitter,
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
            "network.joined", epoch=epoch, index=me, n=len(members), threshold=public.threshold
        )

    async def _leave_epoch(self) -> None:
        if self.protocol is not None:
            await self.protocol.stop()
            self.protocol = None
        self._active_members = None
        if self.auth is not None:
            self._serve()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._end_keygen()
        await self._leave_epoch()
        if self.transport is not None:
            await self.transport.stop()

    def health(self) -> Health:
        return Health(self._state == "active", "" if self._state == "active" else self._state)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self._state, "time": time.time()}
        if self._keygen_for is not None or self._keygen_state:
            out["keygen"] = {
                "epoch": None if self._keygen_for is None else self._keygen_for[0],
                "proposal": None if self._keygen_for is None else self._keygen_for[1],
                "state": self._keygen_state,
            }
            if self._keygen is not None:  # whom the DKG waits for, whom it went on without
                out["keygen"] |= {
                    k: self._keygen.progress[k]
                    for k in ("attempt", "phase", "waiting_for", "left_out")
                }
        if self.protocol is not None:
            out.update(self.protocol.status())
            out["members"] = self.members
            out["transmitter"] = self.transmitter.sender
        return out


__all__ = ["KeyPackage", "NetworkService", "NodeOutputs", "PublicKeyPackage"]
