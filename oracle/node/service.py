"""Services: start, stop and a health report; a group starts its children in order,
stops them in reverse and merges their health."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


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

    async def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            log.info("service.stop", service=service.name)
            try:
                await service.stop()
            except Exception as exc:  # keep stopping the others
                log.error("service.stop_failed", service=service.name, error=str(exc))

    def health(self) -> Health:
        children = {s.name: s.health() for s in self.services}
        ok = bool(children) and all(h.ok for h in children.values())
        return Health(ok, "" if ok else "a child is unhealthy or not started", children)
