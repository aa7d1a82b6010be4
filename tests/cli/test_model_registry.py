"""``mira model register|approve|publish|deactivate|list`` against the real contracts on
anvil (deployed by ``deploy_system``, the registry as the oracle's feed registrar): the
whole life of a model, and every refusal as one ``Error: …`` line, exit 1, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from web3 import Web3

from oracle.chain import registry as reg
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import at
from oracle.chain.system import deploy_system, feed_registrations
from oracle.cli.main import cli
from oracle.config import load_feed_spec
from oracle.crypto.keystore import KeyStore, OperatorKey, encrypt_key
from oracle.registry.fetch import read_data_uri

pytestmark = pytest.mark.anvil
PASS = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[2]
WATERFLOW = REPO / "feeds" / "waterflow_anomaly.toml"
SP500 = REPO / "feeds" / "sp500_forecast.toml"
ETH = REPO / "feeds" / "eth_usd_median.toml"


def _keys(tmp_path: Path, name: str, secret: str) -> Path:
    store = KeyStore(tmp_path / name, scrypt_n=2**10)
    store.directory.mkdir(parents=True)
    key = OperatorKey(bytes.fromhex(secret.removeprefix("0x")))
    document = encrypt_key("operator", key, PASS.encode(), scrypt_n=2**10)
    store.write_document("operator", document, overwrite=False)
    return store.directory


@pytest.fixture
def env(anvil: Anvil, w3: Web3, tmp_path: Path) -> dict[str, Any]:
    owner = Account.from_key(anvil.private_keys[0])
    # ETH/USD is registered by the owner at deployment: a model declaring it is refused
    manifest = deploy_system(w3, owner, anvil.url, feed_registrations([load_feed_spec(ETH)]))
    path = tmp_path / "manifest.json"
    manifest.write(path)
    return {
        "w3": w3,
        "manifest": str(path),
        "registry": manifest.model_registry,
        "oracle": at(w3, "MiraOracle", manifest.oracle),
        "owner": _keys(tmp_path, "owner", anvil.private_keys[0]),
        "alice": _keys(tmp_path, "alice", anvil.private_keys[1]),
        "bob": _keys(tmp_path, "bob", anvil.private_keys[2]),
        "owner_address": owner.address,
        "alice_address": Account.from_key(anvil.private_keys[1]).address,
        "bob_address": Account.from_key(anvil.private_keys[2]).address,
    }


def _model(env: dict[str, Any], *args: str, keys: str = "alice") -> Result:
    return CliRunner().invoke(
        cli,
        ["model", *args, "--manifest", env["manifest"], "--keys-dir", str(env[keys]), "--json"],
        env={"MIRA_KEY_PASSPHRASE": PASS},
    )


def _list(env: dict[str, Any]) -> Result:
    return CliRunner().invoke(cli, ["model", "list", "--manifest", env["manifest"], "--json"])


def _ok(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def _error(result: Result, *needles: str) -> None:
    """Exit 1, one `Error: …` line naming what is wrong, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], result.output


