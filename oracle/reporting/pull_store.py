"""The signed pull roots a node keeps, to serve payloads from (``GET /v1/pull``) and to
stream (oracle.api.pull): the newest ``retention`` roots, each with its whole tree.

Memory is bounded by ``retention`` × the tree of one round (2n − 1 hashes and n leaves
for n feeds): a root older than that is forgotten, and a consumer asks for a fresher one
(the verifier refuses stale roots anyway). Roots are kept in round order; one per round
(the first signed root of a round wins: honest followers sign one root per round).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from oracle.reporting.pull import Payload, PullSignature, PullTree, make_payload


@dataclass(frozen=True, slots=True)
class SignedRoot:
    """One round's pull tree and the committee's signature of its digest."""

    chain_id: int
    verifier: bytes
    epoch: int
    tree: PullTree
    signature: PullSignature

    @property
    def round(self) -> int:
        return self.tree.round

    def payload(self, feed_ids: Iterable[bytes]) -> Payload:
        return make_payload(
            self.tree,
            feed_ids,
            chain_id=self.chain_id,
            verifier=self.verifier,
            epoch=self.epoch,
            signature=self.signature,
        )


class PullRoots:
    """The newest signed roots (at most ``retention``), and who to tell of a new one."""

    def __init__(self, retention: int = 64) -> None:
        if retention < 1:
            raise ValueError(f"pull retention {retention}: keep at least one root")
        self.retention = retention
        self._roots: collections.OrderedDict[int, SignedRoot] = collections.OrderedDict()
        self._listeners: list[Callable[[SignedRoot], None]] = []

    def add(self, root: SignedRoot) -> bool:
        """Keep ``root``; False if a root of that round (or an older one than every kept
        root, once full) is already there."""
        r = root.round
        if r in self._roots:
            return False
        if len(self._roots) >= self.retention and r < next(iter(self._roots)):
            return False
        self._roots[r] = root
        if len(self._roots) > 1 and r < next(reversed(self._roots)):
            # a late root of an earlier round: put it in order (rare; bounded by retention)
            self._roots = collections.OrderedDict(sorted(self._roots.items()))
        while len(self._roots) > self.retention:
            self._roots.popitem(last=False)
        for listener in list(self._listeners):
            listener(root)
        return True

    def latest(self, feed_ids: Iterable[bytes] = ()) -> SignedRoot | None:
        """The newest root that carries every one of ``feed_ids``."""
        wanted = list(feed_ids)
        for root in reversed(self._roots.values()):
            if all(root.tree.carries(f) for f in wanted):
                return root
        return None

    def get(self, round_: int) -> SignedRoot | None:
        return self._roots.get(round_)

    def __len__(self) -> int:
        return len(self._roots)

    def subscribe(self, listener: Callable[[SignedRoot], None]) -> Callable[[], None]:
        """Call ``listener`` with each new root; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
