"""``mira db``: apply and inspect the database migrations."""

from __future__ import annotations

import os
from pathlib import Path

import click

from oracle.cli.options import emit, json_option
from oracle.progress import stderr_progress
from oracle.storage import DEFAULT_URL, current_revision, head_revision, make_engine, upgrade
from oracle.storage.db import check_url, redact
from oracle.storage.errors import StorageError

_URL_ENV = "MIRA_DATABASE_URL"


def resolve_url(database_url: str | None, config: Path | None, schema: str | None = None) -> str:
    """--database-url, else the node config's ``[database] url``, else MIRA_DATABASE_URL,
    else the default SQLite file; a URL Mira cannot use (or a --schema it cannot take) is a
    usage error naming where the URL came from."""
    if database_url:
        url, origin = database_url, "--database-url"
    elif config is not None:
        from oracle.config import load_node_config

        url, origin = load_node_config(config).database.url, f"[database] url in {config}"
    else:
        url, origin = os.environ.get(_URL_ENV) or DEFAULT_URL, f"${_URL_ENV} or the default"
    try:
        check_url(url, schema=schema)
    except StorageError as exc:
        raise click.UsageError(f"{origin}: {exc}") from exc
    return url


_url_option = click.option(
    "--database-url", help=f"SQLAlchemy URL (default: ${_URL_ENV} or {DEFAULT_URL})."
)
_config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Take the URL from this node config.",
)
_schema_option = click.option("--schema", default=None, help="PostgreSQL schema (search_path).")


@click.group()
def db() -> None:
    """Apply and inspect database migrations."""


@db.command("upgrade")
@_url_option
@_config_option
@_schema_option
@json_option
def upgrade_cmd(
    database_url: str | None, config: Path | None, schema: str | None, as_json: bool
) -> None:
    """Apply every pending migration."""
    url = resolve_url(database_url, config, schema)
    engine = make_engine(url, schema=schema)
    try:
        with stderr_progress("mira db upgrade") as progress:
            revision = upgrade(engine, progress=progress)
    finally:
        engine.dispose()
    emit(
        {"database": redact(url), "revision": revision, "head": revision},
        as_json,
        [f"{redact(url)} is at revision {revision} (head)"],
    )


@db.command("current")
@_url_option
@_config_option
@_schema_option
@json_option
def current_cmd(
    database_url: str | None, config: Path | None, schema: str | None, as_json: bool
) -> None:
    """Show the database's revision and the code's head revision."""
    url = resolve_url(database_url, config, schema)
    engine = make_engine(url, schema=schema)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    emit(
        {"database": redact(url), "revision": current, "head": head},
        as_json,
        [f"current: {current or '(none)'}  head: {head}"],
    )
