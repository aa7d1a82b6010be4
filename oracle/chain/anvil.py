"""Run a local anvil from the pinned toolchain: for tests, benchmarks and the devnet.

Anvil is started on port 0 so the kernel picks a free port (no race between choosing a
port and binding it); the port is read back from anvil's "Listening on" line. The
process gets its own session so that stopping it never leaves a child behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from oracle.chain.toolchain import tool
from oracle.children import die_with_parent
from oracle.errors import ChainError

_LISTENING = re.compile(rb"Listening on ([0-9.]+):(\d+)")
_RPC_METHOD = re.compile(rb"([a-z0-9]+_[A-Za-z0-9]+)\n")  # anvil logs each request's method


@dataclass
class AnvilConfig:
    chain_id: int = 31337
    accounts: int = 10
    balance_eth: int = 10_000
    block_time: float | None = None  # None: a block per transaction (automine)
    host: str = "127.0.0.1"
    port: int = 0
    extra_args: list[str] = field(default_factory=list)
    # SIGKILL anvil when the process that started it ends, however it ends (the devnet)
    die_with_parent: bool = False


class Anvil:
    """A running anvil. Use as a context manager, or call ``start``/``stop``."""

    def __init__(self, config: AnvilConfig | None = None, startup_timeout: float = 30.0) -> None:
        self.config = config or AnvilConfig()
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mira-anvil-")
        self._output: list[bytes] = []
        self.port: int | None = None
        self.private_keys: list[str] = []

    def rpc_methods(self) -> list[str]:
        """The JSON-RPC method of every request anvil has served so far, in order (read
        off its log: what the clients cost an RPC provider, counted)."""
        return [m.group(1).decode() for line in self._output if (m := _RPC_METHOD.fullmatch(line))]

    @property
    def url(self) -> str:
        if self.port is None:
            raise ChainError("anvil is not running")
        return f"http://{self.config.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Anvil:
        cfg = self.config
        config_out = Path(self._tmp.name) / "anvil.json"
        args = [
            str(tool("anvil")),
            "--host", cfg.host,
            "--port", str(cfg.port),
            "--chain-id", str(cfg.chain_id),
            "--accounts", str(cfg.accounts),
            "--balance", str(cfg.balance_eth),
            "--config-out", str(config_out),
        ]  # fmt: skip
        if cfg.block_time is not None:
            args += ["--block-time", str(cfg.block_time)]
        args += cfg.extra_args
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL) if cfg.die_with_parent else None,
        )
        self.port = self._await_listening()
        # anvil writes --config-out just before it listens; read the funded keys from it.
        self.private_keys = list(json.loads(config_out.read_text())["private_keys"])
        return self

    def _await_listening(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        found: list[int] = []
        stdout = self._proc.stdout

        def read() -> None:
            for line in iter(stdout.readline, b""):
                self._output.append(line)
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(int(match.group(2)))
            # keep draining so anvil never blocks on a full pipe

        threading.Thread(target=read, name="anvil-stdout", daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if found:
                return found[0]
            if self._proc.poll() is not None:
                tail = b"".join(self._output[-20:]).decode(errors="replace")
                raise ChainError(f"anvil exited with code {self._proc.returncode}:\n{tail}")
            time.sleep(0.02)
        self.stop()
        raise ChainError(f"anvil did not start listening within {self.startup_timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self.port = None
        self._tmp.cleanup()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
