"""The consumer npm package works outside this repository.

`npm pack` of contracts/src/consumer gives a tarball; a new Foundry project that depends on that
tarball alone (npm install of the file, a remapping, nothing else from this repository but the
pinned compiler) builds a MiraConsumer, and on anvil the oracle calls it back with a report's
update. Offline: npm packs and installs local files only; forge is the pinned one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from web3 import Web3
from web3.logs import DISCARD

from oracle.bench.gas import start_committee
from oracle.chain.deploy import deploy
from oracle.chain.toolchain import contracts_dir, tool
from oracle.reporting.report import FeedUpdate, Report, digest, encode

PACKAGE = contracts_dir() / "src" / "consumer"

LOGGER = """// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MiraConsumer} from "@mira-oracle/consumer/MiraConsumer.sol";

contract Logger is MiraConsumer {
    event Seen(bytes32 feedId, int128 value, uint64 observedAt, uint64 round);

    constructor(address oracle) MiraConsumer(oracle) {}

    function _onMiraUpdate(Update[] calldata updates) internal override {
        for (uint256 i; i < updates.length; ++i) {
            emit Seen(updates[i].feedId, updates[i].value, updates[i].observedAt, updates[i].round);
        }
    }
}
"""


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build_outside_project(tmp_path: Path) -> dict:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to pack the consumer package (it installs the toolchain too)")
    version = json.loads((PACKAGE / "package.json").read_text())["version"]
    packed = tmp_path / "packed"
    packed.mkdir()
    _run([npm, "pack", str(PACKAGE), "--pack-destination", str(packed), "--offline"], tmp_path)
    tarball = packed / f"mira-oracle-consumer-{version}.tgz"
    assert tarball.is_file(), sorted(p.name for p in packed.iterdir())

    project = tmp_path / "outside"
    (project / "src").mkdir(parents=True)
    (project / "package.json").write_text('{"name": "outside", "private": true}')
    _run([npm, "install", "--offline", "--no-audit", "--no-fund", str(tarball)], project)
    (project / "foundry.toml").write_text(
        "[profile.default]\n"
        'src = "src"\nout = "out"\nlibs = ["node_modules"]\n'
        'remappings = ["@mira-oracle/consumer/=node_modules/@mira-oracle/consumer/"]\n'
        f'solc = "{contracts_dir() / "bin" / "solc"}"\n'
        'offline = true\nauto_detect_solc = false\nevm_version = "cancun"\n'
    )
    (project / "src" / "Logger.sol").write_text(LOGGER)
    _run([str(tool("forge")), "build"], project)
    return json.loads((project / "out" / "Logger.sol" / "Logger.json").read_text())


def test_packed_consumer_builds_outside_and_receives_callbacks(w3: Web3, tmp_path: Path) -> None:
    artifact = _build_outside_project(tmp_path)

    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    committee = start_committee(w3, oracle, 4)
    feed = keccak(b"PACKAGE/USD")
    w3.eth.wait_for_transaction_receipt(oracle.functions.registerFeed(feed, 8, "PACKAGE / USD").transact())

    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]["object"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(oracle.address).transact())
    logger = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    w3.eth.wait_for_transaction_receipt(
        oracle.functions.subscribe(logger.address, [feed], 100_000).transact({"value": 10**17})
    )

    now = int(w3.eth.get_block("latest")["timestamp"])
    report = encode(Report(committee.epoch, now * 1000, (FeedUpdate(feed, -1234, now, keccak(b"m")),)))
    message = digest(w3.eth.chain_id, oracle.address, committee.epoch, report)
    call = oracle.encode_abi("transmit", args=[report, committee.sign(message)])
    hints = bytes(oracle.functions.ringHints([feed]).call())
    tx = w3.eth.send_transaction({"to": oracle.address, "data": call + hints.hex()})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1

    seen = logger.events.Seen().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in seen] == [
        {"feedId": feed, "value": -1234, "observedAt": now, "round": now * 1000}
    ]
    assert oracle.events.CallbackFailed().process_receipt(receipt, errors=DISCARD) == ()
    assert oracle.functions.reimbursementOf(w3.eth.accounts[0]).call() > 0
