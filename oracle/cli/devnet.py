"""``mira devnet``: a local network on one machine."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from oracle.devnet import Devnet, DevnetOptions, down, preflight

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".devnet"),
    show_default=True,
    help="Where the devnet keeps its nodes, pidfile and manifest.",
)


@click.group()
def devnet() -> None:
    """Run a Mira network locally."""


@devnet.command("up")
@_DIR
@click.option("--nodes", type=int, default=4, show_default=True, help="Committee size.")
@click.option("--anvil-port", type=int, default=8545, show_default=True, help="anvil's RPC port.")
@click.option(
    "--base-port",
    type=int,
    default=7700,
    show_default=True,
    help="Node i's API listens on BASE+2i, its p2p on BASE+2i+1.",
)
@click.option(
    "--price-port",
    type=int,
    default=9101,
    show_default=True,
    help="The median feed's three HTTP sources listen on PORT, PORT+1, PORT+2.",
)
@click.option("--no-view", is_flag=True, help="No live view; wait quietly for Ctrl-C.")
def up(
    directory: Path, nodes: int, anvil_port: int, base_port: int, price_port: int, no_view: bool
) -> None:
    """Start anvil, deploy, run the DKG, start the nodes and price sources, show the feeds."""
    opts = DevnetOptions(directory, nodes, anvil_port, base_port, price_port)
    preflight(opts)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    net = Devnet(opts)
    try:
        net.start(say=click.echo)
        if not stop.is_set():
            click.echo("running; Ctrl-C stops everything")
            if not no_view:
                _view(net, stop)
            else:
                stop.wait()
    finally:
        # a second signal during shutdown must not interrupt it
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        click.echo("stopping nodes, price sources and anvil ...")
        net.stop()
        click.echo("stopped")


def _view(net: Devnet, stop: threading.Event) -> None:
    from oracle.devnet.view import Watcher, compact, render

    assert net.manifest is not None
    watcher = Watcher(net.manifest)
    if sys.stdout.isatty():
        from rich.live import Live

        with Live(render([], []), refresh_per_second=2, screen=False) as live:
            while not stop.is_set():
                live.update(render(watcher.feeds(), watcher.node_rows()))
                stop.wait(1.0)
    else:
        while not stop.is_set():
            click.echo(compact(watcher.feeds(), watcher.node_rows()))
            stop.wait(1.0)


@devnet.command("down")
@_DIR
def down_cmd(directory: Path, **_: Any) -> None:
    """Stop the devnet running in DIR (started by `mira devnet up` in another shell)."""
    click.echo(down(directory))
