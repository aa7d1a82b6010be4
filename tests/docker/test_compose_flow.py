"""The whole flow of docker/compose.yaml on the host, with local processes for containers.

No Docker engine is needed: a real anvil from the pinned toolchain (compose's chain id and
block time), then the services as compose starts them — four `docker/node.sh` nodes and
`docker/deployer.sh deploy` side by side, `docker/deployer.sh activate` once the deployer
succeeded — each with the command and environment its service has in compose.yaml (read
from the file), overriding only what a host needs: 127.0.0.1 for the service host names,
free ports, directories under tmp_path for the volumes, and for the PostgreSQL databases
one SQLite file per node or, when ``MIRA_TEST_DATABASE_URL`` is set, one fresh database
per node on that server (created as docker/postgres-init.sh does, dropped after).

Checked: the deployer and the activator exit 0; the epoch is active on-chain, threshold 3
of 4, its members the four nodes' operators; `mira committee status` sees the four online;
every feed the deployer registered gets an on-chain value through its AggregatorV3 proxy;
and every process started is stopped at the end, its whole process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import create_engine, make_url, text
from web3 import Web3

from oracle import artifacts
from oracle.chain import toolchain
from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.config import load_feed_specs
from oracle.devnet.processes import free_port
from tests.docker.test_docker import COMPOSE, ROOT, _anchors, _service_blocks
from tests.fixtures.db import PG_URL_ENV

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent  # the venv's bin: mira
NODES = ("node1", "node2", "node3", "node4")
IMAGE_DIR = "/opt/mira/docker/"  # where the image keeps the entry scripts (Dockerfile COPY)

# Bounds, in seconds, of each phase (together under the test's 300 s timeout).
DEPLOY_TIMEOUT = 120  # the deployer: member files, funding, contracts, proposal
ACTIVATE_TIMEOUT = 90  # the activator: the nodes' DKG over p2p and their key proposals
ROUNDS_TIMEOUT = 60  # a first on-chain value for every feed once the epoch is active


# -- compose.yaml, as the services see it -----------------------------------------------------


def _mapping(block: str, key: str, anchors: dict[str, str]) -> dict[str, str]:
    """The `key:` mapping of a service block (`environment`), merging `<<: *anchor`s."""
    lines = block.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = re.match(rf"^(\s*){key}:\s*$", line)
        if not m:
            continue
        indent = len(m.group(1))
        for inner in lines[i + 1 :]:
            if inner.strip() == "" or inner.lstrip().startswith("#"):
                continue
            if len(inner) - len(inner.lstrip()) <= indent:
                break
            merge = re.match(r"^\s+<<:\s*\*([\w-]+)\s*$", inner)
            if merge:
                out.update(_mapping(f"{key}:\n{anchors[merge.group(1)]}", key, anchors))
                continue
            kv = re.match(r"^\s+([A-Za-z_][A-Za-z0-9_]*):\s*(.*?)\s*$", inner)
            assert kv, f"unexpected line in {key}: {inner!r}"
            value = kv.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[kv.group(1)] = value
    return out


def _command(block: str, anchors: dict[str, str]) -> list[str]:
    """A service's `command: [...]` (flow style), directly or through `<<: *anchor`."""
    m = re.search(r"^\s+command:\s*(\[.*\])\s*$", block, re.M)
    if m:
        return [str(x) for x in json.loads(m.group(1))]
    for anchor in re.findall(r"^\s+<<:\s*\*([\w-]+)\s*$", block, re.M):
        found = _command(anchors[anchor], anchors)
        if found:
            return found
    return []


def _anvil_option(block: str, option: str) -> str:
    """The value after `- option` in the anvil service's block-style command list."""
    items = re.findall(r"^\s+-\s+\"?([^\"\s]+)\"?\s*$", block, re.M)
    return items[items.index(option) + 1]


# -- processes --------------------------------------------------------------------------------


class Service:
    """One compose service as a local process in its own process group."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], logs: Path, workdir: Path
    ) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        workdir.mkdir(parents=True, exist_ok=True)  # the image's WORKDIR /data: the volume
        self._out: IO[bytes] = self.log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.proc.pid

    def tail(self, n: int = 25) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-n:]
        return f"--- {self.name} (exit {self.proc.poll()}):\n" + "\n".join(lines)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout:.0f}s\n{self.tail()}"
            ) from None

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while _group_members(self.pgid) and time.monotonic() < deadline:
                self.proc.poll()  # reap the leader
                time.sleep(0.1)
            if not _group_members(self.pgid):
                break
        try:
            self.proc.wait(5)
        finally:
            self._out.close()


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.fixture
def database_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Each node's database URL: a SQLite file in its home, or on the PostgreSQL server of
    ``MIRA_TEST_DATABASE_URL`` a new database per node (dropped afterwards)."""
    server = os.environ.get(PG_URL_ENV)
    if not server:
        yield {name: f"sqlite:///{tmp_path / name / 'node.sqlite'}" for name in NODES}
        return
    url = make_url(server)
    names = {name: f"mira_composeflow_{uuid.uuid4().hex[:12]}_{name}" for name in NODES}
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for db in names.values():
                conn.execute(text(f'CREATE DATABASE "{db}"'))
        yield {
            name: url.set(database=db).render_as_string(hide_password=False)
            for name, db in names.items()
        }
    finally:
        with admin.connect() as conn:
            for db in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


