"""Locate the pinned Solidity toolchain (Foundry and solcjs from contracts/package.json).

The binaries come from the npm registry via ``contracts/package-lock.json``; nothing is
downloaded at run time. ``MIRA_CONTRACTS_DIR`` points at a contracts tree outside the
source checkout (e.g. inside the node image).
"""

from __future__ import annotations

import os
from pathlib import Path

from oracle.bundle import CHECKOUT
from oracle.errors import ToolchainError

_TOOLS = ("anvil", "forge", "cast")
CONTRACTS_DIR_ENV = "MIRA_CONTRACTS_DIR"


def contracts_dir() -> Path:
    """The Foundry project: ``$MIRA_CONTRACTS_DIR`` or ``contracts/`` beside the package."""
    override = os.environ.get(CONTRACTS_DIR_ENV)
    if override:
        return Path(override).resolve()
    return CHECKOUT / "contracts"


def tool(name: str) -> Path:
    """Path of a pinned Foundry binary, with a message saying how to get it if it is missing."""
    if name not in _TOOLS:
        raise ToolchainError(f"unknown tool {name!r}: expected one of {', '.join(_TOOLS)}")
    path = contracts_dir() / "node_modules" / ".bin" / name
    if not path.exists():
        raise ToolchainError(
            f"{name} not found at {path}: install the pinned toolchain with `make setup` "
            "(runs `npm ci` in contracts/)"
        )
    return path
