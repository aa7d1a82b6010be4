"""The network service's key generation for a proposed committee (oracle.node.network)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from eth_utils.crypto import keccak

from oracle.chain.oracle_calls import MemberInfo
from oracle.node.keygen import KeygenError, NetworkDKG, PendingCommittee
from oracle.node.keyshare import load_share, save_share
from oracle.p2p.auth import EpochMembers
from oracle.reporting.transmit import Fate

if TYPE_CHECKING:
    pass
from oracle.node.network_state import NetworkState

log = structlog.get_logger(__name__)


class CommitteeKeygen(NetworkState):
    """Key generation for a proposed committee naming this node: run the DKG over p2p,
    store the share, and propose the group key on-chain once."""

    async def _consider_proposal(
        self, chain_id: int, epoch: int, proposal: int, threshold: int, members: list[MemberInfo]
    ) -> None:
        await self._end_keygen()  # a newer proposal replaces the one we were serving
        identity_keys = tuple(m.identity_key for m in members)
        if self.identity.public_bytes not in identity_keys:
            return  # not ours to run
        me = identity_keys.index(self.identity.public_bytes)
        pending = PendingCommittee(
            epoch, proposal, threshold, self._peers(members), tuple(m.operator for m in members)
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
