"""docker/: what can be checked without a Docker engine.

No container is built or run here. The compose file is validated by the installed compose
client (skipped without one); the Dockerfile and the compose file are read for pinned
images and a non-root user; the entry scripts are parsed by sh and their steps run on the
host (they take every path and host from environment variables), and what they write is
loaded by the code that reads it in a container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

import oracle
from oracle import artifacts
from oracle.chain import toolchain
from oracle.chain.anvil import Anvil
from oracle.config import load_feed_specs, load_node
from oracle.devnet import devnet_spec_text

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
SCRIPTS = sorted(DOCKER.glob("*.sh"))
BIN = Path(sys.executable).parent  # the venv's bin: mira

# An exact version tag (3.11.13-slim-bookworm, 15.13-bookworm, 0.1.0) or a digest.
PINNED = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?)?(@sha256:[0-9a-f]{64})?$"
)


def _pinned(image: str) -> bool:
    return bool(PINNED.match(image)) and (":" in image or "@sha256:" in image)


# -- compose ----------------------------------------------------------------------------------


def _compose_client() -> list[str] | None:
    """`docker compose` if the plugin works, else docker-compose v1, else None (as the
    Makefile's test-docker target)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _service_blocks(text: str) -> dict[str, str]:
    """The services of a compose file written in block style: name → its lines."""
    blocks: dict[str, str] = {}
    inside, name = False, ""
    for line in text.splitlines():
        if re.match(r"^\S", line):
            inside, name = line.rstrip() == "services:", ""
            continue
        m = re.match(r"^  ([A-Za-z0-9_.-]+):\s*$", line)
        if inside and m:
            name = m.group(1)
            blocks[name] = ""
        elif inside and name:
            blocks[name] += line + "\n"
    return blocks


def _anchors(text: str) -> dict[str, str]:
    """Top-level extension fields with an anchor (`x-name: &anchor`): anchor → their lines."""
    out: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        m = re.match(r"^x-[\w-]+:\s*&([\w-]+)\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif re.match(r"^\S", line):
            current = ""
        elif current:
            out[current] += line + "\n"
    return out


def _images(block: str, anchors: dict[str, str], seen: frozenset[str] = frozenset()) -> list[str]:
    """The image a service block names, directly or through `<<: *anchor` merges."""
    images = re.findall(r"^\s+image:\s*(\S+)\s*$", block, re.M)
    for anchor in re.findall(r"^\s+<<:\s*\*([\w-]+)\s*$", block, re.M):
        if anchor not in seen:
            images += _images(anchors[anchor], anchors, seen | {anchor})
    return images


def test_compose_file_validates_with_the_installed_client() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client installed")
    run = subprocess.run(
        [*client, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # the resolved file (anchors merged, variables interpolated): every service has a
    # pinned image
    resolved = subprocess.run(
        [*client, "-f", str(COMPOSE), "config"], capture_output=True, text=True, check=True
    ).stdout
    services = _service_blocks(resolved)
    assert len(services) == 8
    for name, block in services.items():
        images = re.findall(r"^    image:\s*(\S+)\s*$", block, re.M)
        assert len(images) == 1 and _pinned(images[0]), (name, images)


def test_compose_services_and_their_images() -> None:
    text = COMPOSE.read_text()
    services = _service_blocks(text)
    anchors = _anchors(text)
    assert set(services) == {
        "postgres",
        "anvil",
        "deployer",
        "activator",
        "node1",
        "node2",
        "node3",
        "node4",
    }
    for name, block in services.items():
        images = _images(block, anchors)
        assert len(images) == 1, (name, images)
        assert _pinned(images[0]), f"service {name}: image {images[0]} is not pinned"
    # every service but postgres runs the image built from docker/Dockerfile, tagged with
    # the package's version
    mira = {s: _images(b, anchors)[0] for s, b in services.items() if s != "postgres"}
    assert set(mira.values()) == {f"mira-node:{oracle.__version__}"}
    assert "dockerfile: docker/Dockerfile" in anchors["mira"]


def test_compose_flow_is_ordered_by_conditions() -> None:
    text = COMPOSE.read_text()
    services = _service_blocks(text)
    anchors = _anchors(text)
    assert "condition: service_completed_successfully" in services["activator"]
    assert re.search(r"deployer:\s*\n\s*condition: service_completed_successfully", text)
    # nodes wait for anvil and postgres to be healthy, not for the deployer (which waits
    # for the nodes' member files)
    assert "<<: *node" in services["node1"]
    node = anchors["node"]
    assert re.search(r"anvil:\s*\n\s*condition: service_healthy", node)
    assert re.search(r"postgres:\s*\n\s*condition: service_healthy", node)
    for name in ("postgres", "anvil"):
        assert "healthcheck:" in services[name]
    # one database per node, each node its own
    dbs = re.search(r"MIRA_DATABASES:\s*(.+)", services["postgres"])
    assert dbs is not None
    for i in range(1, 5):
        assert f"mira_node{i}" in dbs.group(1).split()
        assert f"@postgres:5432/mira_node{i}" in services[f"node{i}"]
        assert f"MIRA_NODE_NAME: node{i}" in services[f"node{i}"]
    assert "--block-time" in services["anvil"] and '"31337"' in services["anvil"]


# -- Dockerfile -------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pins_every_base_image_and_runs_as_non_root() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[str] = []
    final_stage: list[tuple[str, str]] = []
    for word, rest in instructions:
        if word == "ARG" and "=" in rest and not stages:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip()
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            assert image in stages or _pinned(image), f"FROM {parts[0]} → {image} is not pinned"
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.append(parts[2])
            final_stage = []
        final_stage.append((word, rest))
    assert len(stages) >= 2, "expected a multi-stage build"
    assert args["PYTHON_IMAGE"].startswith("python:") and "slim" in args["PYTHON_IMAGE"]
    assert args["NODE_IMAGE"].startswith("node:")
    # the runtime stage: built on the slim python image, not on a build stage
    assert final_stage[0] == ("FROM", "${PYTHON_IMAGE}")
    users = [rest for word, rest in final_stage if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in final_stage)
    # no build tools installed at run time; the toolchain stays in the build stages
    runs = " ".join(rest for word, rest in final_stage if word == "RUN")
    for tool in ("apt-get install", "npm ", "gcc", "build-essential"):
        assert tool not in runs
    # the python stage installs against the constraints, binary wheels only
    text = DOCKERFILE.read_text()
    assert "-c constraints.txt" in text and "--only-binary=:all:" in text
    # the contracts stage installs from the lockfile, as the Makefile does
    assert "npm ci --ignore-scripts" in text and "bin/fetch-chainlink" in text


def test_image_builds_the_wheel_with_its_run_time_files() -> None:
    """The image installs the package from a wheel, not beside the checkout: the wheel's
    build step must see contracts/out (from the contracts stage) and feeds/, and the runtime
    stage must not point the package at copies of its own (a second source)."""
    text = DOCKERFILE.read_text()
    python_stage = text[text.index("AS python") : text.index("# -- runtime")]
    wheel_at = python_stage.index("pip wheel")
    for copy in (
        "COPY pyproject.toml setup.py",
        "COPY oracle ./oracle",
        "COPY feeds ./feeds",
        "COPY --from=contracts /build/contracts/out ./contracts/out",
    ):
        assert -1 < python_stage.find(copy) < wheel_at, copy
    env = dict(re.findall(r"(MIRA_[A-Z_]+)=(\S+)", text))
    for gone in ("MIRA_MIGRATIONS_DIR", "MIRA_ARTIFACTS_DIR", "MIRA_CONTRACTS_DIR"):
        assert gone not in env, f"{gone}: the wheel carries these files"
    assert f"COPY feeds {env['MIRA_FEEDS_SRC']}" in text  # what deployer.sh reads
    runtime = text.split("# -- runtime")[1]
    assert not re.search(r"^COPY\s.*(migrations|contracts/out)", runtime, re.M)


def test_artifact_locations_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MIRA_CONTRACTS_DIR (its out/) and MIRA_ARTIFACTS_DIR point the package at a contracts
    build of its own, e.g. a changed contract tried with an installed wheel."""
    out = tmp_path / "contracts" / "out"
    (out / "X.sol").mkdir(parents=True)
    (out / "X.sol" / "X.json").write_text(
        json.dumps({"abi": [], "bytecode": {"object": "0x00"}, "deployedBytecode": {"object": ""}})
    )
    monkeypatch.setenv("MIRA_CONTRACTS_DIR", str(tmp_path / "contracts"))
    monkeypatch.delenv("MIRA_ARTIFACTS_DIR", raising=False)
    assert artifacts.artifacts_dir() == out.resolve()
    assert toolchain.contracts_dir() == (tmp_path / "contracts").resolve()
    monkeypatch.delenv("MIRA_CONTRACTS_DIR")
    monkeypatch.setenv("MIRA_ARTIFACTS_DIR", str(out))
    artifacts.load.cache_clear()
    try:
        assert artifacts.load("X").bytecode == b"\x00"
    finally:
        artifacts.load.cache_clear()


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "contracts/node_modules", "contracts/out", "contracts/cache"):
        assert entry in ignored
    assert any("sqlite" in e for e in ignored)


# -- entry scripts ----------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_entry_scripts_are_posix_sh(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -eu\n" in text
    assert os.access(script, os.X_OK)
    shells = [s for s in ("sh", "dash") if shutil.which(s)]
    for shell in shells:
        run = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert run.returncode == 0, f"{shell} -n {script.name}: {run.stderr}"


def _env(**extra: str | Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRA_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MIRA_PYTHON"] = sys.executable
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(script: str, *steps: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DOCKER / script), *steps],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_deployer_feeds_step_is_the_devnet_rewrite(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    run = _run("deployer.sh", "feeds", env=_env(MIRA_SHARED=shared, MIRA_FEEDS_SRC=ROOT / "feeds"))
    assert run.returncode == 0, run.stderr
    written = sorted((shared / "feeds").glob("*.toml"))
    # the default: the replay feeds (the HTTP median feed needs price sources compose lacks)
    sources = [
        p for p in sorted((ROOT / "feeds").glob("*.toml")) if 'kind = "replay"' in p.read_text()
    ]
    assert [p.name for p in written] == [p.name for p in sources] and len(written) >= 3
    specs = load_feed_specs(written)
    starts = {s.start_ms for spec in specs for s in spec.sources}
    assert len(starts) == 1, "every replay must start at the same time on every node"
    (start,) = starts
    for spec, path in zip(specs, sources, strict=True):
        devnet = tmp_path / "devnet" / path.name
        devnet.parent.mkdir(exist_ok=True)
        devnet.write_text(devnet_spec_text(path.read_text(), [9101, 9102, 9103], start))
        (expected,) = load_feed_specs([devnet])
        assert spec.sources == expected.sources and spec.heartbeat_s == expected.heartbeat_s
        assert spec.sources[0].realtime and spec.heartbeat_s <= 10

    # an explicit selection, and a clear error for a spec that does not exist
    chosen = _run(
        "deployer.sh",
        "feeds",
        env=_env(MIRA_SHARED=shared, MIRA_FEEDS_SRC=ROOT / "feeds", MIRA_FEEDS="sp500_forecast"),
    )
    assert chosen.returncode == 0, chosen.stderr
    assert [p.name for p in (shared / "feeds").glob("*.toml")] == ["sp500_forecast.toml"]
    missing = _run(
        "deployer.sh",
        "feeds",
        env=_env(MIRA_SHARED=shared, MIRA_FEEDS_SRC=ROOT / "feeds", MIRA_FEEDS="nope"),
    )
    assert missing.returncode == 1 and "no feed spec" in missing.stderr


def _member(i: int) -> dict[str, str]:
    return {
        "operator": Web3.to_checksum_address(f"0x{i:040x}"),
        "identity_key": "0x02" + f"{i:02x}" * 32,
        "p2p_url": f"http://node{i}:7701",
    }


def test_deployer_members_step(tmp_path: Path) -> None:
    shared, home = tmp_path / "shared", tmp_path / "deployer"
    (shared / "members").mkdir(parents=True)
    for i in (3, 1, 4, 2):
        (shared / "members" / f"node{i}.json").write_text(json.dumps(_member(i)))
    env = _env(MIRA_SHARED=shared, MIRA_HOME=home, MIRA_COMMITTEE_SIZE="4")
    run = _run("deployer.sh", "members", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads((home / "members.json").read_text()) == [_member(i) for i in (1, 2, 3, 4)]
    # too few member files: waits, then fails naming the count
    env.update(MIRA_COMMITTEE_SIZE="5", MIRA_WAIT_TIMEOUT_S="1")
    short = _run("deployer.sh", "members", env=env)
    assert short.returncode == 1 and "4 of 5 member files" in short.stderr


def test_node_config_step_writes_a_node_toml_the_node_loads(tmp_path: Path) -> None:
    shared, home = tmp_path / "shared", tmp_path / "node1"
    shutil.copytree(ROOT / "feeds", shared / "feeds")
    oracle_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    (shared / "manifest.json").write_text(json.dumps({"oracle": oracle_address}))
    env = _env(
        MIRA_HOME=home,
        MIRA_SHARED=shared,
        MIRA_NODE_NAME="node1",
        MIRA_RPC_URL="http://anvil:8545",
        MIRA_BACKUP_RPC_URLS="http://rpc-b:8545 https://rpc-c.example/v1",
        MIRA_DATABASE_URL="postgresql+psycopg://mira:secret@postgres:5432/mira_node1",
        MIRA_FEEDS="sp500_forecast waterflow_anomaly",
        MIRA_P2P_PORT="7701",
        MIRA_API_PORT="8080",
    )
    run = _run("node.sh", "config", env=env)
    assert run.returncode == 0, run.stderr
    config, specs = load_node(home / "node.toml")
    assert config.name == "node1"
    assert config.database.url == "postgresql+psycopg://mira:secret@postgres:5432/mira_node1"
    assert (config.api.host, config.api.port) == ("0.0.0.0", 8080)
    assert [s.id for s in specs] == ["SP500/forecast-1", "WATERFLOW/anomaly"]
    net = config.network
    assert net is not None
    assert (net.listen_host, net.listen_port) == ("0.0.0.0", 7701)
    assert net.oracle == oracle_address and net.rpc_url == "http://anvil:8545"
    assert net.backup_rpc_urls == ("http://rpc-b:8545", "https://rpc-c.example/v1")
    assert net.keys_dir == home / "keys" and net.passphrase_file == home / "keys" / "passphrase"

    # SQLite by default, relative to the node's home; every feed when none is named
    env.pop("MIRA_DATABASE_URL")
    env.pop("MIRA_FEEDS")
    assert _run("node.sh", "config", env=env).returncode == 0
    config, specs = load_node(home / "node.toml")
    assert config.database.url == f"sqlite:///{home / 'node.sqlite'}"
    assert len(specs) == len(list((ROOT / "feeds").glob("*.toml")))

    bad = _run("node.sh", "nope", env=env)
    assert bad.returncode == 1 and "unknown step" in bad.stderr


@pytest.mark.anvil
@pytest.mark.slow
def test_scripts_deploy_on_anvil_and_configure_a_node(anvil: Anvil, tmp_path: Path) -> None:
    """The compose flow up to the committee proposal, on the host: a node creates and
    publishes its keys, the deployer funds it and deploys, the node configures itself from
    the manifest and migrates its database; a second deploy finds the deployment."""
    shared = tmp_path / "shared"
    cast_dir = toolchain.tool("cast").parent
    common = {
        "MIRA_SHARED": shared,
        "MIRA_RPC_URL": anvil.url,
        "PATH": f"{BIN}{os.pathsep}{cast_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    node_env = _env(
        **common, MIRA_HOME=tmp_path / "node1", MIRA_NODE_NAME="node1", MIRA_P2P_HOST="127.0.0.1"
    )
    run = _run("node.sh", "keys", "publish", env=node_env)
    assert run.returncode == 0, run.stderr
    member = json.loads((shared / "members" / "node1.json").read_text())
    assert member["p2p_url"] == "http://127.0.0.1:7701"
    assert len(bytes.fromhex(member["identity_key"][2:])) == 33
    assert (tmp_path / "node1" / "keys" / "passphrase").stat().st_mode & 0o077 == 0

    w3 = Web3(Web3.HTTPProvider(anvil.url))
    deployer_env = _env(
        **common,
        MIRA_HOME=tmp_path / "deployer",
        MIRA_FEEDS_SRC=ROOT / "feeds",
        MIRA_COMMITTEE_SIZE="1",
        MIRA_FUNDER_ADDRESS=w3.eth.accounts[0],
    )
    # every step of `deploy` but the committee proposal (the network DKG's command)
    steps = ("keys", "members", "feeds", "fund", "contracts", "publish")
    run = _run("deployer.sh", *steps, env=deployer_env)
    assert run.returncode == 0, run.stderr
    assert w3.eth.get_balance(member["operator"]) == Web3.to_wei(10, "ether")
    manifest = json.loads((shared / "manifest.json").read_text())
    assert w3.eth.get_code(manifest["oracle"]) != b""
    again = _run("deployer.sh", "deploy", env=deployer_env)
    assert again.returncode == 0 and "already deployed" in again.stderr

    run = _run("node.sh", "wait", "config", "migrate", env=node_env)
    assert run.returncode == 0, run.stderr
    config, specs = load_node(tmp_path / "node1" / "node.toml")
    assert config.network is not None and config.network.oracle == manifest["oracle"]
    assert {s.id for s in specs} == set(manifest["feeds"])
