"""`mira devnet up` end to end: anvil, the contracts, a 4-node committee as OS processes,
the demo feeds landing rounds, read through their AggregatorV3Interface proxies and
checked against what the nodes' APIs report; then `mira devnet down` leaves nothing.
Plus the preflight errors: a second `up`, a port in use, an unwritable directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from oracle.chain.deploy import at
from oracle.chain.system import Manifest
from oracle.devnet import STATEFILE, pid_alive, rl
from oracle.devnet.processes import free_block
from oracle.devnet.view import Watcher, get_json

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(240)]

MIRA = [sys.executable, "-c", "from oracle.cli.main import main; main()"]
ROOT = Path(__file__).resolve().parents[2]


def ports(n_nodes: int) -> list[str]:
    base = free_block(2 * n_nodes + 4)
    return [
        "--anvil-port", str(base),
        "--price-port", str(base + 1),
        "--base-port", str(base + 4),
    ]  # fmt: skip


def mira(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MIRA, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_up(directory: Path, *args: str, view: str = "--no-view") -> subprocess.Popen[str]:
    """``view="--json"``: stdout is the manifest line only, start-up lines on stderr."""
    return subprocess.Popen(
        [*MIRA, "devnet", "up", "--dir", str(directory), view, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if view == "--no-view" else subprocess.DEVNULL,
        text=True,
    )


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """proc's first stdout line, bounded by ``timeout``."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert found, f"no line on stdout within {timeout} s"
    return found[0]


def wait_manifest(proc: subprocess.Popen[str], directory: Path, timeout: float) -> Manifest:
    deadline = time.monotonic() + timeout
    path = directory / "manifest.json"
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"devnet up exited with {proc.returncode}:\n{out}")
        assert time.monotonic() < deadline, "no manifest in time"
        time.sleep(0.5)
    return Manifest.read(path)


def down_and_wait(proc: subprocess.Popen[str], directory: Path) -> subprocess.CompletedProcess[str]:
    """``mira devnet down``, then the launcher's exit (killed if it takes over 30 s)."""
    down = mira("devnet", "down", "--dir", str(directory))
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return down


def node_log_tails(directory: Path) -> str:
    out = []
    for log in sorted(directory.glob("node*/node.log")):
        out.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:]))
    return "\n".join(out)


