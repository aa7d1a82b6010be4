"""Locate the pinned Solidity toolchain (Foundry and solcjs from contracts/package.json).

The binaries come from the npm registry via ``contracts/package-lock.json``; nothing is
downloaded at run time. ``MIRA_CONTRACTS_DIR`` points at a contracts tree outside the
source checkout (e.g. inside the node image).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from oracle.bundle import CONTRACTS_DIR_ENV, contracts_dir
from oracle.errors import ToolchainError

_TOOLS = ("anvil", "forge", "cast")
__all__ = ["CONTRACTS_DIR_ENV", "contracts_dir", "tool"]


def _platform() -> str:
    """The suffix of @foundry-rs's npm platform packages: linux-amd64, darwin-arm64, ..."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"{sys.platform}-{arch}"


def tool(name: str) -> Path:
    """Path of a pinned Foundry binary, with a message saying how to get it if it is missing."""
    if name not in _TOOLS:
        raise ToolchainError(f"unknown tool {name!r}: expected one of {', '.join(_TOOLS)}")
    modules = contracts_dir() / "node_modules"
    # The platform package's native binary rather than the `.bin` entry: that is a node
    # script running the binary as its child, so a signal for it (or the kernel's
    # parent-death signal, oracle.children) would leave the binary itself running.
    native = modules / "@foundry-rs" / f"{name}-{_platform()}" / "bin" / name
    if native.is_file():
        return native
    path = modules / ".bin" / name
    if not path.exists():
        raise ToolchainError(
            f"{name} not found at {path}: install the pinned toolchain with `make setup` "
            "(runs `npm install` in contracts/)"
        )
    return path
