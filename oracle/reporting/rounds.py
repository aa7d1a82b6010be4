"""Round numbers: a round is the start of its slot in unix milliseconds.

With a round period of P ms, the round at time t (ms) is ``⌊t / P⌋ · P``. Every member
derives the same round from its clock, and its leader from the slot number ``round // P``.

Why milliseconds rather than the slot number ``⌊t / P⌋``: the contract keeps a feed's
latest round and skips any update whose round is not higher, so round numbers must never go
down. Slot numbers do when an operator raises the period (0.25 s → 1 s divides them by
four: every report would be skipped as stale until the clock caught up, i.e. never), and
they cannot be checked against the block's time on-chain. A millisecond round is the same
number whatever the period: changing the period never moves rounds backwards, and
MiraOracle bounds a report's round by ``(block.timestamp + maxFutureDrift) · 1000``, so a
round signed for the far future (a leaked key) is refused instead of pinning a feed.
"""

from __future__ import annotations

import time

MS_PER_SECOND = 1000


def period_ms(period_s: float) -> int:
    """The round period in whole milliseconds (0.25 s → 250)."""
    ms = round(period_s * MS_PER_SECOND)
    if ms < 1:
        raise ValueError(f"round period {period_s} s is below one millisecond")
    return ms


def round_at(unix_ms: int, period: int) -> int:
    """The round whose slot contains ``unix_ms``."""
    return unix_ms // period * period


def current_round(period: int) -> int:
    return round_at(time.time_ns() // 1_000_000, period)


def slot_of(round_: int, period: int) -> int:
    """The slot number of a round: what the leader and transmitter rotations count."""
    return round_ // period