def test_devnet_up_rounds_land_and_match_the_nodes_then_down(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    proc = start_up(directory, "--nodes", "4", *ports(4), view="--json")
    children: list[int] = []
    try:
        manifest = wait_manifest(proc, directory, timeout=90)
        import json

        # --json: once running, stdout is exactly the manifest, as one JSON object
        assert json.loads(first_line(proc, 30)) == json.loads(
            (directory / "manifest.json").read_text()
        )

        children = [c["pid"] for c in json.loads((directory / STATEFILE).read_text())["children"]]
        assert len(children) == 5  # four nodes and anvil
        assert len(manifest.extra["nodes"]) == 4
        watcher = Watcher(manifest)
        # the model registry is deployed with the oracle and is its feed registrar
        assert manifest.model_registry
        oracle = at(watcher.w3, "MiraOracle", manifest.oracle)
        assert oracle.functions.feedRegistrar().call() == manifest.model_registry
        # the four demo feeds, and the RL loop's policy: five arms and the recommended arm
        feeds = [f for f in manifest.feeds if not f.startswith("RL/")]
        assert len(feeds) == 4
        assert len(manifest.feeds) == 4 + 6
        assert manifest.extra["rl"]["feed"] == "RL/bandit"

        # what the nodes' APIs report, keyed by observation second (= on-chain updatedAt)
        reported: dict[str, dict[int, list[int]]] = {f: {} for f in feeds}
        rounds: dict[str, dict[int, tuple[int, int]]] = {f: {} for f in feeds}
        deadline = time.monotonic() + 150
        while True:
            for node in manifest.extra["nodes"]:
                body = get_json(node["api"] + "/v1/feeds") or {"feeds": []}
                for status in body["feeds"]:
                    latest: dict[str, Any] | None = status.get("latest")
                    if latest is not None and status["id"] in reported:
                        sec = int(latest["observed_at_ms"]) // 1000
                        reported[status["id"]].setdefault(sec, []).append(int(latest["value"]))
            for f in feeds:
                try:
                    data = watcher.proxies[f].functions.latestRoundData().call()
                except Exception:
                    continue
                if int(data[3]) > 0:  # updatedAt 0: no round yet (roundId is phase << 64)
                    rounds[f][int(data[0])] = (int(data[1]), int(data[3]))
            if all(len(rounds[f]) >= 3 for f in feeds):
                break
            assert proc.poll() is None, "devnet up exited early"
            assert time.monotonic() < deadline, (
                f"rounds seen: { {f: len(r) for f, r in rounds.items()} }\n"
                + node_log_tails(directory)
            )
            time.sleep(0.25)

        for f in feeds:
            tolerance = int(manifest.feeds[f]["tolerance_bps"])
            matched = 0
            for answer, updated_at in rounds[f].values():
                for value in reported[f].get(updated_at, []):
                    matched += 1
                    assert abs(value - answer) * 10_000 <= tolerance * abs(answer), (
                        f"{f}: on-chain {answer} vs a node's {value} at {updated_at}"
                    )
            assert matched > 0, f"{f}: no node reported the value of any on-chain round"
        # the on-chain value read through the proxy, its decimals written out (never
        # Decimal's exponent form: a zero is 0.00000000, not 0E-8)
        chain = watcher.onchain(feeds[0])
        assert chain is not None and "E" not in chain[1]
        decimals = int(manifest.feeds[feeds[0]]["decimals"])
        assert len(chain[1].split(".")[1]) == decimals, chain
        _pull_into_the_example_market(manifest, watcher)
        # the RL loop runs by default: the agent acts every block on the committee's
        # policy (the prior, then what the nodes learned from its steps), beside a random
        # agent; the view's scoreboard reads both
        loop = watcher.rl()
        assert loop is not None and loop.steps > 0 and loop.random_steps > 0, loop
        policy = watcher.onchain("RL/bandit#arm")
        assert policy is not None and policy[0] & 0xFFFFFFFFFFFFFFFF >= 2, policy  # learned
        assert loop.best_arm_reward >= loop.regret
    finally:
        down = down_and_wait(proc, directory)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process left behind" in down.stdout
    assert proc.returncode == 0
    time.sleep(0.5)
    assert [c for c in children if pid_alive(c)] == []
    assert not (directory / "devnet.pid").exists()
    again = mira("devnet", "down", "--dir", str(directory))
    assert again.returncode == 0 and "no devnet is running" in again.stdout


def _pull_into_the_example_market(manifest: Manifest, watcher: Watcher) -> None:
    """README's pull walk-through: a payload for ETH/USD from two members' APIs, verified
    by the devnet's MiraPullVerifier, then a borrow from the example PullLendingMarket
    priced by it, sent from the manifest's borrower (an anvil account: anvil signs)."""
    pull = manifest.extra["pull"]
    verifier = at(watcher.w3, "MiraPullVerifier", manifest.pull_verifier)
    market = at(watcher.w3, "PullLendingMarket", pull["lending_market"])
    assert market.functions.pullVerifier().call() == manifest.pull_verifier
    feed_id = bytes.fromhex(manifest.feeds[pull["feed"]]["feed_id"][2:])
    bodies = []
    for node in manifest.extra["nodes"][:2]:
        deadline = time.monotonic() + 30
        while (body := get_json(f"{node['api']}/v1/pull?feeds={pull['feed']}")) is None or (
            "payload" not in body
        ):
            assert time.monotonic() < deadline, f"{node['name']}: no pull payload: {body}"
            time.sleep(0.5)
        bodies.append(body)
    for body in bodies:
        values = verifier.functions.verify(bytes.fromhex(body["payload"][2:]), 60).call()
        assert [(bytes(v[0]), v[1]) for v in values] == [(feed_id, int(body["values"][0]["value"]))]
    borrower = pull["borrower"]
    w3 = watcher.w3
    w3.eth.wait_for_transaction_receipt(
        market.functions.deposit().transact({"from": borrower, "value": 10**18})
    )
    price = int(bodies[0]["values"][0]["value"])  # ETH/USD, the feed's decimals
    amount = price * pull["ltv_bps"] // 10_000 // 2  # half the loan-to-value limit of 1 ETH
    receipt = w3.eth.wait_for_transaction_receipt(
        market.functions.borrow(amount, bytes.fromhex(bodies[0]["payload"][2:])).transact(
            {"from": borrower}
        )
    )
    assert receipt["status"] == 1
    assert market.functions.debtOf(borrower).call() == amount
    (event,) = market.events.Borrowed().process_receipt(receipt)
    assert (event["args"]["amount"], event["args"]["price"]) == (amount, price)


@pytest.mark.timeout(400)
def test_devnet_up_with_stocks_runs_the_real_data_market(tmp_path: Path) -> None:
    """``--stocks``: the ten SP500Stocks price feeds land, the StockMarket agent holds stocks
    on the committee's policy and is paid realised returns of attested prices, the nodes
    learn its steps; the drifting bandit's loop runs beside it."""
    directory = tmp_path / "devnet"
    proc = start_up(directory, "--nodes", "4", "--stocks", *ports(4), view="--json")
    try:
        manifest = wait_manifest(proc, directory, timeout=200)
        info = manifest.extra["rl_stocks"]
        assert (info["feed"], info["prices"], info["tickers"]) == (
            rl.STOCK_FEED,
            rl.PRICE_FEED,
            list(rl.TICKERS),
        )
        for fid, _ in [*rl.price_feeds(), *rl.policy_feeds(rl.STOCK_FEED, rl.TICKERS)]:
            assert fid in manifest.feeds
        watcher = Watcher(manifest)
        market = at(watcher.w3, "StockMarket", info["market"])
        api = manifest.extra["nodes"][0]["api"]
        deadline = time.monotonic() + 150
        while True:
            paid = market.events.ReturnRealised().get_logs(from_block=0)
            status = get_json(f"{api}/v1/feeds/{rl.STOCK_FEED}") or {}
            pulls = sum((status.get("metrics") or {}).get("pulls", {}).values())
            if len(paid) >= 10 and pulls >= 5:
                break
            assert proc.poll() is None, "devnet up exited early"
            assert time.monotonic() < deadline, (
                f"{len(paid)} holdings paid, {pulls} steps learned\n" + node_log_tails(directory)
            )
            time.sleep(1)
        for e in paid:
            entry, exit_ = int(e["args"]["entry"]), int(e["args"]["exit"])
            assert entry > 0 and int(e["args"]["reward"]) == rl.realised(entry, exit_)
        # the prices moved as trading days do (a day a second, a step a block)
        assert any(e["args"]["entry"] != e["args"]["exit"] for e in paid)
        assert status["rejections"] == {}
        loop = watcher.rl()  # and the drifting bandit's loop runs as without --stocks
        assert loop is not None and loop.steps > 0 and loop.random_steps > 0, loop
    finally:
        down = down_and_wait(proc, directory)
    assert down.returncode == 0, down.stdout + down.stderr


def test_second_up_in_the_same_dir_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    directory.mkdir()
    # a live process owns the pidfile: this test's own
    (directory / "devnet.pid").write_text(f"{os.getpid()}\n")
    result = mira("devnet", "up", "--dir", str(directory), "--no-view", *ports(4))
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert f"a devnet is already running in {directory} (pid {os.getpid()})" in line
    assert f"mira devnet down --dir {directory}" in line
    # a stale pidfile (dead pid) is not a running devnet: `down` says nothing runs
    dead = subprocess.Popen(["true"])
    dead.wait()
    (directory / "devnet.pid").write_text(f"{dead.pid}\n")
    result = mira("devnet", "down", "--dir", str(directory))
    assert result.returncode == 0 and "no devnet is running" in result.stdout


def test_port_in_use_is_named(tmp_path: Path) -> None:
    args = ports(4)
    anvil_port = int(args[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", anvil_port))
        s.listen()
        result = mira("devnet", "up", "--dir", str(tmp_path / "d"), "--no-view", *args)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert f"port {anvil_port} (anvil) is already in use" in line
    assert "--anvil-port" in line
    assert not (tmp_path / "d" / "devnet.pid").exists()


def test_node_port_in_use_is_named(tmp_path: Path) -> None:
    args = ports(4)
    api = int(args[5]) + 2  # node 1's API port
    with socket.socket() as s:
        s.bind(("127.0.0.1", api))
        s.listen()
        result = mira("devnet", "up", "--dir", str(tmp_path / "d"), "--no-view", *args)
    assert result.returncode == 1
    assert f"port {api} (node 1 API) is already in use" in result.stderr
    assert "--base-port" in result.stderr


def test_unwritable_dir_is_refused(tmp_path: Path) -> None:
    # a directory under a regular file cannot be created, not even by root
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    directory = blocker / "devnet"
    result = mira("devnet", "up", "--dir", str(directory), "--no-view", *ports(4))
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert f"cannot write to devnet directory {directory}" in line and "--dir" in line


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    """SIGTERM to `up` (what Ctrl-C and `down` amount to) stops nodes, prices and anvil."""
    directory = tmp_path / "devnet"
    proc = start_up(directory, "--nodes", "1", *ports(1))
    try:
        wait_manifest(proc, directory, timeout=90)
        import json

        children = [c["pid"] for c in json.loads((directory / STATEFILE).read_text())["children"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [c for c in children if pid_alive(c)] == []
    assert not (directory / "devnet.pid").exists()
