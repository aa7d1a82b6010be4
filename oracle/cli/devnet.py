"""``mira devnet``: a local network on one machine."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from eth_account import Account
from web3 import Web3

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.system import FeedRegistration, deploy_system
from oracle.config import load_feed_specs
from oracle.errors import MiraError


@click.group()
def devnet() -> None:
    """Run a Mira network locally."""


@devnet.command("up")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".devnet"),
    show_default=True,
    help="Where the manifest is written.",
)
@click.option("--port", type=int, default=8545, show_default=True, help="anvil's RPC port.")
def up(directory: Path, port: int) -> None:
    """Start anvil, deploy the contracts, write the manifest, run until Ctrl-C."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MiraError(f"cannot create devnet directory {directory}: {exc.strerror}") from exc
    manifest_path = directory / "manifest.json"
    stop = threading.Event()
    # Ctrl-C and SIGTERM both ask for a clean stop; a second one during shutdown is harmless.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Anvil(AnvilConfig(port=port, block_time=1.0)) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))
        specs = load_feed_specs(sorted(Path("feeds").glob("*.toml")))
        feeds = [FeedRegistration(s.id, s.id_bytes32, s.decimals, s.description) for s in specs]
        deployer = Account.from_key(anvil.private_keys[0])
        manifest = deploy_system(w3, deployer, anvil.url, feeds)
        manifest.write(manifest_path)
        click.echo(f"anvil        {anvil.url} (chain id {manifest.chain_id})")
        click.echo(f"MiraOracle   {manifest.oracle}")
        for feed_id, entry in manifest.feeds.items():
            click.echo(f"feed         {feed_id:<24} proxy {entry['proxy']}")
        click.echo(f"manifest     {manifest_path}")
        click.echo("running; Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    manifest_path.unlink(missing_ok=True)
    click.echo("stopped")
