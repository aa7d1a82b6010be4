"""``mira deploy`` against a real anvil, signed by a keystore's operator key."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import at
from oracle.cli.main import cli
from oracle.config import load_feed_specs
from oracle.crypto.keystore import KeyStore

PASS = "correct horse battery staple"
FEEDS = Path(__file__).resolve().parents[2] / "feeds"


def _funded_keystore(w3: Web3, tmp_path: Path) -> tuple[Path, str]:
    keys = tmp_path / "keys"
    created = KeyStore(keys).create(PASS.encode())
    operator = Web3.to_checksum_address(created["operator"]["address"])
    tx = w3.eth.send_transaction({"to": operator, "value": Web3.to_wei(10, "ether")})
    w3.eth.wait_for_transaction_receipt(tx)
    return keys, operator


def test_deploy_registers_every_feed_spec(w3: Web3, anvil: Anvil, tmp_path: Path) -> None:
    keys, operator = _funded_keystore(w3, tmp_path)
    out = tmp_path / "manifest.json"
    args = ["deploy", "--rpc-url", anvil.url, "--keys-dir", str(keys), "--out", str(out)]
    args += ["--feeds-dir", str(FEEDS), "--json"]
    result = CliRunner().invoke(cli, args, env={"MIRA_KEY_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.read_text())
    assert json.loads(result.stdout) == {**manifest, "manifest": str(out)}  # --json: one object
    assert manifest["owner"] == operator and manifest["chain_id"] == 31337
    specs = load_feed_specs(sorted(FEEDS.glob("*.toml")))
    assert set(manifest["feeds"]) == {s.id for s in specs} and len(specs) >= 3
    oracle = at(w3, "MiraOracle", manifest["oracle"])
    for entry in manifest["feeds"].values():
        assert (
            oracle.functions.proxyOf(bytes.fromhex(entry["feed_id"][2:])).call() == entry["proxy"]
        )


def test_deploy_errors_are_one_clear_line(w3: Web3, anvil: Anvil, tmp_path: Path) -> None:
    keys, _ = _funded_keystore(w3, tmp_path)
    out = tmp_path / "manifest.json"
    runner = CliRunner()
    no_pass = runner.invoke(
        cli, ["deploy", "--rpc-url", anvil.url, "--keys-dir", str(keys), "--out", str(out)], env={}
    )
    assert no_pass.exit_code == 1 and "no passphrase" in no_pass.output
    wrong = runner.invoke(
        cli,
        ["deploy", "--rpc-url", anvil.url, "--keys-dir", str(keys), "--out", str(out)],
        env={"MIRA_KEY_PASSPHRASE": "wrong"},
    )
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    dead = runner.invoke(
        cli,
        ["deploy", "--rpc-url", "http://127.0.0.1:9", "--keys-dir", str(keys), "--out", str(out)],
        env={"MIRA_KEY_PASSPHRASE": PASS},
    )
    assert dead.exit_code == 1 and "no JSON-RPC answer from http://127.0.0.1:9" in dead.output
    assert not out.exists()
