"""The devnet survives an unclean stop, tried as a new user does it: `mira devnet up` as a
real subprocess, stopped by Ctrl-C while the nodes run their key generation, by its stdout
pipe closing (`| tee` ended by the same Ctrl-C), or by SIGKILL; then no child is left,
`devnet down` works, and a second `up` in the same directory comes up (fresh keys, no key
share of the previous chain) after stopping what a dead launcher left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oracle.children import Recorded, pid_alive
from oracle.devnet import STATEFILE, port_free
from oracle.service import NODE_STOP_BOUND_S
from tests.devnet.test_devnet import MIRA, ROOT, mira, ports, start_up, wait_manifest

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(300)]


def recorded(directory: Path) -> list[Recorded]:
    raw = json.loads((directory / STATEFILE).read_text())
    return [Recorded.from_json(c) for c in raw["children"]]


def wait_gone(children: list[Recorded], timeout: float) -> list[Recorded]:
    deadline = time.monotonic() + timeout
    while any(c.alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [c for c in children if c.alive()]


def ports_in_use(args: list[str]) -> list[int]:
    """The ports of ``ports(n)``'s devnet still taken: anvil's, the price sources', the
    nodes' (what made the next `up` stop at "port 8545 in use")."""
    opts = dict(zip(args[::2], args[1::2], strict=True))
    nodes = int(opts["--nodes"])
    anvil, price, base = (int(opts[k]) for k in ("--anvil-port", "--price-port", "--base-port"))
    wanted = [anvil, price, price + 1, price + 2, *range(base, base + 2 * nodes)]
    return [p for p in wanted if not port_free(p)]


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The launcher's output up to the first line containing ``marker``."""
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} line; output so far:\n{''.join(seen)}")


def up_and_down_again(directory: Path, args: list[str]) -> None:
    """A second `up` in the same directory comes up; SIGTERM stops it cleanly."""
    proc = start_up(directory, *args)
    try:
        wait_manifest(proc, directory, timeout=120)
        children = recorded(directory)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(NODE_STOP_BOUND_S + 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_gone(children, 5) == []


def test_ctrl_c_during_key_generation_says_stopped(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    args = ["--nodes", "2", *ports(2)]
    proc = start_up(directory, *args)
    try:
        read_until(proc, "DKG ", timeout=120)  # the nodes were just started
        children = recorded(directory)
        assert len(children) == 3
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=NODE_STOP_BOUND_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert out.strip().splitlines()[-1] == "stopped", out
    assert "proposal" not in out and "Error" not in out, out
    # honoured at once, not after the key generation (which may never finish)
    assert "active" not in out, out
    assert wait_gone(children, 5) == []
    assert ports_in_use(args) == []
    assert not (directory / "devnet.pid").exists()


def test_closed_stdout_stops_everything_then_up_again_works(tmp_path: Path) -> None:
    """`mira devnet up | tee run.log` and Ctrl-C: tee is gone, the launcher's next line hits
    a closed pipe. It must not die there leaving anvil and the nodes running."""
    directory = tmp_path / "devnet"
    args = ["--nodes", "1", *ports(1)]
    elsewhere = tmp_path / "elsewhere"  # not the checkout: the demo specs are found anyway
    elsewhere.mkdir()
    proc = subprocess.Popen(
        [*MIRA, "devnet", "up", "--dir", str(directory), *args],  # with the view: a line a second
        cwd=elsewhere,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(proc, "running;", timeout=120)
        children = recorded(directory)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone
        assert proc.wait(NODE_STOP_BOUND_S + 30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "BrokenPipe" not in stderr and "Traceback" not in stderr, stderr
    assert wait_gone(children, 5) == []
    assert ports_in_use(args) == []
    up_and_down_again(directory, args)


def test_sigkilled_launcher_takes_its_children_then_up_again_works(tmp_path: Path) -> None:
    """SIGKILL runs no handler: the kernel ends the children (PR_SET_PDEATHSIG). What a dead
    launcher still left (here: a process it recorded) is stopped by the next `up`, which
    then starts on fresh node directories: the old chain's key shares are gone."""
    directory = tmp_path / "devnet"
    args = ["--nodes", "1", *ports(1)]
    proc = start_up(directory, *args)
    try:
        wait_manifest(proc, directory, timeout=120)
        children = recorded(directory)
        assert {c.what for c in children} == {"anvil", "node-0"}
        old_shares = {
            p: json.loads(p.read_text())["group_key"]
            for p in (directory / "node0" / "keys" / "shares").glob("chain-*/epoch-*.json")
        }
        assert old_shares, "the node stored no key share"
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # anvil at once; the node drains within its stop bound
    assert wait_gone(children, NODE_STOP_BOUND_S + 5) == []
    assert ports_in_use(args) == []

    # a leftover of the dead launcher, recorded as its children are
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        state = json.loads((directory / STATEFILE).read_text())
        state["children"].append(Recorded.of(leftover.pid, "anvil").to_json())
        (directory / STATEFILE).write_text(json.dumps(state))
        second = start_up(directory, *args)
        try:
            out = read_until(second, "MiraOracle", timeout=120)
            assert "the previous devnet" in out and f"(pid {leftover.pid})" in out, out
            assert leftover.wait(5) is not None
            wait_manifest(second, directory, timeout=120)
            # anvil's chain id and first contract address repeat: the new committee's key
            # share took the place of the old one (which was removed, not reused)
            for path, group_key in old_shares.items():
                assert json.loads(path.read_text())["group_key"] != group_key
            second.send_signal(signal.SIGTERM)
            assert second.wait(NODE_STOP_BOUND_S + 30) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_down_stops_what_a_dead_launcher_left(tmp_path: Path) -> None:
    """The launcher is gone (SIGKILL of a launcher on a system without PDEATHSIG, or a
    child that ignored it): `devnet down` stops every recorded child, by pid and start time,
    and leaves alone a process that merely reuses a recorded pid."""
    directory = tmp_path / "devnet"
    directory.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    children = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        records = [Recorded.of(c.pid, f"node-{i}") for i, c in enumerate(children)]
        # the bystander's pid, recorded with another start time: a reused pid
        reused = Recorded(bystander.pid, (Recorded.of(bystander.pid).started or 0) + 1, "anvil")
        (directory / "devnet.pid").write_text(f"{dead.pid}\n")
        (directory / STATEFILE).write_text(
            json.dumps(
                {
                    "launcher": Recorded(dead.pid, 1, "the launcher").to_json(),
                    "children": [r.to_json() for r in [*records, reused]],
                }
            )
        )
        result = mira("devnet", "down", "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        assert "lost its launcher" in result.stdout, result.stdout
        for c in children:
            assert c.wait(5) is not None
            assert f"(pid {c.pid})" in result.stdout
        assert bystander.poll() is None and pid_alive(bystander.pid)
        assert not (directory / STATEFILE).exists()
        again = mira("devnet", "down", "--dir", str(directory))
        assert "no devnet is running" in again.stdout
    finally:
        for p in [*children, bystander]:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_child_dies_with_its_launcher() -> None:
    """die_with_parent: a launcher process SIGKILLed takes its child along."""
    code = (
        "import subprocess, signal, sys, time\n"
        "from oracle.children import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '600'], start_new_session=True,\n"
        "                         preexec_fn=die_with_parent(signal.SIGKILL))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert launcher.stdout is not None
    child = Recorded.of(int(launcher.stdout.readline()))
    try:
        assert child.alive()
        launcher.kill()
        launcher.wait()
        assert wait_gone([child], 5) == []
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if child.alive():
            import os

            os.kill(child.pid, signal.SIGKILL)
