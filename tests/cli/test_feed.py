"""``mira feed …`` against a real MiraOracle on anvil: list, subscribe, deposit, withdraw,
unsubscribe, subscriptions, reimbursement, each with --json; every bad input refused with
one line naming what to change (exit 2), nothing stored changed, no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.system import Manifest
from oracle.cli.main import cli
from oracle.config.feeds import feed_id_bytes32
from oracle.crypto.keystore import KeyStore, OperatorKey, encrypt_key

pytestmark = pytest.mark.anvil
PASS = "correct horse battery staple"
FEEDS = {"ETH/USD": 8, "BTC/USD": 8}


def _keys(tmp_path: Path, name: str, secret: str) -> Path:
    """A key directory (cheap scrypt) holding anvil's account ``secret`` as operator key."""
    store = KeyStore(tmp_path / name, scrypt_n=2**10)
    store.directory.mkdir(parents=True)
    key = OperatorKey(bytes.fromhex(secret.removeprefix("0x")))
    document = encrypt_key("operator", key, PASS.encode(), scrypt_n=2**10)
    store.write_document("operator", document, overwrite=False)
    return store.directory


@pytest.fixture
def env(anvil: Anvil, w3: Web3, tmp_path: Path) -> dict[str, Any]:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    manifest = Manifest(anvil.url, w3.eth.chain_id, w3.eth.accounts[0], oracle.address, 0)
    for name, decimals in FEEDS.items():
        fid = feed_id_bytes32(name)
        w3.eth.wait_for_transaction_receipt(
            oracle.functions.registerFeed(fid, decimals, name.replace("/", " / ")).transact()
        )
        manifest.feeds[name] = {
            "feed_id": "0x" + fid.hex(),
            "proxy": oracle.functions.proxyOf(fid).call(),
        }
    path = tmp_path / "manifest.json"
    manifest.write(path)
    # alice deploys it, so she is its subscription manager (MiraConsumer: the deployer)
    consumer = deploy(w3, "RecordingConsumer", oracle.address, sender=w3.eth.accounts[1])
    return {
        "w3": w3,
        "oracle": oracle,
        "manifest": str(path),
        "consumer": consumer.address,
        "alice": _keys(tmp_path, "alice", anvil.private_keys[1]),
        "bob": _keys(tmp_path, "bob", anvil.private_keys[2]),
        "alice_address": Account.from_key(anvil.private_keys[1]).address,
    }


def _feed(env: dict[str, Any], *args: str, keys: str = "alice") -> Result:
    return CliRunner().invoke(
        cli,
        ["feed", *args, "--manifest", env["manifest"], "--keys-dir", str(env[keys])],
        env={"MIRA_KEY_PASSPHRASE": PASS},
    )


def _read(env: dict[str, Any], *args: str) -> Result:
    return CliRunner().invoke(cli, ["feed", *args, "--manifest", env["manifest"], "--json"])


