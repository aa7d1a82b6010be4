"""``mira node run``: run one node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click


@click.group()
def node() -> None:
    """Run an oracle node."""


@node.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The node's TOML configuration.",
)
def run(config_path: Path) -> None:
    """Load and validate everything, check the database, then run.

    SIGTERM (or Ctrl-C) drains: scheduled work stops, buffers are flushed, every model is
    checkpointed, then the process exits. A restart resumes where it stopped.
    """
    from oracle.config import load_node
    from oracle.node.logs import configure_logging
    from oracle.node.node import Node

    config, feeds = load_node(config_path)  # ConfigError lists every problem, nothing starts
    configure_logging(config.log.level, config.log.format)
    asyncio.run(_run(Node(config, feeds)))


async def _run(node_: object) -> None:
    from oracle.node.node import Node

    assert isinstance(node_, Node)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node_.start()
    try:
        await stop.wait()
    finally:
        await node_.stop()
