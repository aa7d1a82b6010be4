"""Contract ABIs and bytecode, read from the Foundry build: the single source of truth.

A module of the package's lowest layer, beside :mod:`oracle.bundle`: the feed-spec reader
(oracle.config) resolves a chain-events source's event against these ABIs, and the chain
layer deploys and calls the contracts with them.

``forge build`` writes ``contracts/out/<File>.sol/<Contract>.json``; Python never carries
a hand-copied ABI. An installed wheel carries the artifacts of ``contracts/src`` copied from
that build (:mod:`oracle.bundle`). ``MIRA_ARTIFACTS_DIR`` (or ``MIRA_CONTRACTS_DIR``/out)
overrides the location.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from oracle import bundle
from oracle.bundle import CONTRACTS_DIR_ENV, contracts_dir
from oracle.errors import ToolchainError


@dataclass(frozen=True)
class Artifact:
    """The parts of a forge artifact Python needs."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes


def artifacts_dir() -> Path:
    override = os.environ.get("MIRA_ARTIFACTS_DIR")
    if override:
        return Path(override).resolve()
    if os.environ.get(CONTRACTS_DIR_ENV):
        return contracts_dir() / "out"
    return bundle.locate(bundle.ARTIFACTS)


@cache
def load(name: str) -> Artifact:
    """Load contract ``name``; raise ToolchainError naming the build step if it is absent."""
    root = artifacts_dir()
    matches = sorted(root.glob(f"*.sol/{name}.json")) if root.is_dir() else []
    if not matches:
        raise ToolchainError(
            f"no artifact for contract {name!r} under {root}: build the contracts with "
            "`make contracts` (runs `forge build` in contracts/)"
        )
    if len(matches) > 1:
        found = ", ".join(str(m.relative_to(root)) for m in matches)
        raise ToolchainError(f"contract name {name!r} is ambiguous under {root}: {found}")
    raw = json.loads(matches[0].read_text())
    try:
        return Artifact(
            name=name,
            abi=raw["abi"],
            bytecode=bytes.fromhex(raw["bytecode"]["object"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(raw["deployedBytecode"]["object"].removeprefix("0x")),
        )
    except (KeyError, ValueError) as exc:
        raise ToolchainError(f"artifact {matches[0]} is malformed: {exc}") from exc


def build_hash() -> str | None:
    """A short fingerprint of the contract build this package runs against: SHA-256 over
    each ``contracts/src`` artifact's name and deployed bytecode, so a checkout and the
    wheel built from it print the same value. ``None`` when nothing is built.

    In a checkout, forge's output also holds test and library contracts; their metadata
    names a compilation target outside ``src/`` and they are left out. A wheel's slimmed
    artifacts carry no metadata and are all from ``src/``."""
    root = artifacts_dir()
    digest = hashlib.sha256()
    count = 0
    for path in sorted(root.glob("*.sol/*.json")) if root.is_dir() else []:
        raw = json.loads(path.read_text())
        targets = (raw.get("metadata") or {}).get("settings", {}).get("compilationTarget", {})
        if targets and not any(str(t).startswith("src/") for t in targets):
            continue
        code = raw.get("deployedBytecode", {}).get("object", "")
        digest.update(f"{path.parent.name}/{path.stem}\0{code}\0".encode())
        count += 1
    return digest.hexdigest()[:16] if count else None
