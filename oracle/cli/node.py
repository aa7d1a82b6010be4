"""``mira node run``: run one node until SIGTERM or Ctrl-C.

Stopping is bounded, whatever the chain RPC or a peer does:

* each service's stop gets a bound of its own (:class:`oracle.service.ServiceGroup`)
  before the next one stops, so the feeds are still checkpointed when the network hangs;
* once the node has stopped, worker threads get a few seconds to end: one may sit in a
  blocking web3 call to a hung RPC (a chain-events scan, retried for minutes) and holds
  nothing to save, since everything the node keeps is stored by then, so the process exits
  past it;
* a watchdog, armed by the first SIGTERM/SIGINT, ends the process with exit code 1 after
  ``NODE_STOP_BOUND_S`` if the stop itself is stuck (a blocking call in the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from oracle.service import NODE_STOP_BOUND_S as STOP_BOUND_S

_EXIT_GRACE_S = 3.0  # how long worker threads may hold the exit once the node has stopped


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
    checkpointed, then the process exits (within 30 s, whatever the RPC does). A restart
    resumes where it stopped.
    """
    from oracle.config import load_node
    from oracle.node.logs import configure_logging
    from oracle.node.node import Node, gc_paused

    with gc_paused():  # the start-up heap: every feed spec and runner
        config, feeds = load_node(config_path)  # ConfigError lists every problem, nothing starts
        configure_logging(config.log.level, config.log.format)
        node_ = Node(config, feeds)
    serve(node_)


def serve(node_: Any) -> None:
    """Run ``node_`` on a fresh event loop until a signal; stop it; exit the process if a
    worker thread would keep it alive."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_run(node_))
        _cancel_leftovers(loop)
    finally:
        loop.close()  # shuts the default executor down without waiting for its threads
    _bound_interpreter_exit(_EXIT_GRACE_S)


async def _run(node_: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            _arm_watchdog(STOP_BOUND_S)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await node_.start()
    try:
        await stop.wait()
    finally:
        await node_.stop()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run does after the main coroutine, minus waiting for the executor."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _bound_interpreter_exit(grace_s: float) -> None:
    """Interpreter exit joins every non-daemon thread (the executors' workers too); one in
    a blocking call to a hung RPC would hold the process for minutes. The node has stopped
    and stored everything: if the exit has not happened after ``grace_s``, say which
    threads hold it and exit anyway."""

    def expire() -> None:
        import structlog

        main, me = threading.main_thread(), threading.current_thread()
        stuck = [t.name for t in threading.enumerate() if t not in (main, me) and not t.daemon]
        structlog.get_logger(__name__).warning("node.exit_past_threads", threads=stuck)
        _flush_and_exit(0)

    timer = threading.Timer(grace_s, expire)
    timer.daemon = True
    timer.start()


def _arm_watchdog(bound_s: float) -> None:
    def expire() -> None:
        import structlog

        structlog.get_logger(__name__).error("node.stop_timeout", bound_s=bound_s)
        _flush_and_exit(1)

    timer = threading.Timer(bound_s, expire)
    timer.daemon = True
    timer.start()


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
