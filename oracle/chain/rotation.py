"""The owner's side of a committee rotation without a trusted dealer.

1. :func:`propose_committee`: ``ICommittee.proposeCommittee(t, members)``.
2. The members' nodes see the proposal, run the DKG over p2p and each call
   ``proposeGroupKey`` with the key they derived (oracle.node.keygen, oracle.node.network).
3. :func:`activate_when_proposed`: wait until the members have proposed, then
   ``activateEpoch`` with the key at least t + f of them agree on (f = ⌊(n − 1)/3⌋).

Why t + f and not t (which is all ``activateEpoch`` itself checks): of the members that
proposed a key, up to f may be Byzantine and withhold their shares once the epoch is
active. With t + f matching proposals at least t honest members hold shares of the key,
so the epoch can sign whatever the f others do; with t, f Byzantine proposers could make
it unable to ever sign (and the honest members have left the old epoch). Refusing costs a
rotation's liveness (the owner proposes again, without the members who did not propose),
never the oracle's. The contract does not enforce this rule: the owner's tooling does.

Used by ``mira committee propose|activate``, ``mira devnet up`` and the test harness.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3.contract import Contract

from oracle.chain.oracle_calls import MemberInfo
from oracle.crypto.dkg import agreement_quorum, max_faulty
from oracle.crypto.dkg import default_threshold as default_threshold  # re-exported
from oracle.errors import ChainError

SendFn = Callable[[Any, str], Any]  # (contract function call, what) → receipt; raises on revert


@dataclass(frozen=True)
class KeyProposals:
    """What the pending committee's members proposed so far."""

    epoch: int  # 0: nothing pending
    proposal: int
    threshold: int
    size: int
    by_member: dict[int, tuple[int, int]]  # member index → (px, parity)

    @property
    def quorum(self) -> int:
        """t + f matching proposals (at most n): at least t of them from honest members."""
        return agreement_quorum(self.size, self.threshold)

    def best(self) -> tuple[tuple[int, int] | None, int]:
        """The key most members proposed, and how many did."""
        counts = Counter(self.by_member.values())
        if not counts:
            return None, 0
        key, votes = counts.most_common(1)[0]
        return key, votes

    def why_not(self) -> str:
        """Why no key can be activated yet: who proposed what, who did not propose."""
        _, votes = self.best()
        f = max_faulty(self.size)
        parts = [
            f"epoch {self.epoch}: {votes} of {self.size} members proposed the same group key "
            f"(need {self.quorum}: t = {self.threshold} plus f = {f})"
        ]
        by_key: dict[tuple[int, int], list[int]] = {}
        for member, key in sorted(self.by_member.items()):
            by_key.setdefault(key, []).append(member)
        for key, who in sorted(by_key.items(), key=lambda kv: -len(kv[1])):
            parts.append(f"members {who} proposed {key_hex(key)}")
        missing = sorted(set(range(self.size)) - set(self.by_member))
        if missing:
            parts.append(f"no proposal from members {missing}")
        return "; ".join(parts)


def key_hex(key: tuple[int, int]) -> str:
    """A proposed (px, parity) as its 33-byte compressed point."""
    px, parity = key
    return f"0x{2 + parity:02x}{px:064x}"


def propose_committee(
    oracle: Contract, send: SendFn, threshold: int, members: Sequence[MemberInfo]
) -> tuple[int, int]:
    """Propose the next epoch's committee; returns (epoch, proposal)."""
    if not 1 <= threshold <= len(members):
        raise ChainError(f"threshold {threshold} is not between 1 and {len(members)} members")
    send(
        oracle.functions.proposeCommittee(threshold, [m.as_tuple() for m in members]),
        "proposing the committee",
    )
    epoch, proposal, _, _ = oracle.functions.pendingCommittee().call()
    return int(epoch), int(proposal)


def key_proposals(oracle: Contract) -> KeyProposals:
    epoch, proposal, threshold, members = oracle.functions.pendingCommittee().call()
    by_member: dict[int, tuple[int, int]] = {}
    for i in range(len(members) if int(epoch) else 0):
        px, parity = oracle.functions.proposedGroupKey(i).call()
        if int(px) != 0:
            by_member[i] = (int(px), int(parity))
    return KeyProposals(int(epoch), int(proposal), int(threshold), len(members), by_member)


def activate_when_proposed(
    oracle: Contract,
    send: SendFn,
    *,
    timeout: float,
    poll: float = 0.5,
    progress: Callable[[KeyProposals], None] | None = None,
) -> int:
    """Wait until every member proposed, then activate the key t + f of them proposed;
    at the timeout, activate a key with t + f matching proposals if there is one. Returns
    the new epoch; otherwise raises :class:`ChainError` saying who proposed which key and
    who did not propose."""
    deadline = time.monotonic() + timeout
    while True:
        state = key_proposals(oracle)
        if state.epoch == 0:
            raise ChainError("no committee proposal is pending (propose one first)")
        if progress is not None:
            progress(state)
        key, votes = state.best()
        everyone = len(state.by_member) == state.size
        expired = time.monotonic() >= deadline
        if key is not None and votes >= state.quorum and (everyone or expired):
            send(oracle.functions.activateEpoch(*key), "activating the epoch")
            return int(oracle.functions.currentEpoch().call())
        if expired or everyone:  # everyone proposed and no key has t + f: waiting is vain
            raise ChainError(state.why_not())
        time.sleep(poll)
