"""SIGKILL in the middle of sending, then restart: every call is included exactly once,
with the bytes stored before the kill, and no nonce is skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import Engine

from oracle.transmission.states import AttemptState, State
from oracle.transmission.store import TransmissionStore
from tests.fixtures.db import Backend
from tests.transmission.helpers import Chain

ROOT = Path(__file__).resolve().parents[2]


def _worker(chain: Chain, backend: Backend, *extra: str) -> subprocess.Popen[str]:
    args = [
        *(sys.executable, "-m", "tests.transmission.crash_worker", "--db", backend.url),
        *("--rpc", chain.anvil.url, "--probe", chain.probe.address, "--count", "3", *extra),
    ]
    if backend.schema:
        args += ["--schema", backend.schema]
    env = {**os.environ, "MIRA_TEST_SENDER_KEY": chain.key}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
    """The first stdout line starting with ``prefix``; bounded by ``timeout``."""
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix):
                found.append(line.strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        proc.kill()
        raise AssertionError(f"worker printed no {prefix!r} line within {timeout}s")
    return found[0]


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.parametrize("point", ["signed", "broadcast"])
async def test_sigkill_while_sending_then_restart_includes_each_call_once(
    backend: Backend, engine: Engine, chain: Chain, point: str
) -> None:
    sender = Account.from_key(chain.key).address
    victim = _worker(chain, backend, "--stop-at", point, "--nth", "2")
    try:
        line = _read_line(victim, "CHECKPOINT")
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    tid = int(line.split()[2])

    store = TransmissionStore(engine, 31337, sender)
    killed = store.get(tid)
    assert killed is not None and killed.state is State.SIMULATED and killed.nonce == 1
    [stored] = store.attempts(tid)
    assert stored.state is AttemptState.SIGNED
    on_chain_before = chain.chain_nonce("pending")
    assert on_chain_before == (1 if point == "signed" else 2)

    survivor = _worker(chain, backend)
    try:
        done = _read_line(survivor, "DONE")
        assert survivor.wait(30) == 0
    finally:
        if survivor.poll() is None:
            survivor.kill()
    report = json.loads(done.removeprefix("DONE "))
    assert [r["state"] for r in report] == ["confirmed"] * 3
    assert sorted(r["nonce"] for r in report) == [0, 1, 2]  # no gap, no extra
    assert chain.chain_nonce() == 3
    assert chain.probe.functions.count().call() == 3  # each record exactly once
    # the killed transmission went out with the bytes stored before the kill
    final = store.get(tid)
    assert final is not None and final.tx_hash == stored.tx_hash
    assert [a.tx_hash for a in store.attempts(tid)] == [stored.tx_hash]
    for other in (r["id"] for r in report):
        assert len(store.attempts(other)) == 1
