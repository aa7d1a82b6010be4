"""Node processes on one machine: provision members' keys, write their node.toml, start
and stop ``mira node run``. What the devnet, ``mira bench e2e`` and the multi-process
tests share."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_account import Account

from oracle.chain.oracle_calls import MemberInfo
from oracle.chain.rotation import default_threshold
from oracle.children import die_with_parent
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.keystore import KeyStore, OperatorKey, encrypt_key

T = TypeVar("T")
PASSPHRASE = b"localnet-passphrase"  # the key files of a local committee (not secret)
# ``mira node run``, as the CLI runs it
NODE_MAIN: tuple[str, ...] = (sys.executable, "-c", "from oracle.cli.main import main; main()")


_LOWEST_PORT = 10_000  # below: well-known services' ports (PostgreSQL 5432, Redis 6379, ...)
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``host:port`` (checked by binding it as the servers do: a port in
    TIME_WAIT is free to them)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; its default elsewhere)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_block(n: int) -> int:
    """The first of ``n`` consecutive ports on 127.0.0.1 that nothing listens on, for
    processes started later to bind (a devnet's ``--base-port`` layout takes a block).

    Below the kernel's ephemeral range: ``bind(("127.0.0.1", 0))`` and every outgoing
    connection (the harness's and the nodes' RPC calls, the members' p2p requests) take
    ports of that range, so a port found free there can be taken in the seconds before
    the child binds it — a node whose p2p port went that way stopped every member's DKG.
    Below the range a port is only taken by a bind that names it. Random, so two harnesses
    rarely pick alike; no port is handed out twice in a process."""
    low = _ephemeral_low()
    # an unusual range that leaves no room below it: anywhere above the well-known ports
    top = low - n if low - n - _LOWEST_PORT >= 1_000 else 65_536 - n
    with _handed_out_lock:
        for _ in range(1_000):
            base = random.randrange(_LOWEST_PORT, top)  # noqa: S311 (not a secret)
            block = range(base, base + n)
            if _handed_out.isdisjoint(block) and all(port_free(p) for p in block):
                _handed_out.update(block)
                return base
    raise RuntimeError(f"no {n} free consecutive ports on 127.0.0.1 after 1,000 tries")


def free_port() -> int:
    """One port as :func:`free_block` hands them out."""
    return free_block(1)


class BackgroundLoop:
    """An asyncio loop in a daemon thread, for the launcher's servers (price sources)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class NodeProc:
    index: int
    dir: Path
    api_port: int
    p2p_port: int
    operator: str
    proc: subprocess.Popen[bytes] | None = None
    log_file: Any = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass
class Committee:
    """A committee provisioned by the launcher: per-member key files, no key shares (the
    members derive those themselves, in the DKG their nodes run over p2p)."""

    threshold: int
    members: list[MemberInfo]
    nodes: list[NodeProc]


def write_operator_key(directory: Path, private_key: str) -> KeyStore:
    """Write ``private_key`` as the operator key of key directory ``directory``, with the
    local network's passphrase in ``directory/passphrase`` (what ``--keys-dir`` and
    ``--passphrase-file`` of the ``mira`` commands read)."""
    keys = KeyStore(directory, scrypt_n=2**10)
    keys.directory.mkdir(parents=True, exist_ok=True)
    (keys.directory / "passphrase").write_bytes(PASSPHRASE)
    op_key = OperatorKey(bytes.fromhex(private_key.removeprefix("0x")))
    keys.write_document(
        "operator", encrypt_key("operator", op_key, PASSPHRASE, scrypt_n=2**10), overwrite=True
    )
    return keys


def provision_committee(
    dirs: list[Path],
    operator_keys: list[str],
    ports: list[tuple[int, int]],
    *,
    host: str = "127.0.0.1",
) -> Committee:
    """Write each member's encrypted operator key and a fresh identity key into
    ``dirs[i]/keys``. ``ports[i]`` is member i's (API, p2p) port pair."""
    n = len(dirs)
    members, nodes = [], []
    for i in range(n):
        operator = Account.from_key(operator_keys[i])
        node = NodeProc(i, dirs[i], ports[i][0], ports[i][1], operator.address)
        nodes.append(node)
        keys = write_operator_key(node.dir / "keys", operator_keys[i])
        identity = IdentityKey()
        keys.write_document(
            "identity",
            encrypt_key("identity", identity, PASSPHRASE, scrypt_n=2**10),
            overwrite=True,
        )
        members.append(
            MemberInfo(operator.address, identity.public_bytes, f"http://{host}:{node.p2p_port}")
        )
    return Committee(default_threshold(n), members, nodes)


def spawn_node(
    node: NodeProc,
    main: Sequence[str] = NODE_MAIN,
    env: Mapping[str, str] | None = None,
) -> None:
    """Start ``mira node run --config DIR/node.toml`` in its own session, logging to
    DIR/node.log. The node gets SIGTERM (and drains, within its stop bound) when the process
    that started it ends, however that ends (:func:`oracle.children.die_with_parent`).
    ``main``: the command that takes the CLI's arguments; ``env``: extra environment."""
    node.log_file = open(node.dir / "node.log", "ab")  # noqa: SIM115 (lives with the process)
    node.proc = subprocess.Popen(
        [*main, "node", "run", "--config", str(node.dir / "node.toml")],
        stdout=node.log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGTERM),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def stop_node(node: NodeProc, timeout: float = 10.0) -> None:
    """SIGTERM the node's process group; SIGKILL it if it has not exited after ``timeout``."""
    proc, node.proc = node.proc, None
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if node.log_file is not None:
        node.log_file.close()
        node.log_file = None


_NODE_TOML = """[node]
name = "node-{index}"
feeds_dir = "feeds"

[database]
url = "sqlite:///{database}"
{retain}
[api]
host = "127.0.0.1"
port = {api_port}
{scheduler}
[log]
level = "info"
format = "json"

[network]
listen_host = "127.0.0.1"
listen_port = {p2p_port}
rpc_url = "{rpc_url}"
oracle = "{oracle}"
keys_dir = "keys"
passphrase_file = "keys/passphrase"
round_period_s = {round_period}
observe_timeout_s = {observe_timeout}
transmit_timeout_s = {transmit_timeout}
rpc_timeout_s = {rpc_timeout}
dkg_phase_timeout_s = {dkg_phase_timeout}
{pull}"""


def node_config_toml(
    node: NodeProc,
    *,
    database: str,
    rpc_url: str,
    oracle: str,
    round_period: float,
    observe_timeout: float,
    transmit_timeout: float,
    rpc_timeout: float,
    flush_every_s: float | None = None,
    checkpoint_every_s: float | None = None,
    peer_urls: dict[str, str] | None = None,
    dkg_phase_timeout: float = 30.0,
    model_registry: str | None = None,
    models: dict[str, Any] | None = None,
    retain_s: float | None = None,
    pull_verifier: str | None = None,
) -> str:
    """The node.toml of one local member (the devnet, ``mira bench e2e`` and the tests write
    the same file; only the timing knobs differ). Keys, passphrase and key shares live in ./keys.
    ``peer_urls``: operator address → p2p URL overriding the registered one.
    ``model_registry``: the ModelRegistry the node follows (``[models]``, with ``models``'
    other keys, e.g. confirmations). ``retain_s``: [database] retain_s (None: keep every
    row, the default). ``pull_verifier``: the MiraPullVerifier the node signs a pull root
    for each round (None: no pull roots)."""
    scheduler = ""
    if flush_every_s is not None or checkpoint_every_s is not None:
        scheduler = "\n[scheduler]\n"
        if flush_every_s is not None:
            scheduler += f"flush_every_s = {flush_every_s}\n"
        if checkpoint_every_s is not None:
            scheduler += f"checkpoint_every_s = {checkpoint_every_s}\n"
    return (
        _NODE_TOML.format(
            index=node.index,
            database=database,
            retain="" if retain_s is None else f"retain_s = {retain_s}\n",
            api_port=node.api_port,
            p2p_port=node.p2p_port,
            scheduler=scheduler,
            rpc_url=rpc_url,
            oracle=oracle,
            round_period=round_period,
            observe_timeout=observe_timeout,
            transmit_timeout=transmit_timeout,
            rpc_timeout=rpc_timeout,
            dkg_phase_timeout=dkg_phase_timeout,
            pull="" if pull_verifier is None else f'pull_verifier = "{pull_verifier}"\n',
        )
        + "".join(
            ["\n[network.peer_urls]\n"]
            + [f'"{op}" = "{url}"\n' for op, url in sorted((peer_urls or {}).items())]
            if peer_urls
            else []
        )
        + _models_toml(model_registry, models or {})
    )


def _models_toml(registry: str | None, models: dict[str, Any]) -> str:
    if registry is None:
        return ""
    lines = [f'\n[models]\nregistry = "{registry}"\n']
    for key, value in sorted(models.items()):
        shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {shown}\n")
    return "".join(lines)
