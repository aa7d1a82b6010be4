"""Faults injected from the tests into otherwise unchanged node code: no production
config or protocol code carries a switch for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oracle.crypto.frost import SignatureShare, Signer, SigningRound
from oracle.crypto.group import N
from oracle.reporting import leader
from oracle.reporting.report import FeedUpdate

_honest_sign = Signer.sign


def _faulty_sign(self: Signer, round_: SigningRound) -> SignatureShare:
    """Sign as the honest signer does (the nonce pair is used and logged), then send
    z + 1: a share that fails the leader's check zᵢ·G = Rᵢ + c·λᵢ·Yᵢ, so the leader must
    name this member and finish the round without it."""
    share = _honest_sign(self, round_)
    return SignatureShare(share.identifier, (share.z + 1) % N)


class FaultySigner(Signer):
    """A member whose every signature share is invalid (for in-process committees)."""

    sign = _faulty_sign


def install_faulty_signer() -> None:
    """Make every :class:`Signer` of this process faulty: for a node process started
    through :mod:`tests.harness.faulty_node`, which builds its signer itself."""
    Signer.sign = _faulty_sign  # type: ignore[method-assign]


def _highest(values: list[tuple[int, int, FeedUpdate]]) -> FeedUpdate:
    return max(values, key=lambda v: v[0])[2]


def install_lying_leader() -> None:
    """In the rounds this process leads, propose the highest observed value (its own, when
    it lies upward) as the "median". Run it with a feed spec whose tolerance accepts every
    member (``tolerance_bps = 10000``), so it proposes to the honest followers instead of
    finding too few agreeing signers: they must refuse (the report is not the median of
    the signed observations it embeds) and name it."""
    median: Callable[[list[tuple[int, int, FeedUpdate]]], FeedUpdate] = _highest
    # the leader's median only (oracle.reporting.leader): as a follower it stays honest
    leader.lower_median = median  # type: ignore[assignment]


FAULTS: dict[str, Callable[[], None]] = {
    "bad-shares": install_faulty_signer,
    "lying-leader": install_lying_leader,
}


def model_error_on_call(model: Any, call: int, message: str) -> None:
    """Make ``model``'s (a FeedModel's) ``call``-th step from now raise ModelError with
    ``message`` before it runs; every other step runs as before. (A step's first half,
    ``begin``, is what consumes an observation, for the pipeline and ``step`` alike.)"""
    from oracle.models import ModelError

    begin = model.begin
    calls = 0

    def failing_begin(record: dict[str, float], at: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise ModelError(message)
        return begin(record, at)

    model.begin = failing_begin
