from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from oracle.config.feeds import HttpSourceSpec
from oracle.errors import Rejected
from oracle.sources.http import HttpSource
from tests.harness.http_server import local_server


class Upstream:
    """A local JSON server whose answer each test chooses."""

    def __init__(self) -> None:
        self.calls = 0
        self.script: list[web.Response | str] = []

    async def handle(self, _: web.Request) -> web.StreamResponse:
        self.calls += 1
        step = self.script[min(self.calls - 1, len(self.script) - 1)]
        if step == "hang":
            await asyncio.sleep(5)
            return web.Response(text="{}")
        assert isinstance(step, web.Response)
        # a response object can be sent once: repeat it as a fresh copy
        return web.Response(body=step.body, status=step.status, content_type="application/json")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    up = Upstream()
    async with local_server({"/p": up.handle}) as base:
        yield up, f"{base}/p"


def spec(url: str, **kw: object) -> HttpSourceSpec:
    base: dict[str, object] = dict(
        name="s", url=url, path=("data", 0, "price"), timeout_s=0.5, retries=2,
        backoff_s=0.01, max_body_bytes=1024,
    )  # fmt: skip
    base.update(kw)
    return HttpSourceSpec(**base)  # type: ignore[arg-type]


async def fetch(url: str, **kw: object) -> float:
    async with aiohttp.ClientSession() as session:
        return await HttpSource(spec(url, **kw), session).fetch()


async def test_field_path_and_numeric_string(upstream: tuple[Upstream, str]) -> None:
    up, url = upstream
    up.script = [web.json_response({"data": [{"price": "1234.5"}]})]
    assert await fetch(url) == 1234.5


async def test_5xx_is_retried_then_succeeds(upstream: tuple[Upstream, str]) -> None:
    up, url = upstream
    up.script = [web.Response(status=503), web.json_response({"data": [{"price": 7}]})]
    assert await fetch(url) == 7.0
    assert up.calls == 2


async def test_persistent_5xx_is_rejected_after_retries(upstream: tuple[Upstream, str]) -> None:
    up, url = upstream
    up.script = [web.Response(status=500)]
    with pytest.raises(Rejected) as info:
        await fetch(url)
    assert info.value.reason == "http_5xx"
    assert up.calls == 3


async def test_timeout(upstream: tuple[Upstream, str]) -> None:
    up, url = upstream
    up.script = ["hang"]
    with pytest.raises(Rejected) as info:
        await fetch(url, timeout_s=0.2, retries=0)
    assert info.value.reason == "timeout"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (web.Response(text='{"data": [{"price": NaN}]}'), "nan"),
        (web.Response(text='{"data": [{"price": Infinity}]}'), "infinite"),
        (web.Response(text='{"data": [{"price": "cheap"}]}'), "not_a_number"),
        (web.Response(text='{"data": [{"price": 1e400}]}'), "infinite"),
        (web.Response(text='{"data": [{"price": 1e200}]}'), "out_of_range"),
        (web.Response(text='{"data": []}'), "missing_field"),
        (web.Response(text='{"other": 1}'), "missing_field"),
        (web.Response(text="<html>"), "bad_json"),
        (web.Response(text='{"data": [{"price": 1}], "pad": "' + "x" * 2000 + '"}'), "oversized"),
        (web.Response(status=404), "http_status"),
    ],
)
async def test_bad_answers_are_rejected_with_a_reason(
    upstream: tuple[Upstream, str], response: web.Response, reason: str
) -> None:
    up, url = upstream
    up.script = [response]
    with pytest.raises(Rejected) as info:
        await fetch(url)
    assert info.value.reason == reason
    assert up.calls == 1  # not retried: only timeouts, connection errors and 5xx are


async def test_connection_refused() -> None:
    with pytest.raises(Rejected) as info:
        await fetch("http://127.0.0.1:9/p", retries=1)
    assert info.value.reason == "connection"


async def test_a_body_arriving_in_pieces_is_read_whole() -> None:
    """A 200 KB answer sent in pieces: read to its end (a single read returned only what
    had arrived, and the feed saw truncated JSON)."""
    doc = json.dumps({"pad": "x" * 200_000, "data": [{"price": 42.5}]}).encode()

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for at in range(0, len(doc), 50_000):
            await resp.write(doc[at : at + 50_000])
            await asyncio.sleep(0.02)
        await resp.write_eof()
        return resp

    async with local_server({"/p": slow}) as base:
        assert await fetch(f"{base}/p", max_body_bytes=300_000) == 42.5
        with pytest.raises(Rejected) as exc:
            await fetch(f"{base}/p", max_body_bytes=100_000)
        assert exc.value.reason == "oversized"
