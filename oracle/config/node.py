"""The node's own configuration (``node.toml``).

Example::

    [node]
    name = "node-1"
    feeds_dir = "feeds"            # relative to this file
    feeds = ["sp500_forecast"]     # optional: file stems to run (default: every *.toml)

    [database]
    url = "sqlite:///mira.sqlite"  # relative SQLite paths are relative to this file
    retain_s = 86400               # delete observations, outputs and rejections older
                                   # than this (absent: keep everything); what a restore
                                   # needs is always kept

    [api]
    host = "127.0.0.1"
    port = 8080
    stream_max_clients = 32        # GET /v1/reports/stream (nodes with [network])
    stream_buffer = 64             # events queued per client before a slow one is dropped
    stream_poll_s = 0.5            # how often the chain is read for landed reports

    [scheduler]
    checkpoint_every_s = 60
    heartbeat_check_every_s = 5
    prune_every_s = 60             # how often rows past [database] retain_s are deleted

    [log]
    level = "info"
    format = "json"

    [models]                       # models registered on-chain (oracle.registry)
    registry = "0x..."             # the ModelRegistry to follow (absent: follow none)
    max_models = 8                 # registered models this node carries at once
    classes = ["linear_model.LinearRegression", ...]  # estimator classes it accepts
                                   # (default: every class of the allowlist)
    max_spec_bytes = 65536         # a fetched spec's size cap
    spec_dir = "specs"             # file:// URIs must point under this folder (absent: none)
    http = true                    # fetch http(s):// URIs
    http_timeout_s = 5.0
    confirmations = 2              # registry events are followed this deep
    poll_s = 1.0
    switch_after_s = 30.0          # a new version replaces the old at the first round
                                   # boundary this long after its approval block
    from_block = 0                 # the registry's deployment block: where following starts
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from web3 import Web3

from oracle.config import allowlist
from oracle.config.feeds import MAX_SPEC_BYTES, FeedSpec, load_feed_specs
from oracle.config.network import NetworkConfig, read_network
from oracle.config.reader import Problems, Table
from oracle.storage.db import DEFAULT_URL

# [database] retain_s: shorter than a minute is below any checkpoint period (what a restore
# needs is kept anyway, so it would only churn); longer than ten years is a typo.
RETAIN_S_MIN = 60.0
RETAIN_S_MAX = 10 * 365 * 86_400.0


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    # seconds of observations, outputs and rejections kept; None: keep everything
    retain_s: float | None = None


@dataclass(frozen=True)
class ApiConfig:
    host: str
    port: int
    max_body_bytes: int
    # GET /v1/reports/stream (with [network]): clients served at once, events queued per
    # client before a slow one is dropped, how often the chain is read for landed reports
    stream_max_clients: int = 32
    stream_buffer: int = 64
    stream_poll_s: float = 0.5


@dataclass(frozen=True)
class SchedulerConfig:
    checkpoint_every_s: float
    heartbeat_check_every_s: float
    flush_every_s: float
    prune_every_s: float = 60.0  # the retention pass's period (with [database] retain_s)


@dataclass(frozen=True)
class LogConfig:
    level: str
    format: str


@dataclass(frozen=True)
class ModelsConfig:
    """``[models]``: the node's own policy for models registered on-chain (the registry's
    approval says the committee may run a model; this says what this node is willing to)."""

    registry: str | None  # checksummed address of the ModelRegistry; None: follow none
    max_models: int
    classes: tuple[str, ...] | None  # None: every allowlisted class
    max_spec_bytes: int
    spec_dir: Path | None  # the only folder file:// URIs may name
    http: bool
    http_timeout_s: float
    confirmations: int
    poll_s: float
    max_block_range: int = 1000
    # a new version replaces the old at the first round boundary this long after its
    # approval block's time: long enough for every member to have seen and loaded it
    switch_after_s: float = 30.0
    from_block: int = 0  # where following the registry starts (its deployment block)


def default_models() -> ModelsConfig:
    return ModelsConfig(None, 8, None, 64 * 1024, None, True, 5.0, 2, 1.0)


@dataclass(frozen=True)
class NodeConfig:
    name: str
    file: Path
    feeds_dir: Path
    feed_files: tuple[Path, ...]
    database: DatabaseConfig
    api: ApiConfig
    scheduler: SchedulerConfig
    log: LogConfig
    network: NetworkConfig | None = None
    models: ModelsConfig = field(default_factory=default_models)


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate ``node.toml`` (not the feeds)."""
    problems = Problems()
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.add(file, "", None, f"cannot read the file: {exc.strerror}")
        problems.raise_if_any()
        raise AssertionError from exc  # unreachable
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.add(file, "", None, f"expected valid UTF-8 TOML: {exc}")
        problems.raise_if_any()
        raise AssertionError from exc  # unreachable
    base = path.resolve().parent
    top = Table(data, file=file, prefix="", problems=problems)

    node = top.table("node", required=False) or Table(
        {}, file=file, prefix="node", problems=problems
    )
    name = node.string("name", "node", max_len=64)
    feeds_dir = base / node.string("feeds_dir", "feeds", max_len=500)
    wanted = node.strings("feeds", None, max_items=10_000)
    node.finish()
    feed_files: list[Path] = []
    if not feeds_dir.is_dir():
        node.fail("feeds_dir", str(feeds_dir), "expected an existing folder of feed specs")
    elif wanted is None:
        feed_files = sorted(feeds_dir.glob("*.toml"))
        if not feed_files:
            node.fail("feeds_dir", str(feeds_dir), "expected at least one *.toml feed spec")
    else:
        for stem in wanted:
            candidate = feeds_dir / f"{stem}.toml"
            if not candidate.is_file():
                known = sorted(p.stem for p in feeds_dir.glob("*.toml"))
                node.fail(
                    "feeds",
                    stem,
                    f"expected a feed spec {candidate}; available: {', '.join(known) or 'none'}",
                )
            feed_files.append(candidate)

    dbt = top.table("database", required=False) or Table(
        {}, file=file, prefix="database", problems=problems
    )
    url = dbt.string("url", DEFAULT_URL, max_len=2000)
    retain_s = _read_retain_s(dbt)
    dbt.finish()
    url = _resolve_sqlite(url, base, dbt)

    apit = top.table("api", required=False) or Table({}, file=file, prefix="api", problems=problems)
    api = ApiConfig(
        host=apit.string("host", "127.0.0.1", max_len=255),
        port=apit.integer("port", 8080, low=0, high=65535),
        max_body_bytes=apit.integer("max_body_bytes", 64 * 1024, low=1024, high=16 * 1024 * 1024),
        stream_max_clients=apit.integer("stream_max_clients", 32, low=1, high=10_000),
        stream_buffer=apit.integer("stream_buffer", 64, low=1, high=10_000),
        stream_poll_s=apit.number("stream_poll_s", 0.5, low=0.05, high=60.0),
    )
    apit.finish()

    st = top.table("scheduler", required=False) or Table(
        {}, file=file, prefix="scheduler", problems=problems
    )
    scheduler = SchedulerConfig(
        checkpoint_every_s=st.number("checkpoint_every_s", 60.0, low=0.1, high=86_400.0),
        heartbeat_check_every_s=st.number("heartbeat_check_every_s", 5.0, low=0.1, high=3600.0),
        flush_every_s=st.number("flush_every_s", 0.5, low=0.01, high=60.0),
        prune_every_s=st.number("prune_every_s", 60.0, low=1.0, high=86_400.0),
    )
    st.finish()

    lt = top.table("log", required=False) or Table({}, file=file, prefix="log", problems=problems)
    log = LogConfig(
        level=lt.string("level", "info", choices=("debug", "info", "warning", "error")),
        format=lt.string("format", "json", choices=("json", "console")),
    )
    lt.finish()
    nt = top.table("network", required=False)
    network = read_network(nt, base) if nt is not None else None
    mt = top.table("models", required=False)
    models = _read_models(mt, base) if mt is not None else default_models()
    top.finish()
    problems.raise_if_any()
    return NodeConfig(
        name=name,
        file=path,
        feeds_dir=feeds_dir,
        feed_files=tuple(feed_files),
        database=DatabaseConfig(url, retain_s),
        api=api,
        scheduler=scheduler,
        log=log,
        network=network,
        models=models,
    )


