"""Node start-up with many feeds: ``mira bench startup``.

Writes ``feeds`` feed specs (what ``mira bench pull`` gives each node: HTTP value feeds,
no model, each reading its own key of one ticker answer) and a ``node.toml`` without a
network, then starts the node's storage and feeds the way ``mira node run`` does, in this
process: :func:`oracle.config.load_node` (the node config and every feed spec), the
:class:`oracle.node.node.Node` (a runner per feed), then the node's own ``storage`` and
``feeds`` services, in the order its service group starts them (the database check, then
every feed's restore). The scheduler, the API and the network are not started: they do
the same work whatever the database holds, and polling would add observations.

Two starts, each timed by phase:

* ``fresh``: an empty (migrated) database, nothing to restore;
* ``restart``: after the fresh node took ``checkpointed`` observations per feed, stopped
  (the feeds service checkpoints every model) and took ``after`` more per feed that were
  stored but not checkpointed (a node killed between two checkpoints), the same start
  again: each feed loads its checkpoint, replays those observations and checks that its
  outputs come out as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import structlog
from sqlalchemy import Engine, event, text

from oracle.config import load_node
from oracle.devnet.localnet import DECIMALS, FEED_SPEC
from oracle.node.logs import configure_logging
from oracle.node.node import Node, gc_paused
from oracle.node.pipeline import flush_together
from oracle.service import Service
from oracle.sources.replay import RawObservation
from oracle.storage import make_engine, upgrade

MAX_FEEDS = 100_000
_URL = "http://127.0.0.1:9/prices"  # never polled: the scheduler does not start
_LOG = ("info", "json")  # the node's defaults


def write_node(root: Path, feeds: int, database_url: str) -> Path:
    """``root/node.toml`` and ``root/feeds/feed_<i>.toml``; returns the config's path."""
    spec_dir = root / "feeds"
    spec_dir.mkdir(parents=True)
    params = {"poll": 1.0, "deviation_bps": 50, "tolerance_bps": 100}
    for i in range(feeds):
        spec = FEED_SPEC.format(feed=f"PULL-{i}/USD", decimals=DECIMALS, url=_URL, **params)
        own = spec.replace('path = "price"', f'path = "p{i}"')  # its own key of the answer
        (spec_dir / f"feed_{i:05d}.toml").write_text(own)
    config = root / "node.toml"
    config.write_text(
        '[node]\nname = "bench"\nfeeds_dir = "feeds"\n\n'
        f"[database]\nurl = {json.dumps(database_url)}\n\n"
        f'[log]\nlevel = "{_LOG[0]}"\nformat = "{_LOG[1]}"\n'
    )
    return config


def _service(node: Node, name: str) -> Service:
    return next(s for s in node.services.services if s.name == name)


class _Queries:
    """Counts the SQL statements an engine runs while counting."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        if self.on:
            self.count += 1


async def start(config_path: Path) -> tuple[Node, dict[str, Any]]:
    """Load, build and start the node's storage and feeds, each phase timed."""
    gc.collect()
    times: dict[str, Any] = {}
    t0 = time.perf_counter()
    with gc_paused():  # as mira node run loads and builds
        config, specs = load_node(config_path)
        t1 = time.perf_counter()
        node = Node(config, specs)
        t2 = time.perf_counter()
    queries = _Queries(node.storage.engine)
    await _service(node, "storage").start()
    t3 = time.perf_counter()
    queries.on = True
    await _service(node, "feeds").start()
    queries.on = False
    t4 = time.perf_counter()
    times["load_specs_s"] = round(t1 - t0, 3)
    times["build_runners_s"] = round(t2 - t1, 3)
    times["storage_check_s"] = round(t3 - t2, 3)
    times["restore_s"] = round(t4 - t3, 3)
    times["total_s"] = round(t4 - t0, 3)
    times["restore_queries"] = queries.count
    return node, times


def _observe(node: Node, count: int, t0_ms: int) -> None:
    """``count`` observations per feed, as an HTTP poll ingests them, then stored."""
    runners = list(node.runners.values())
    for k in range(count):
        for i, runner in enumerate(runners):
            value = 100.0 + i % 997 + 0.25 * k
            runner.pipeline.ingest(
                RawObservation("median", t0_ms + 1000 * k, None, {"value": value})
            )
        flush_together(r.pipeline for r in runners)


