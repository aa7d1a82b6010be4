"""The publish rules of a feed spec's ``[publish]`` section: the one place they are written.
A move counts as a deviation when it is at least ``deviation_bps`` basis points of the last
value *and* at least ``deviation_abs`` (fixed-point units) away from it: the relative rule
fits prices, the absolute floor fits values that live near zero (a return, a score), where
any relative rule fires on every wiggle. The model runner (oracle.models) decides with
them which outputs it marks for publication; the round protocol (oracle.reporting) decides
with the same functions which medians are due on-chain, so the two never disagree.

All arithmetic is on integers (fixed-point feed values): no float rounding can make two
nodes decide differently.
"""

from __future__ import annotations

BPS = 10_000  # basis points in one


def deviates(old: int, new: int, deviation_bps: int, deviation_abs: int = 0) -> bool:
    """Whether ``new`` moved at least ``deviation_bps`` basis points away from ``old``, and
    at least ``deviation_abs`` (fixed-point units; 0: no absolute floor).

    The rule: an unchanged value is never a deviation (whatever ``deviation_bps``);
    ``deviation_bps = 0`` therefore means "every change". Otherwise the move is
    ``|new − old| / |old|``, compared exactly as ``|new − old| · 10⁴ ≥ bps · |old|``; from
    ``old = 0`` every change is a deviation (infinitely many basis points).

    >>> deviates(100, 100, 0), deviates(100, 101, 0), deviates(100, 101, 100)
    (False, True, True)
    >>> deviates(100, 100_000, 10**9), deviates(0, 1, 10**9)
    (False, True)

    Near zero the absolute floor decides: a move from 3 to 5 is 6,667 bps, but under a
    floor of 10 units it is no deviation.

    >>> deviates(3, 5, 50), deviates(3, 5, 50, 10), deviates(3, 13, 50, 10)
    (True, False, True)
    """
    if new == old:
        return False
    if abs(new - old) < deviation_abs:
        return False
    if old == 0:
        return True
    return abs(new - old) * BPS >= deviation_bps * abs(old)


def within_bps(value: int, reference: int, bps: int) -> bool:
    """Whether ``value`` is within ``bps`` basis points of ``reference``:
    ``|value − reference| · 10⁴ ≤ bps · |reference|`` (a zero reference admits only zero).

    >>> within_bps(101, 100, 100), within_bps(102, 100, 100), within_bps(0, 0, 0)
    (True, False, True)
    """
    return abs(value - reference) * BPS <= bps * abs(reference)


def is_due(
    last: int | None,
    last_at: int,
    value: int,
    at: int,
    *,
    deviation_bps: int,
    heartbeat: int,
    deviation_abs: int = 0,
) -> bool:
    """Whether ``value`` observed at ``at`` goes on-chain after ``last`` published at
    ``last_at``: the first value, a heartbeat (``heartbeat`` in the unit of the times), or
    a deviation (:func:`deviates`).

    >>> is_due(None, 0, 5, 1, deviation_bps=50, heartbeat=60)
    True
    >>> [is_due(5, 0, 5, at, deviation_bps=0, heartbeat=60) for at in (59, 60)]
    [False, True]
    """
    return (
        last is None
        or at - last_at >= heartbeat
        or deviates(last, value, deviation_bps, deviation_abs)
    )