def _refused(result: Result, *needles: str) -> None:
    """Exit 2, one line that names what to change, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_subscribe_deposit_withdraw_unsubscribe_round_trip(env: dict[str, Any]) -> None:
    consumer, oracle = env["consumer"], env["oracle"]
    eth, btc = feed_id_bytes32("ETH/USD"), feed_id_bytes32("BTC/USD")
    result = _feed(
        env,
        "subscribe",
        "--feed",
        "ETH/USD",
        "--feed",
        "0x" + btc.hex(),
        "--consumer",
        consumer,
        "--gas-limit",
        "150000",
        "--deposit",
        "0.5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["owner"] == env["alice_address"] and out["gas_limit"] == 150_000
    assert out["balance_wei"] == 5 * 10**17 and out["tx_hash"].startswith("0x")
    assert [f["id"] for f in out["feeds"]] == ["ETH/USD", "BTC/USD"]
    assert oracle.functions.subscribersOf(eth).call() == [consumer]

    listed = json.loads(_read(env, "list").output)["feeds"]
    assert {r["id"]: r["subscribers"] for r in listed} == {"ETH/USD": 1, "BTC/USD": 1}
    assert all(r["value"] is None and r["decimals"] == 8 for r in listed)

    # anyone may top up; only the owner withdraws
    result = _feed(env, "deposit", "--consumer", consumer, "--amount", "0.25", keys="bob")
    assert result.exit_code == 0, result.output
    assert "deposit 0.75 ETH" in result.output
    result = _feed(env, "withdraw", "--consumer", consumer, "--amount", "0.1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["balance_wei"] == 65 * 10**16

    result = _feed(env, "unsubscribe", "--feed", "BTC/USD", "--consumer", consumer)
    assert result.exit_code == 0, result.output
    sub = json.loads(_read(env, "subscriptions", "--consumer", consumer).output)
    assert [f["id"] for f in sub["feeds"]] == ["ETH/USD"]
    assert oracle.functions.subscribersOf(btc).call() == []

    owed = json.loads(_feed(env, "reimbursement", "--json").output)
    assert owed["transmitter"] == env["alice_address"] and owed["reimbursement_wei"] == 0
    _refused(_feed(env, "reimbursement", "--withdraw"), "no reimbursement to withdraw")


def test_bad_input_is_refused_with_what_to_change_and_nothing_changes(
    env: dict[str, Any], w3: Web3
) -> None:
    consumer = env["consumer"]
    base = ["--consumer", consumer, "--gas-limit", "100000", "--deposit", "0.1"]
    ok = _feed(env, "subscribe", "--feed", "ETH/USD", *base)
    assert ok.exit_code == 0, ok.output
    before = env["oracle"].functions.subscriptionOf(consumer).call()

    _refused(_feed(env, "subscribe", "--feed", "NOPE/USD", *base), "--feed NOPE/USD", "feed list")
    _refused(
        _feed(env, "subscribe", "--feed", "BTC/USD", *base[:1], w3.eth.accounts[5], *base[2:]),
        "has no code",
        "IMiraConsumer",
    )
    gas = ["--consumer", consumer, "--deposit", "0.1", "--feed", "BTC/USD"]
    _refused(_feed(env, "subscribe", *gas, "--gas-limit", "0"), "--gas-limit 0")
    _refused(_feed(env, "subscribe", *gas, "--gas-limit", "4000000000"), "out of range: pass 1 to")
    _refused(
        _feed(env, "subscribe", *gas, "--gas-limit", "100000", "--deposit", "lots"),
        "--deposit 'lots'",
    )
    _refused(_feed(env, "subscribe", "--feed", "ETH/USD", *base), "subscribed to ETH/USD already")
    # a new consumer with no deposit: one worst-case callback is the minimum
    other = deploy(w3, "RecordingConsumer", env["oracle"].address, sender=w3.eth.accounts[1])
    other = other.address
    # someone else's consumer: only its manager (alice, its deployer) may subscribe it
    _refused(
        _feed(env, "subscribe", "--feed", "ETH/USD", "--consumer", other, *base[2:], keys="bob"),
        "may not subscribe",
        "miraSubscriptionManager()",
    )
    # the oracle's callback gas budget: the owner lowers it below what one more would take
    env["w3"].eth.wait_for_transaction_receipt(
        env["oracle"].functions.setCallbackGasBudget(200_000).transact()
    )
    _refused(
        _feed(env, "subscribe", "--feed", "ETH/USD", "--consumer", other, *base[2:]),
        "callback gas budget of 200000 would be exceeded (250000 committed)",
        "lower --gas-limit",
    )
    env["w3"].eth.wait_for_transaction_receipt(
        env["oracle"].functions.setCallbackGasBudget(10_000_000).transact()
    )
    _refused(
        _feed(env, "subscribe", "--feed", "ETH/USD", "--consumer", other, "--gas-limit", "100000"),
        "raise --deposit by at least",
    )
    _refused(
        _feed(env, "withdraw", "--consumer", consumer, "--amount", "0.01", keys="bob"),
        "does not own the subscription",
        env["alice_address"],
    )
    _refused(
        _feed(env, "withdraw", "--consumer", consumer, "--amount", "5"), "withdraw at most 0.1"
    )
    _refused(_feed(env, "unsubscribe", "--feed", "BTC/USD", "--consumer", consumer), "drop that")
    malformed = _feed(env, "deposit", "--consumer", "0x1234", "--amount", "1")
    assert malformed.exit_code == 2 and len(malformed.output.strip().splitlines()) == 1
    assert "Invalid value for '--consumer': '0x1234' is not an address" in malformed.output
    # the cap: the owner lowers it to one subscriber per feed
    env["w3"].eth.wait_for_transaction_receipt(
        env["oracle"].functions.setMaxSubscribers(1).transact()
    )
    _refused(
        _feed(env, "subscribe", "--feed", "ETH/USD", "--consumer", other, *base[2:]),
        "maximum of 1 subscribers",
        "setMaxSubscribers",
    )
    assert env["oracle"].functions.subscriptionOf(consumer).call() == before
    assert env["oracle"].functions.subscriptionOf(other).call()[0] == "0x" + "0" * 40


def test_usage_errors_exit_2_and_failures_exit_1(env: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["feed", "list"])
    _refused(result, "pass --manifest, or both --rpc-url and --oracle")
    result = CliRunner().invoke(
        cli, ["feed", "list", "--rpc-url", "http://127.0.0.1:9", "--oracle", "0x" + "1" * 40]
    )
    assert result.exit_code == 1 and "no JSON-RPC answer" in result.output, result.output
    assert "Traceback" not in result.output
    rpc = ["--rpc-url", env["w3"].provider.endpoint_uri]
    result = CliRunner().invoke(cli, ["feed", "list", *rpc, "--oracle", env["alice_address"]])
    _refused(result, f"--oracle {env['alice_address']}: no contract there")
    # a contract that is not a MiraOracle: its calls fail, one line, exit 1
    result = CliRunner().invoke(cli, ["feed", "list", *rpc, "--oracle", env["consumer"]])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
