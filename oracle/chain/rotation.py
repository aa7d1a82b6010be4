"""The owner's side of a committee rotation without a trusted dealer.

1. :func:`propose_committee`: ``ICommittee.proposeCommittee(t, members)``.
2. The members' nodes see the proposal, run the DKG over p2p and each call
   ``proposeGroupKey`` with the key they derived (oracle.node.keygen, oracle.node.network).
3. :func:`activate_when_proposed`: wait until the members have proposed, then
   ``activateEpoch`` with the key at least t of them agree on.

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

    def best(self) -> tuple[tuple[int, int] | None, int]:
        """The key most members proposed, and how many did."""
        counts = Counter(self.by_member.values())
        if not counts:
            return None, 0
        key, votes = counts.most_common(1)[0]
        return key, votes


def default_threshold(n: int) -> int:
    """t = 2f + 1 for the largest f with n ≥ 3f + 1."""
    return 2 * ((n - 1) // 3) + 1


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
    wait_for_all: bool = True,
    progress: Callable[[KeyProposals], None] | None = None,
) -> int:
    """Wait until every member (``wait_for_all``) or at least t members proposed the same
    group key, then activate it; returns the new epoch. At the timeout, a key with t
    proposals is still activated; fewer raise :class:`ChainError` naming who is missing."""
    deadline = time.monotonic() + timeout
    while True:
        state = key_proposals(oracle)
        if state.epoch == 0:
            raise ChainError("no committee proposal is pending (propose one first)")
        if progress is not None:
            progress(state)
        key, votes = state.best()
        enough = votes >= (state.size if wait_for_all else state.threshold)
        expired = time.monotonic() >= deadline
        if key is not None and (enough or (expired and votes >= state.threshold)):
            send(oracle.functions.activateEpoch(*key), "activating the epoch")
            return int(oracle.functions.currentEpoch().call())
        if expired:
            missing = sorted(set(range(state.size)) - set(state.by_member))
            raise ChainError(
                f"epoch {state.epoch}: {votes} of {state.size} members proposed the same "
                f"group key (need {state.threshold}); no proposal from members {missing}"
            )
        time.sleep(poll)
