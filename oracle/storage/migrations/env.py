"""Alembic environment. Configured in code by ``oracle.storage.migrate``; the engine is
passed in ``config.attributes["engine"]`` (or built from ``sqlalchemy.url``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from alembic import context
from sqlalchemy import Connection

from oracle.storage.db import make_engine
from oracle.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        assert url, "sqlalchemy.url is not set"
        engine = make_engine(url)
    with engine.connect() as connection, _transactional_ddl(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


@contextlib.contextmanager
def _transactional_ddl(connection: Connection) -> Iterator[None]:
    """Run what follows in one database transaction on SQLite too.

    SQLite's DDL is transactional, but Python's sqlite3 driver (its legacy transaction
    control, the default before Python 3.12) opens a transaction only before an INSERT,
    UPDATE, DELETE or REPLACE: each CREATE, DROP or ALTER of a migration ran outside one
    and stayed, so a ``mira db upgrade`` killed midway left a half-applied schema at the
    old revision, which the next upgrade tripped over. Here the driver's own handling is
    off (``isolation_level = None``) and the transaction is opened with an explicit BEGIN:
    everything up to the commit (the DDL, the rows moved, the revision stamped) stays
    or goes together. The driver's commit and rollback act on whatever transaction is
    open, so SQLAlchemy's ``commit()`` ends it. The connection is put back as it was
    before it returns to the node's pool. PostgreSQL's DDL already runs in the
    transaction."""
    if connection.dialect.name != "sqlite":
        yield
        return
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    saved = dbapi.isolation_level  # type: ignore[attr-defined]
    connection.rollback()  # nothing open: the BEGIN below opens the one transaction
    dbapi.isolation_level = None  # type: ignore[attr-defined]
    try:
        connection.exec_driver_sql("BEGIN")
        yield
    finally:
        if dbapi.in_transaction:  # type: ignore[attr-defined]
            dbapi.rollback()  # a failure before the commit: nothing of it stays
        dbapi.isolation_level = saved  # type: ignore[attr-defined]


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
