"""Engines: a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from oracle.storage.errors import StorageError

DEFAULT_URL = "sqlite:///mira.sqlite"
SQLITE_PAGE_SIZE = 16384  # bytes a page, for a database created from here on (see below)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # 16 KiB pages instead of SQLite's 4 KiB: a commit writes each dirty page to the WAL as
    # a frame of its own (a write() each, and the checkpoint copies them again), and runs
    # (oracle.storage.runs) are rows of up to ~30 KB, most of a 4 KiB page database's
    # pages then being overflow pages. A thousand observations of one feed committed: ~1.1
    # -> ~0.7 ms CPU; a poll of 10,000 feeds' one-entry runs: ~20 -> ~10 ms (raw SQLite).
    # SQLite takes it only while the file holds no table yet: a database created with
    # another page size keeps its own, and works the same.
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    # WAL: readers (the API) never block the writer; NORMAL sync is durable across a
    # process crash (SIGKILL), which is the failure the node must survive.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    # 64 MiB of page cache (SQLite's default is 2 MiB), taken only as pages are read: a
    # node polling 10,000 feeds inserts each poll's rows into every per-feed index at
    # 10,000 places, and with the default cache it reads most of those pages back from
    # the OS every poll (a 10,000-row write after 100 s: ~20 % less CPU, raw SQLite)
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def check_url(url: str, *, schema: str | None = None) -> URL:
    """``url`` parsed, if it names a backend Mira runs on (SQLite, PostgreSQL) and
    ``schema`` fits it; else a StorageError saying what to change."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"invalid database URL {redact(url)!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageError(
            f"unsupported database backend {backend!r} in {redact(url)!r}: use sqlite or postgresql"
        )
    if backend == "sqlite" and schema is not None:
        raise StorageError("a schema can only be chosen on PostgreSQL")
    return parsed


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """Create an engine for ``url`` (checked by :func:`check_url`).

    ``schema`` (PostgreSQL only) puts every table, including Alembic's version table, in
    that schema via the connection's ``search_path``; tests use it for isolation.
    """
    parsed = check_url(url, schema=schema)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"
