"""``mira --version``: what a bug report needs, and a contract fingerprint that follows the
build of ``contracts/src`` only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from oracle import __version__, artifacts
from oracle.cli.main import cli


def test_version_names_package_contract_build_and_pinned_libraries() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"mira {__version__}"
    assert lines[1].startswith("contracts ") and len(lines[1].split()[1]) == 16
    pins = dict(line.split(" ", 1) for line in lines[2:4])
    constraints = (Path(__file__).resolve().parents[2] / "constraints.txt").read_text()
    for name in ("river", "numpy"):  # the exact pins model replay depends on
        assert f"{name}=={pins[name]}" in constraints.splitlines()


def test_build_hash_follows_source_contracts_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = artifacts.artifacts_dir()
    baseline = artifacts.build_hash()
    assert baseline is not None
    copy = tmp_path / "out"
    shutil.copytree(built, copy)
    monkeypatch.setenv("MIRA_ARTIFACTS_DIR", str(copy))
    assert artifacts.build_hash() == baseline

    # a test contract's artifact changing does not change the fingerprint ...
    test_artifact = next(
        p
        for p in sorted(copy.glob("*.sol/*.json"))
        if not any(
            str(t).startswith("src/")
            for t in json.loads(p.read_text())["metadata"]["settings"]["compilationTarget"]
        )
    )
    raw = json.loads(test_artifact.read_text())
    raw["deployedBytecode"]["object"] += "00"
    test_artifact.write_text(json.dumps(raw))
    assert artifacts.build_hash() == baseline

    # ... a source contract's bytecode does
    oracle_artifact = copy / "MiraOracle.sol" / "MiraOracle.json"
    raw = json.loads(oracle_artifact.read_text())
    raw["deployedBytecode"]["object"] += "00"
    oracle_artifact.write_text(json.dumps(raw))
    assert artifacts.build_hash() != baseline


def test_version_without_a_build_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRA_ARTIFACTS_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert f"contracts not built (no artifacts under {tmp_path})" in result.output