async def measure(config_path: Path, checkpointed: int, after: int) -> dict[str, Any]:
    node, fresh = await start(config_path)
    t0_ms = time.time_ns() // 1_000_000 - 3_600_000
    _observe(node, checkpointed, t0_ms)
    feeds, storage = _service(node, "feeds"), _service(node, "storage")
    await feeds.stop()  # checkpoints every model
    _observe(node, after, t0_ms + 1000 * checkpointed)  # stored, not checkpointed
    await storage.stop()
    gc.unfreeze()  # FeedsService.start froze the heap: let the old node's be collected
    del node, feeds, storage
    node, restart = await start(config_path)
    want = checkpointed + after
    seqs = {r.pipeline.model.seq for r in node.runners.values()}
    if seqs != {want} or any(r.pipeline.last_output is None for r in node.runners.values()):
        raise click.ClickException(f"restored feeds at seq {sorted(seqs)[:5]}, expected {want}")
    session = getattr(_service(node, "feeds"), "session", None)
    if session is not None:
        await session.close()  # not the feeds' stop: nothing to checkpoint
    await _service(node, "storage").stop()
    gc.unfreeze()
    return {"fresh": fresh, "restart": restart}


@contextmanager
def _node_logs(path: Path) -> Iterator[None]:
    """The node's logs as ``mira node run`` configures them (level and format of its
    node.toml), on stderr redirected to ``path`` (as under the devnet or a service
    manager); the caller's logging configuration is restored afterwards."""
    saved = structlog.get_config()
    with path.open("w") as file:
        try:
            with contextlib.redirect_stderr(file):
                configure_logging(*_LOG)
            yield
        finally:
            structlog.configure(**saved)


@contextmanager
def _database(root: Path, url: str | None) -> Iterator[tuple[str, str]]:
    """A fresh migrated database: a SQLite file under ``root``, or a new schema of the
    PostgreSQL database at ``url`` (dropped afterwards). Yields (node URL, backend)."""
    if url is None:
        node_url = f"sqlite:///{root / 'mira.sqlite'}"
        engine = make_engine(node_url)
        upgrade(engine)
        engine.dispose()
        yield node_url, "sqlite"
        return
    schema = f"mira_bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    if admin.dialect.name != "postgresql":
        admin.dispose()
        raise click.UsageError("--database-url: a PostgreSQL URL (SQLite is the default)")
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        engine = make_engine(url, schema=schema)
        upgrade(engine)
        engine.dispose()
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}", "postgresql"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run(feeds: int, checkpointed: int, after: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mira-startup-") as tmp:
        root = Path(tmp)
        with _database(root, database_url) as (url, backend):
            config_path = write_node(root, feeds, url)
            with _node_logs(root / "node.log"):
                result = asyncio.run(measure(config_path, checkpointed, after))
    return {
        "benchmark": "startup",
        "feeds": feeds,
        "backend": backend,
        "cpu_count": os.cpu_count(),
        "checkpointed_observations_per_feed": checkpointed,
        "observations_after_checkpoint_per_feed": after,
        "setup": "one node in this process: load_node (node.toml and every feed spec), "
        "Node(...) (a runner per feed), then its storage and feeds services' start (the "
        "database check, every feed's restore), as mira node run starts them; HTTP value "
        "feeds without a model (mira bench pull's); restart: each feed checkpointed after "
        f"{checkpointed} observations, {after} more stored after the checkpoint",
        **result,
    }


@click.command("startup")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--feeds", default=10_000, show_default=True, help="Feed specs the node loads.")
@click.option(
    "--checkpointed",
    default=5,
    show_default=True,
    help="Observations per feed before the checkpoint (restart).",
)
@click.option(
    "--after",
    default=3,
    show_default=True,
    help="Observations per feed stored after the checkpoint (replayed on restart).",
)
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL URL (a fresh schema is made and dropped); default: a SQLite file.",
)
def startup(
    as_json: bool, feeds: int, checkpointed: int, after: int, database_url: str | None
) -> None:
    """Seconds a node takes to load N feed specs and restore them: fresh and restarted."""
    if not 1 <= feeds <= MAX_FEEDS:
        raise click.UsageError(f"--feeds: 1 to {MAX_FEEDS}")
    if not 1 <= checkpointed <= 1000 or not 0 <= after <= 1000:
        raise click.UsageError("--checkpointed 1..1000, --after 0..1000")
    result = run(feeds, checkpointed, after, database_url)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    for phase in ("fresh", "restart"):
        r = result[phase]
        click.echo(
            f"{phase}: {r['total_s']} s (specs {r['load_specs_s']} s, runners "
            f"{r['build_runners_s']} s, storage {r['storage_check_s']} s, restore "
            f"{r['restore_s']} s in {r['restore_queries']} queries)"
        )