def _variant(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    path = tmp_path / f"variant-{source.name}"
    path.write_text(text.replace(old, new))
    return path


def test_a_model_from_proposal_to_registered_feeds(env: dict[str, Any], tmp_path: Path) -> None:
    spec = load_feed_spec(WATERFLOW)
    uri = "file://waterflow_anomaly.toml"
    proposed = _ok(_model(env, "register", str(WATERFLOW), "--uri", uri))
    assert proposed["registered_on_chain"] is True
    assert proposed["model_id"] == 1 and proposed["author"] == env["alice_address"]
    assert proposed["spec_hash"] == "0x" + spec.digest.hex()
    assert proposed["feed_ids"] == ["0x" + spec.id_bytes32.hex()]
    oracle = env["oracle"]
    assert not oracle.functions.isRegistered(spec.id_bytes32).call(), "not before approval"

    approved = _ok(_model(env, "approve", "1", keys="owner"))
    assert approved["version"] == 1 and approved["spec_hash"] == proposed["spec_hash"]
    (feed,) = approved["registered_feeds"]
    assert feed["feed_id"] == "0x" + spec.id_bytes32.hex()
    proxy = at(env["w3"], "MiraFeedProxy", feed["proxy"])
    assert proxy.functions.decimals().call() == spec.decimals
    assert proxy.functions.description().call() == spec.description
    assert oracle.functions.proxyOf(spec.id_bytes32).call() == feed["proxy"]

    # a new version of the same feed: published by the author, approved by the owner
    v2 = _variant(tmp_path, WATERFLOW, "seed = 42", "seed = 43")
    published = _ok(_model(env, "publish", "1", str(v2), "--embed"))  # the spec on-chain
    assert published["version"] == 2
    assert read_data_uri(published["spec_uri"], 1 << 16) == v2.read_bytes()
    assert published["spec_hash"] == "0x" + load_feed_spec(v2).digest.hex()
    assert published["spec_hash"] != proposed["spec_hash"]
    again = _ok(_model(env, "approve", "1", keys="owner"))  # the latest proposed: 2
    assert again["version"] == 2 and again["registered_feeds"] == []

    listed = _ok(_list(env))
    assert listed["model_count"] == 1
    (row,) = listed["models"]
    assert row["state"] == "approved" and row["approved_version"] == 2
    assert row["version_count"] == 2 and row["latest_spec_uri"] == published["spec_uri"]
    assert row["feeds"][0]["feed_id"] == feed["feed_id"]

    done = _ok(_model(env, "deactivate", "1"))
    assert done["by"] == env["alice_address"]
    assert _ok(_list(env))["models"][0]["state"] == "deactivated"
    assert oracle.functions.isRegistered(spec.id_bytes32).call(), "the feed stays"

    # what a node reads: the events, decoded and in order
    contract = reg.registry_at(env["w3"], env["registry"])
    events = reg.events(contract, 0, env["w3"].eth.block_number)
    assert [type(e).__name__ for e in events] == [
        "ModelProposed",
        "VersionApproved",
        "VersionPublished",
        "VersionApproved",
        "ModelDeactivated",
    ]
    first = events[0]
    assert isinstance(first, reg.ModelProposed)
    assert first.spec_uri == uri and first.feed_ids == (spec.id_bytes32,)
    assert reg.model_of_feed(contract, spec.id_bytes32) == 1
    assert reg.version(contract, 1, 2).approved_block == again["block"]


def test_refusals_are_one_error_line(env: dict[str, Any], tmp_path: Path) -> None:
    _ok(_model(env, "register", str(WATERFLOW), "--uri", "file://w.toml"))
    # only the oracle's owner approves
    _error(_model(env, "approve", "1"), env["alice_address"], "not the oracle's owner")
    # unknown ids
    _error(_model(env, "approve", "9", keys="owner"), "no model 9")
    _error(_model(env, "deactivate", "9"), "no model 9")
    _error(_model(env, "approve", "1", "--version", "3", keys="owner"), "no version 3")
    # only the author publishes
    v2 = _variant(tmp_path, WATERFLOW, "seed = 42", "seed = 43")
    _error(
        _model(env, "publish", "1", str(v2), "--uri", "data:,x", keys="bob"),
        env["bob_address"],
        "not the author of model 1",
    )
    # a new version declaring other feeds is refused before anything is sent
    _error(
        _model(env, "publish", "1", str(SP500), "--uri", "data:,x"),
        "declares other feeds than model 1",
    )
    # neither author nor owner
    _error(_model(env, "deactivate", "1", keys="bob"), "neither the author of model 1")
    contract = reg.registry_at(env["w3"], env["registry"])
    assert reg.model(contract, 1).version_count == 1, "nothing was published"

    # a model declaring a feed the oracle has already: proposed, but never approved
    eth = _ok(_model(env, "register", str(ETH), "--uri", "file://eth.toml"))
    _error(_model(env, "approve", str(eth["model_id"]), keys="owner"), "ETH/USD is taken")

    # versions only move forward; a deactivated model takes nothing more
    _ok(_model(env, "approve", "1", keys="owner"))
    _error(_model(env, "approve", "1", "--version", "1", keys="owner"), "not after")
    _ok(_model(env, "deactivate", "1", keys="owner"))
    _error(_model(env, "deactivate", "1"), "model 1 is deactivated")


def test_the_human_output_says_the_same(env: dict[str, Any]) -> None:
    runner = CliRunner()
    common = ["--manifest", env["manifest"], "--keys-dir", str(env["alice"])]
    proposed = runner.invoke(
        cli,
        ["model", "register", str(WATERFLOW), "--uri", "data:,w", *common],
        env={"MIRA_KEY_PASSPHRASE": PASS},
    )
    assert proposed.exit_code == 0, proposed.output
    assert "model 1 proposed" in proposed.stdout and "WATERFLOW/anomaly" in proposed.stdout
    assert "mira model approve 1" in proposed.stdout
    listed = runner.invoke(cli, ["model", "list", "--manifest", env["manifest"]])
    assert listed.exit_code == 0, listed.output
    assert "1 models" in listed.stdout and "proposed" in listed.stdout
    assert "WATERFLOW/anomaly" not in listed.stdout  # not in the manifest: its bytes32 id
    assert "0x" + load_feed_spec(WATERFLOW).id_bytes32.hex() in listed.stdout


def test_usage_errors_name_the_option(env: dict[str, Any]) -> None:
    missing = _model(env, "register", str(WATERFLOW))
    assert missing.exit_code == 2 and "--uri" in missing.output
    bad = _model(env, "register", str(WATERFLOW), "--uri", "ftp://x")
    assert bad.exit_code == 2 and "--uri" in bad.output
    both = _model(env, "register", str(WATERFLOW), "--uri", "data:,x", "--embed")
    assert both.exit_code == 2 and "--embed" in both.output
    nothing = CliRunner().invoke(cli, ["model", "list", "--json"])
    assert nothing.exit_code == 2 and "--manifest" in nothing.output
    # without a manifest: the RPC URL and the registry's address
    url = json.loads(Path(env["manifest"]).read_text())["rpc_url"]
    direct = CliRunner().invoke(
        cli, ["model", "list", "--rpc-url", url, "--registry", env["registry"], "--json"]
    )
    assert _ok(direct) == {"registry": env["registry"], "model_count": 0, "models": []}
    wrong = CliRunner().invoke(
        cli, ["model", "list", "--rpc-url", url, "--registry", "0x" + "11" * 20, "--json"]
    )
    _error(wrong, "no contract at model registry address")