# -- the flow ---------------------------------------------------------------------------------


def test_compose_flow_on_the_host(tmp_path: Path, database_urls: dict[str, str]) -> None:
    compose = COMPOSE.read_text()
    services, anchors = _service_blocks(compose), _anchors(compose)
    logs = tmp_path / "logs"
    logs.mkdir()
    shared = tmp_path / "shared"  # the `shared` volume
    deployer_home = tmp_path / "deployer"  # the `deployer` volume (deployer and activator)

    # The image's ENV (Dockerfile) that the scripts read, as host paths; the PATH of the
    # image: mira (the venv) and cast (the pinned toolchain).
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIRA_")}
    base.update(
        PATH=os.pathsep.join([str(BIN), str(toolchain.tool("cast").parent), base["PATH"]]),
        PYTHONUNBUFFERED="1",
        MIRA_PYTHON=sys.executable,
        MIRA_FEEDS_SRC=str(ROOT / "feeds"),
        MIRA_SHARED=str(shared),
    )

    def argv(service: str) -> list[str]:
        command = _command(services[service], anchors)
        assert command[:2] == ["sh", f"{IMAGE_DIR}{Path(command[1]).name}"], command
        return ["sh", str(ROOT / "docker" / Path(command[1]).name), *command[2:]]

    def env(service: str, home: Path, **overrides: str) -> dict[str, str]:
        declared = _mapping(services[service], "environment", anchors)
        for key in overrides:
            # only host names, ports and paths are overridden, and only declared ones
            assert key in declared or key.startswith(("MIRA_P2P_", "MIRA_API_HOST")), key
        return {**base, **declared, "MIRA_HOME": str(home), **overrides}

    anvil_block = services["anvil"]
    assert 'entrypoint: ["anvil"]' in anvil_block
    chain = Anvil(
        AnvilConfig(
            chain_id=int(_anvil_option(anvil_block, "--chain-id")),
            block_time=float(_anvil_option(anvil_block, "--block-time")),
        )
    )
    started: list[Service] = []
    chain.start()
    anvil_pid = chain.pid
    assert anvil_pid is not None
    try:
        w3 = Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 10}))
        # the deployer's funder is anvil's first dev account, as compose names it
        deployer_env = env("deployer", deployer_home, MIRA_RPC_URL=chain.url)
        assert deployer_env["MIRA_FUNDER_ADDRESS"] == w3.eth.accounts[0]
        assert deployer_env["MIRA_COMMITTEE_SIZE"] == "4" and deployer_env["MIRA_THRESHOLD"] == "3"

        ports = [free_port() for _ in range(2 * len(NODES))]
        node_envs = {}
        for i, name in enumerate(NODES):
            declared = _mapping(services[name], "environment", anchors)
            assert declared["MIRA_NODE_NAME"] == name
            assert declared["MIRA_DATABASE_URL"].startswith("postgresql+psycopg://")
            home = tmp_path / name  # the node's volume
            node_envs[name] = env(
                name,
                home,
                MIRA_RPC_URL=chain.url,
                MIRA_P2P_PORT=str(ports[2 * i]),
                MIRA_API_PORT=str(ports[2 * i + 1]),
                # compose: the service's host name, and every interface of the container
                MIRA_P2P_HOST="127.0.0.1",
                MIRA_P2P_LISTEN_HOST="127.0.0.1",
                MIRA_API_HOST="127.0.0.1",
                # compose: one PostgreSQL database per node (see database_urls)
                MIRA_DATABASE_URL=database_urls[name],
            )

        # compose: the nodes and the deployer start together once anvil is healthy (the
        # deployer waits for the member files, the nodes for the manifest)
        for name in NODES:
            started.append(Service(name, argv(name), node_envs[name], logs, tmp_path / name))
        deployer = Service("deployer", argv("deployer"), deployer_env, logs, deployer_home)
        started.append(deployer)

        def tails() -> str:
            return "\n".join(s.tail() for s in started)

        assert deployer.wait(DEPLOY_TIMEOUT) == 0, tails()
        manifest = json.loads((shared / "manifest.json").read_text())
        assert manifest["chain_id"] == 31337

        # compose: the activator once the deployer completed successfully
        activator = Service(
            "activator",
            argv("activator"),
            env("activator", deployer_home, MIRA_RPC_URL=chain.url),
            logs,
            deployer_home,
        )
        started.append(activator)
        assert activator.wait(ACTIVATE_TIMEOUT) == 0, tails()
        assert "epoch 1 active" in activator.log.read_text(), activator.tail()

        # on-chain: epoch 1 active, threshold 3 of 4, members the four nodes' operators in
        # member-file order, nothing pending
        oracle = w3.eth.contract(
            address=Web3.to_checksum_address(manifest["oracle"]),
            abi=artifacts.load("MiraOracle").abi,
        )
        assert oracle.functions.currentEpoch().call() == 1
        key = oracle.functions.epochKey(1).call()
        assert (int(key[2]), int(key[3])) == (3, 4)
        operators = []
        for name in NODES:
            shown = subprocess.run(
                [
                    str(BIN / "mira"),
                    "keys",
                    "show",
                    "--json",
                    "--dir",
                    str(tmp_path / name / "keys"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            operators.append(
                Web3.to_checksum_address(json.loads(shown.stdout)["operator"]["address"])
            )
        assert len(set(operators)) == 4
        members = oracle.functions.members(1).call()
        assert [Web3.to_checksum_address(m[0]) for m in members] == operators
        assert [str(m[2]) for m in members] == [
            f"http://127.0.0.1:{node_envs[n]['MIRA_P2P_PORT']}" for n in NODES
        ]
        assert int(oracle.functions.pendingCommittee().call()[0]) == 0

        # every feed the deployer wrote is registered with a proxy
        specs = load_feed_specs(sorted((shared / "feeds").glob("*.toml")))
        assert {s.id for s in specs} == set(manifest["feeds"]) and len(specs) >= 3
        proxy_abi = artifacts.load("MiraFeedProxy").abi
        proxies = {
            fid: w3.eth.contract(address=Web3.to_checksum_address(entry["proxy"]), abi=proxy_abi)
            for fid, entry in manifest["feeds"].items()
        }

        # `mira committee status`: the four members answer with their identity keys and
        # serve epoch 1 (bounded retries: the nodes pick up the activation by polling)
        status_cmd = [str(BIN / "mira"), "committee", "status", "--json"]
        status_cmd += ["--rpc-url", chain.url, "--oracle", manifest["oracle"]]
        deadline = time.monotonic() + 30
        while True:
            run = subprocess.run(status_cmd, capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
            status = json.loads(run.stdout)
            if status["online"] == 4 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status["online"] == 4, json.dumps(status, indent=2) + "\n" + tails()
        assert (status["epoch"], status["threshold"], status["size"]) == (1, 3, 4)
        assert [r["operator"] for r in status["members"]] == operators
        assert status["pending"] is None

        # a first on-chain value for every feed, read through its AggregatorV3 proxy
        values: dict[str, tuple[int, int, int]] = {}
        deadline = time.monotonic() + ROUNDS_TIMEOUT
        while set(values) != set(proxies):
            for fid, proxy in proxies.items():
                if fid in values:
                    continue
                try:
                    data = proxy.functions.latestRoundData().call()
                except Exception:  # no round yet reverts
                    continue
                if int(data[3]) > 0:  # updatedAt 0: no round yet (roundId is phase << 64)
                    values[fid] = (int(data[0]), int(data[1]), int(data[3]))
            assert time.monotonic() < deadline, (
                f"feeds with no on-chain value after {ROUNDS_TIMEOUT}s: "
                f"{sorted(set(proxies) - set(values))}\n{tails()}"
            )
            time.sleep(0.5)
        now = int(w3.eth.get_block("latest")["timestamp"])
        for fid, (round_id, _answer, updated_at) in values.items():
            assert round_id >= 1 and 0 < updated_at <= now + 300, (fid, values[fid])

        # the nodes kept running throughout (compose would have restarted a crashed one)
        for service in started[: len(NODES)]:
            assert service.proc.poll() is None, service.tail()
    finally:
        for service in reversed(started):
            service.stop()
        chain.stop()

    time.sleep(0.2)
    left = {s.name: _group_members(s.pgid) for s in started}
    left["anvil"] = _group_members(anvil_pid)
    assert all(not pids for pids in left.values()), f"processes left behind: {left}"
    for service in started:
        assert service.proc.returncode is not None, service.name
