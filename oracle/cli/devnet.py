"""``mira devnet``: a local network on one machine.

``up`` stops everything it started however it is stopped: Ctrl-C, SIGTERM or SIGHUP (also
while it is still starting: it says "stopped"), or its stdout closing (``| tee`` ended by
the same Ctrl-C, ``| head``): a write to a closed pipe does not kill it before it cleans
up; it goes quiet and, in the view, takes the closed pipe as a stop.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from oracle.cli.options import emit, json_option
from oracle.devnet import Devnet, DevnetOptions, Interrupted, down, preflight
from oracle.progress import stderr_progress

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


PORT = click.IntRange(1, 65535)


@devnet.command("up")
@_DIR
@click.option(
    "--nodes", type=click.IntRange(1, 20), default=4, show_default=True, help="Committee size."
)
@click.option("--anvil-port", type=PORT, default=8545, show_default=True, help="anvil's RPC port.")
@click.option(
    "--base-port",
    type=PORT,
    default=7700,
    show_default=True,
    help="Node i's API listens on BASE+2i, its p2p on BASE+2i+1.",
)
@click.option(
    "--price-port",
    type=PORT,
    default=9101,
    show_default=True,
    help="The median feed's three HTTP sources listen on PORT, PORT+1, PORT+2.",
)
@click.option(
    "--dashboard-port",
    type=PORT,
    default=None,
    help="The web dashboard's port (every member's view, at /ui/). "
    "[default: BASE+2*NODES, the port after the nodes']",
)
@click.option(
    "--stocks",
    is_flag=True,
    help="Also run the RL loop's real-data market: SP500Stocks replayed as ten price feeds "
    "(closes rebased to 100), a StockMarket agent and its policy RL/stocks (~30 s more to "
    "start).",
)
@click.option("--no-view", is_flag=True, help="No live view; wait quietly for Ctrl-C.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Once running, print the manifest as one JSON object on stdout (no live view; "
    "the start-up lines go to stderr). Fields: docs/cli.md.",
)
def up(
    directory: Path,
    nodes: int,
    anvil_port: int,
    base_port: int,
    price_port: int,
    dashboard_port: int | None,
    stocks: bool,
    no_view: bool,
    as_json: bool,
) -> None:
    """Start anvil, deploy, run the DKG, start the nodes and price sources, show the feeds."""
    opts = DevnetOptions(
        directory,
        nodes,
        anvil_port,
        base_port,
        price_port,
        dashboard_port=dashboard_port,
        stocks=stocks,
    )
    say = _say_on_stderr if as_json else _say
    for note in preflight(opts):
        say(note)
    stop = threading.Event()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    net = Devnet(opts)
    try:
        with stderr_progress("mira devnet up") as progress:
            net.start(say=say, stop=stop, progress=progress)
        if not stop.is_set():
            say("running; Ctrl-C stops everything")
            if as_json:
                manifest = json.loads(net.manifest_path.read_text())
                click.echo(json.dumps(manifest, sort_keys=True), nl=True)
                sys.stdout.flush()
                stop.wait()
            elif not no_view:
                _view(net, stop)
            else:
                stop.wait()
    except Interrupted:
        pass  # asked to stop while starting: stop what started, below
    finally:
        # a second signal during shutdown must not interrupt it
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        say("stopping nodes, price sources and anvil ...")
        net.stop()
        say("stopped")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _say_on_stderr(text: str) -> bool:
    click.echo(text, err=True)
    return True


def _say(text: str) -> bool:
    """Print a line; False (and stdout muted) if nobody reads it any more."""
    try:
        click.echo(text)
    except BrokenPipeError:
        _mute_stdout()
        return False
    return True


def _mute_stdout() -> None:
    """Point stdout at /dev/null: later lines, and the flush at exit, must not fail again
    on the closed pipe (an exception there would end the launcher before it cleans up)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _view(net: Devnet, stop: threading.Event) -> None:
    from oracle.devnet.view import Watcher, compact, render

    assert net.manifest is not None
    watcher = Watcher(net.manifest)
    dashboard = net.manifest.extra.get("dashboard")
    if sys.stdout.isatty():
        from rich.live import Live

        with Live(render([], []), refresh_per_second=2, screen=False) as live:
            while not stop.is_set():
                live.update(
                    render(
                        watcher.feeds(),
                        watcher.node_rows(),
                        loop=watcher.rl_row(),
                        dashboard=dashboard,
                    )
                )
                stop.wait(1.0)
    else:
        while not stop.is_set():
            if not _say(compact(watcher.feeds(), watcher.node_rows(), watcher.rl_row())):
                stop.set()  # the reader of our output is gone: stop, as SIGPIPE would
            stop.wait(1.0)


@devnet.command("down")
@_DIR
@json_option
def down_cmd(directory: Path, as_json: bool, **_: Any) -> None:
    """Stop the devnet running in DIR (started by `mira devnet up` in another shell)."""
    result = down(directory)
    emit(result, as_json, [result["message"]])
