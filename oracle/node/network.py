"""The network service: follows the committee on-chain, runs the DKG when a committee
naming this node is proposed, serves p2p, runs the reporting rounds over this node's feed
outputs and transmits signed reports.

Start-up never blocks the node on the chain: the supervisor works in the background and
retries until the RPC answers, so a node started while its RPC is down joins once it is
back.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog

from oracle.chain.oracle_calls import MemberInfo
from oracle.chain.rpc import close_async_web3
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.frost import KeyPackage, PublicKeyPackage
from oracle.node.transmission import STARTUP_BACKOFF
from oracle.p2p.auth import Authenticator
from oracle.p2p.transport import Transport, listen_socket
from oracle.p2p.wire import MAX_MESSAGE_BYTES
from oracle.reporting import rounds
from oracle.retry import wait_after_failure
from oracle.service import Health

if TYPE_CHECKING:
    pass
from oracle.node.network_epoch import EpochServing, NodeOutputs
from oracle.node.network_keygen import CommitteeKeygen
from oracle.reporting.transmit import ManagedTransmitter

log = structlog.get_logger(__name__)

_POLL_S = 1.0  # how often the supervisor reads the committee from the chain


class NetworkService(CommitteeKeygen, EpochServing):
    """Follows the committee on-chain and serves whichever epoch this node has a key for.

    A supervisor loop reads the current epoch and any pending committee proposal every
    ``_POLL_S``. For a proposal naming this node it runs the DKG over p2p
    (:mod:`oracle.node.keygen`), stores the share and proposes the group key on-chain;
    when an epoch this node holds a share for becomes current, it (re)starts the round
    protocol on it, so a rotation needs no restart. Messages of the current and the
    pending epoch are accepted; every other epoch's are refused.

    The jobs live apart: following the committee here, key generation in
    :mod:`oracle.node.network_keygen`, serving an epoch in :mod:`oracle.node.network_epoch`;
    reports and key proposals go out through the node's transaction manager.
    """

    async def start(self) -> None:
        cfg = self.config
        self.identity: IdentityKey = self.keys.identity()
        # the p2p port is taken now, before anything waits on the chain: a port in use
        # stops the node here (ListenError) rather than leaving it up and deaf
        self._listener = listen_socket(cfg.listen_host, cfg.listen_port)
        manager = self.transmission
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
                await wait_after_failure(
                    failures, STARTUP_BACKOFF, log, "network.supervisor_retry", exc
                )
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
            members = [MemberInfo.from_chain(m) for m in p_members]
            await self._consider_proposal(
                chain_id, int(p_epoch), int(proposal), int(threshold), members
            )
            self._considered = (int(p_epoch), int(proposal))
        elif int(p_epoch) == 0 and self._keygen_for is not None and epoch >= self._keygen_for[0]:
            await self._end_keygen()  # activated (or overtaken): stop serving the proposal
        await self._maybe_propose_key()
        await self._read_reimbursement()
        if epoch != 0 and epoch != self.epoch:
            await self._enter_epoch(chain_id, epoch)
        elif epoch == 0 and self.protocol is None and self._keygen_for is None:
            self._state = "waiting: no epoch started and no committee proposed on-chain yet"

    async def _read_reimbursement(self) -> None:
        """The transmitter's withdrawable reimbursement, for status and metrics. A failed
        read (an oracle deployed before subscriptions existed) leaves it unknown."""
        tx = self.transmitter
        try:
            owed = int(await tx.contract.functions.reimbursementOf(tx.sender).call())
        except Exception as exc:
            log.debug("network.reimbursement_unread", error=str(exc)[:200])
            return
        self.reimbursement_wei = owed
        self.reimbursement_gauge.set(owed)

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
            sock=self._listener,
        )
        self.inbox.attach(transport)
        await transport.start()
        self.transport = transport

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._end_keygen()
        await self._leave_epoch()
        if self.transport is not None:
            await self.transport.stop()
        elif self._listener is not None:  # stopped before the chain was ever read
            self._listener.close()
        transmitter = getattr(self, "transmitter", None)  # None: stopped before it started
        if transmitter is not None:
            await close_async_web3(transmitter.w3)

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
            # a decimal string: wei exceeds JavaScript's safe integers
            owed = self.reimbursement_wei
            out["reimbursement_wei"] = None if owed is None else str(owed)
        return out


__all__ = ["KeyPackage", "NetworkService", "NodeOutputs", "PublicKeyPackage"]
