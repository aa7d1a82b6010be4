"""`mira node run` killed with SIGKILL (no drain, no checkpoint) and restarted.

Replay feeds lose nothing and duplicate nothing: the stored observations stay dense, and
the outputs are exactly those of an uninterrupted run. HTTP feeds store every reading
before the poll that read it ends, so a kill loses at most the one reading in flight
(the server answered, the node had not stored it yet), and never one it had consumed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from oracle.config import load_feed_spec
from oracle.models import FeedModel
from oracle.sources.replay import ReplaySource
from oracle.storage import Store, make_engine
from tests.node.test_cli_run import MIRA, setup

FEED = "SP500/forecast-1"


def start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a node with its log in a file (a full pipe would stall it); wait for its API."""
    offset = log.stat().st_size if log.exists() else 0  # earlier runs' lines come before
    fh = log.open("ab")
    proc = subprocess.Popen(
        [MIRA, "node", "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=fh
    )
    fh.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_bytes()[offset:].decode(errors="replace").splitlines():
            event = json.loads(line) if line.startswith("{") and line.endswith("}") else {}
            if event.get("event") == "api.listening":
                port = int(event["port"])
                if _get(port, "/healthz") is not None:
                    return proc, port
        assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the node did not start its API")


def _get(port: int, path: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def wait_for_seq(port: int, feed: str, above: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = _get(port, f"/v1/feeds/{feed}")
        latest = status and status.get("latest")
        if isinstance(latest, dict) and int(latest["seq"]) > above:
            return
        time.sleep(0.02)
    raise AssertionError(f"{feed} did not get past seq {above}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_replay_feed_survives_sigkill_with_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    config, url = setup(tmp_path)
    upgraded = subprocess.run(
        [MIRA, "db", "upgrade", "--config", str(config)], capture_output=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stderr
    log = tmp_path / "node.log"
    store = Store(make_engine(url))

    stored = 0
    for _ in range(1):  # killed in the middle of its work (raise to kill more often)
        proc, port = start(config, log)
        wait_for_seq(port, FEED, stored + 1500)
        deadline = time.monotonic() + 30  # and until some of it is stored
        while store.count_observations(FEED) <= stored + 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        kill(proc)
        now = store.count_observations(FEED)
        last = store.last_observation(FEED)
        assert now > stored
        assert last is not None and last.seq == now  # dense: nothing lost in between
        assert last.dedup_key == f"row:{now - 1}"  # and no row skipped or read twice
        stored = now

    proc, port = start(config, log)  # the last restart ends with a clean SIGTERM
    wait_for_seq(port, FEED, stored + 500)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    total = store.count_observations(FEED)
    keys = [o.dedup_key for o in store.observations_after(FEED, 0)]
    assert keys == [f"row:{i}" for i in range(total)]

    # the outputs are those of one uninterrupted run over the same rows
    spec = load_feed_spec(tmp_path / "feeds" / "sp500.toml")
    model = FeedModel(spec)
    fields = spec.features.record_fields
    expected = []
    for obs in ReplaySource(spec.sources[0]).read(0, total):  # type: ignore[arg-type]
        o = model.step({k: float(obs.raw[k]) for k in fields}, obs.observed_at_ms)
        if o is not None:
            expected.append((o.seq, o.value, o.commitment, o.publish))
    got = [(o.seq, o.value, o.commitment, o.publish) for o in store.outputs(FEED, limit=10**9)]
    assert got == expected


class PriceServer:
    """Answers {"price": k} with k = 1, 2, 3, ... and records what it served."""

    def __init__(self) -> None:
        self.served: list[int] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: object = None

    async def price(self, _request: web.Request) -> web.Response:
        k = len(self.served) + 1
        self.served.append(k)
        return web.json_response({"price": k})

    def run(self) -> Iterator[PriceServer]:
        import asyncio

        loop = asyncio.new_event_loop()
        runner: web.AppRunner | None = None

        async def up() -> None:
            nonlocal runner
            app = web.Application()
            app.router.add_get("/price", self.price)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = int(runner.addresses[0][1])

        def serve() -> None:
            loop.run_until_complete(up())
            self._ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert self._ready.wait(10)
        try:
            yield self
        finally:
            assert runner is not None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


@pytest.fixture
def price_server() -> Iterator[PriceServer]:
    yield from PriceServer().run()


HTTP_SPEC = """
id = "PRICE/http"
version = 1
description = "one HTTP source, polled fast"
decimals = 2
poll_interval_s = 0.02

[[sources]]
name = "local"
kind = "http"
url = "http://127.0.0.1:{port}/price"
path = "price"
timeout_s = 2.0
retries = 0

[features]
target = "value"

[output]
kind = "value"

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 0
heartbeat_s = 3600
"""


def test_http_feed_loses_at_most_the_reading_in_flight_on_sigkill(
    tmp_path: Path, price_server: PriceServer
) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "price.toml").write_text(HTTP_SPEC.replace("{port}", str(price_server.port)))
    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    config = tmp_path / "node.toml"
    # flush_every_s is long: durability must not depend on the periodic flush
    config.write_text(
        f'[node]\nname = "http"\n[database]\nurl = "{url}"\n[api]\nport = 0\n'
        "[scheduler]\nflush_every_s = 60\ncheckpoint_every_s = 600\n"
    )
    subprocess.run([MIRA, "db", "upgrade", "--config", str(config)], check=True, timeout=120)
    proc, port = start(config, tmp_path / "node.log")
    wait_for_seq(port, "PRICE/http", 20)
    kill(proc)
    served = list(price_server.served)

    store = Store(make_engine(url))
    values = [o.record["value"] for o in store.observations_after("PRICE/http", 0)]
    assert values == [float(k) for k in range(1, len(values) + 1)]  # in order, no gap
    assert len(served) - len(values) <= 1  # at most the one in flight
    assert len(values) >= 20
