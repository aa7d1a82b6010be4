"""``mira deploy``: deploy MiraOracle (and the ModelRegistry, its feed registrar) to a chain
and register feeds from their specs.

The deployer signs with the operator key in a key directory (``mira keys new``), so the
same command deploys to anvil and to a real L2. It becomes the oracle's owner and writes
a JSON manifest (RPC URL, chain id, oracle address, each feed's id and proxy).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from eth_account import Account
from web3 import Web3

from oracle.chain.system import OracleParameters, deploy_system, feed_registrations
from oracle.cli.options import (
    RPC_URL,
    emit,
    json_option,
    owner_keys_dir_option,
    passphrase_file_option,
)
from oracle.config import load_feed_specs
from oracle.crypto.keystore import KeyStore, read_passphrase
from oracle.errors import ChainError


@click.command("deploy")
@click.option(
    "--rpc-url", type=RPC_URL, required=True, help="JSON-RPC endpoint of the target chain."
)
@click.option(
    "--feeds-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("feeds"),
    show_default=True,
    help="Feed specs to register (every *.toml).",
)
@owner_keys_dir_option
@passphrase_file_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--grace-period", type=int, default=3600, show_default=True)
@click.option(
    "--change-delay",
    type=int,
    default=86400,
    show_default=True,
    help="Seconds the owner's delayed changes wait (key outside the DKG, grace, feed reset).",
)
@click.option("--max-age", type=int, default=3600, show_default=True)
@click.option("--max-future-drift", type=int, default=300, show_default=True)
@json_option
def deploy(
    rpc_url: str,
    feeds_dir: Path,
    keys_dir: Path,
    passphrase_file: Path | None,
    out: Path,
    grace_period: int,
    change_delay: int,
    max_age: int,
    max_future_drift: int,
    as_json: bool,
) -> None:
    """Deploy MiraOracle, register the feeds, write the manifest to OUT."""
    specs = load_feed_specs(sorted(feeds_dir.glob("*.toml")))
    feeds = feed_registrations(specs)  # one per arm of a policy feed
    operator = KeyStore(keys_dir).load_operator(read_passphrase(passphrase_file))
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC answer from {rpc_url}")
    account = Account.from_key(operator.secret_bytes())
    params = OracleParameters(grace_period, change_delay, max_age, max_future_drift)
    manifest = deploy_system(w3, account, rpc_url, feeds, params)
    manifest.write(out)
    emit(
        {**json.loads(out.read_text()), "owner": account.address, "manifest": str(out)},
        as_json,
        [
            f"MiraOracle {manifest.oracle} on chain {manifest.chain_id}, owner {account.address}",
            f"ModelRegistry {manifest.model_registry} (the oracle's feed registrar)",
            f"MiraPullVerifier {manifest.pull_verifier} (pull mode: nodes' "
            "[network] pull_verifier)",
            *(f"  {feed_id:<24} proxy {e['proxy']}" for feed_id, e in manifest.feeds.items()),
            f"manifest written to {out}",
        ],
    )
