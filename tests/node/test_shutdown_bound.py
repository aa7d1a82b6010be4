"""A node's SIGTERM completes within a bound whatever its RPC does.

The RPC here is a real TCP server that accepts every connection and never answers (a
hung endpoint, or a proxy holding every byte): each of the node's chain calls blocks until
its ``rpc_timeout_s``, set to the longest the config allows, and a chain-events feed reads
the same RPC from a worker thread (a blocking web3 call that no cancellation reaches).
SIGTERM must still end the process within ``STOP_BOUND_S``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle import bundle
from oracle.cli.node import STOP_BOUND_S
from oracle.devnet.processes import (
    free_port,
    node_config_toml,
    provision_committee,
    spawn_node,
    stop_node,
)
from oracle.storage import make_engine, upgrade

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHAIN_FEED = """id = "CHAIN/rounds"
version = 1
description = "MiraOracle's ReportTransmitted.round, read through the hung RPC"
decimals = 0
poll_interval_s = 0.5

[[sources]]
name = "oracle"
kind = "chain_events"
rpc_url = "{rpc}"
address = "0x{address}"
contract = "MiraOracle"
event = "ReportTransmitted"
field = "round"
confirmations = 1

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


@contextlib.contextmanager
def hung_rpc() -> Iterator[str]:
    """A listening socket that accepts connections, reads nothing and answers nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def network_state(api: str) -> str | None:
    try:
        with urllib.request.urlopen(api + "/v1/network", timeout=2) as r:
            return str(json.loads(r.read())["state"])
    except (OSError, ValueError, KeyError):
        return None


def test_sigterm_stops_a_node_whose_rpc_hangs_within_the_bound(tmp_path: Path) -> None:
    node = provision_committee(
        [tmp_path / "node0"], ["0x" + os.urandom(32).hex()], [(free_port(), free_port())]
    ).nodes[0]
    (node.dir / "feeds").mkdir()
    spec = (bundle.locate(bundle.DEMO_FEEDS) / "sp500_forecast.toml").read_text()
    (node.dir / "feeds" / "sp500.toml").write_text(spec)
    upgrade(make_engine(f"sqlite:///{node.dir / 'node.sqlite'}"))
    with hung_rpc() as rpc:
        chain_feed = CHAIN_FEED.format(rpc=rpc, address="22" * 20)
        (node.dir / "feeds" / "chain.toml").write_text(chain_feed)
        (node.dir / "node.toml").write_text(
            node_config_toml(
                node,
                database="node.sqlite",
                rpc_url=rpc,
                oracle="0x" + "11" * 20,
                round_period=1.0,
                observe_timeout=0.5,
                transmit_timeout=5.0,
                rpc_timeout=120.0,  # the most the config allows: every chain call hangs
            )
        )
        spawn_node(node)
        try:
            deadline = time.monotonic() + 60
            while network_state(node.api) is None:
                assert node.proc is not None and node.proc.poll() is None, "the node exited"
                assert time.monotonic() < deadline, "the node's API did not come up"
                time.sleep(0.2)
            time.sleep(2.0)  # the supervisor and the transaction manager are in RPC calls
            assert node.proc is not None
            started = time.monotonic()
            node.proc.send_signal(signal.SIGTERM)
            code: int | None = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = node.proc.wait(STOP_BOUND_S + 15)
            took = time.monotonic() - started
        finally:
            stop_node(node, timeout=5)
    log = (node.dir / "node.log").read_text()
    assert took <= STOP_BOUND_S, f"SIGTERM took {took:.1f} s\n{log[-3000:]}"
    assert code == 0, log[-3000:]
    assert "service.stop" in log
    # the feeds stopped in order (models checkpointed), not cut off by the watchdog
    assert '"service": "feeds"' in log and "node.stop_timeout" not in log
