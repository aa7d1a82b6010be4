"""Services: start, stop and a health report; a group starts its children in order,
stops them in reverse and merges their health."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

# How long one service may take to stop before the group moves on to the next (a service
# awaiting a hung RPC or peer must not keep the feeds from being checkpointed).
SERVICE_STOP_TIMEOUT_S = 5.0
# A node's services stopped in turn, each within SERVICE_STOP_TIMEOUT_S, plus the time to
# flush and checkpoint the models: `mira node run` ends within this many seconds of SIGTERM
# (oracle.cli.node enforces it), so whoever stops a node can wait this long before SIGKILL.
NODE_STOP_BOUND_S = 30.0


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""
    children: dict[str, Health] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": self.ok}
        if self.detail:
            out["detail"] = self.detail
        if self.children:
            out["children"] = {k: v.as_dict() for k, v in self.children.items()}
        return out


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Health: ...


class ServiceGroup:
    def __init__(self, name: str, services: list[Service]) -> None:
        self.name = name
        self.services = services
        self._started: list[Service] = []

    async def start(self) -> None:
        for service in self.services:
            log.info("service.start", service=service.name)
            try:
                await service.start()
            except BaseException:
                await self.stop()  # undo what started, in reverse
                raise
            self._started.append(service)

    async def stop(self, timeout: float = SERVICE_STOP_TIMEOUT_S) -> None:
        """Stop the started services in reverse, each within ``timeout`` seconds: one that
        fails or overruns is logged and abandoned (cancelled), and the others still stop."""
        while self._started:
            service = self._started.pop()
            log.info("service.stop", service=service.name)
            task = asyncio.ensure_future(service.stop())
            # asyncio.wait, not wait_for: wait_for would wait for the cancelled stop to
            # finish, which a stop stuck in a call that ignores cancellation never does
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                log.error("service.stop_timeout", service=service.name, timeout_s=timeout)
            elif not task.cancelled() and task.exception() is not None:
                log.error("service.stop_failed", service=service.name, error=str(task.exception()))

    def health(self) -> Health:
        children = {s.name: s.health() for s in self.services}
        ok = bool(children) and all(h.ok for h in children.values())
        return Health(ok, "" if ok else "a child is unhealthy or not started", children)
