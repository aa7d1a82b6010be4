"""A service group stops every service, each within its bound: one stuck in its stop (a
call that ignores cancellation, a hung peer) is abandoned after the timeout and the ones
after it (the feeds, which checkpoint the models) still stop."""

from __future__ import annotations

import asyncio
import time

from oracle.service import Health, ServiceGroup


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.log.append(self.name)

    def health(self) -> Health:
        return Health(True)


class Stuck(Recorder):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name, log)
        self.release = asyncio.Event()

    async def stop(self) -> None:
        self.log.append(f"{self.name} stopping")
        while not self.release.is_set():  # swallows cancellation, as a stubborn call does
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue


class Failing(Recorder):
    async def stop(self) -> None:
        raise RuntimeError("boom")


async def test_a_stuck_or_failing_stop_does_not_keep_the_others_from_stopping() -> None:
    log: list[str] = []
    stuck = Stuck("network", log)
    group = ServiceGroup(
        "node", [Recorder("feeds", log), Failing("transmission", log), stuck, Recorder("api", log)]
    )
    await group.start()
    started = time.monotonic()
    try:
        await group.stop(timeout=0.5)
        took = time.monotonic() - started
    finally:
        stuck.release.set()  # let the abandoned stop end with the test
        await asyncio.sleep(0.05)
    assert log == ["api", "network stopping", "feeds"]
    assert took < 2.0, took
