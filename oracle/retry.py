"""Retrying with backoff: the one schedule and the one loop every retry in Mira uses (an
HTTP source's fetch, a DKG message's delivery, a service's start-up against a chain that
may not answer yet).

The delay grows geometrically up to a cap, so a peer or endpoint that is down costs a few
requests a second at first and one per ``cap_s`` after, and one that comes back is found
again within ``cap_s``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

_T = TypeVar("_T")


@dataclass(frozen=True)
class Backoff:
    """Wait ``first_s`` before the first retry, ``factor`` times longer before each next
    one, never more than ``cap_s``.

    >>> [Backoff(0.1, 2.0, cap_s=0.5).delay(k) for k in (1, 2, 3, 4)]
    [0.1, 0.2, 0.4, 0.5]
    """

    first_s: float
    factor: float = 2.0
    cap_s: float = math.inf

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        return min(self.cap_s, self.first_s * self.factor ** (retry - 1))


async def retry(
    call: Callable[[], Awaitable[_T]],
    *,
    backoff: Backoff,
    attempts: int,
    retryable: Callable[[Exception], bool],
) -> _T:
    """``await call()`` until it returns, at most ``attempts`` times, waiting out
    ``backoff`` after each failure ``retryable`` accepts. A failure it does not accept,
    and the last attempt's failure, propagate."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if attempt >= attempts or not retryable(exc):
                raise
        await asyncio.sleep(backoff.delay(attempt))
    raise ValueError(f"attempts must be at least 1, got {attempts}")


async def wait_after_failure(
    failures: int, backoff: Backoff, log: structlog.typing.FilteringBoundLogger, event: str,
    exc: BaseException,
) -> None:  # fmt: skip
    """For a loop that never gives up (a service waiting for its chain): log the 1st, the
    5th and every 30th consecutive failure, not each (an endpoint down for an hour must not
    flood the log), then wait out the backoff."""
    if failures in (1, 5) or failures % 30 == 0:
        log.warning(event, attempt=failures, error=str(exc)[:300])
    await asyncio.sleep(backoff.delay(failures))