def _read_retain_s(t: Table) -> float | None:
    """``[database] retain_s``: absent keeps every row (no deletion a node did not ask for)."""
    value: float | None = t.number("retain_s", None)
    if value is not None and not math.isfinite(value):
        return None  # named already (Table.number)
    if value is not None and not RETAIN_S_MIN <= value <= RETAIN_S_MAX:
        t.fail(
            "retain_s",
            value,
            f"expected the seconds of rows to keep, from {RETAIN_S_MIN:.0f} (a minute) to "
            f"{RETAIN_S_MAX:.0f} (ten years); leave it out to keep every row",
        )
        return None
    return value


def _read_models(t: Table, base: Path) -> ModelsConfig:
    registry = t.string("registry", None, max_len=42)
    if registry is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", str(registry)):
        t.fail("registry", registry, "expected a 0x-prefixed 20-byte hex address")
        registry = None
    classes = t.strings("classes", None, max_items=256)
    if classes is not None:
        known = set(allowlist.ALLOWLIST)
        for name in classes:
            if name not in known:
                t.fail("classes", name, "expected classes of the allowlist (mira model classes)")
    spec_dir_text = t.string("spec_dir", None, max_len=500)
    spec_dir = None
    if spec_dir_text is not None:
        spec_dir = (base / spec_dir_text).resolve()
        if not spec_dir.is_dir():
            t.fail("spec_dir", spec_dir_text, f"expected an existing folder (looked at {spec_dir})")
    config = ModelsConfig(
        registry=None if registry is None else Web3.to_checksum_address(registry),
        max_models=t.integer("max_models", 8, low=0, high=1000),
        classes=None if classes is None else tuple(classes),
        max_spec_bytes=t.integer("max_spec_bytes", 64 * 1024, low=256, high=MAX_SPEC_BYTES),
        spec_dir=spec_dir,
        http=t.boolean("http", True),
        http_timeout_s=t.number("http_timeout_s", 5.0, low=0.1, high=120.0),
        confirmations=t.integer("confirmations", 2, low=0, high=1000),
        poll_s=t.number("poll_s", 1.0, low=0.05, high=3600.0),
        max_block_range=t.integer("max_block_range", 1000, low=1, high=100_000),
        switch_after_s=t.number("switch_after_s", 30.0, low=0.0, high=86_400.0),
        from_block=t.integer("from_block", 0, low=0, high=2**63 - 1),
    )
    t.finish()
    return config


def load_node(path: Path) -> tuple[NodeConfig, list[FeedSpec]]:
    """The node config and every feed it runs, all valid, or a ConfigError listing all
    problems: a node never starts half-configured."""
    config = load_node_config(path)
    return config, load_feed_specs(list(config.feed_files))


def _resolve_sqlite(url: str, base: Path, t: Table) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        t.fail(
            "url",
            url,
            "expected a SQLAlchemy URL, e.g. sqlite:///mira.sqlite or postgresql+psycopg://...",
        )
        return url
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        t.fail("url", url, "expected a sqlite or postgresql URL")
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        db_path = Path(parsed.database)
        if not db_path.is_absolute():
            return parsed.set(database=str(base / db_path)).render_as_string(hide_password=False)
    return url
