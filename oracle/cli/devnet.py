"""``mira devnet``: a local network on one machine."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click
from web3 import Web3

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.system import deploy_system
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
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Anvil(AnvilConfig(port=port, block_time=1.0)) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))
        deployment = deploy_system(w3)
        manifest = {"rpc_url": anvil.url, "chain_id": w3.eth.chain_id, **deployment}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        click.echo(f"anvil        {anvil.url} (chain id {manifest['chain_id']})")
        for name, address in deployment["contracts"].items():
            click.echo(f"{name:<12} {address}")
        click.echo(f"manifest     {manifest_path}")
        click.echo("running; Ctrl-C to stop")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    manifest_path.unlink(missing_ok=True)
    click.echo("stopped")
