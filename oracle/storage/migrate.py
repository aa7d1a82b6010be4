"""Apply and check the Alembic migrations shipped inside the package
(``oracle/storage/migrations/``, package data of the wheel).

Alembic is configured in code (no ``alembic.ini`` lookup, no dependence on the current
directory): the migrations are found beside this module, so a checkout, an editable
install and an installed wheel all read the one copy.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from oracle.progress import Progress, no_progress
from oracle.storage.db import redact
from oracle.storage.errors import DatabaseNotMigrated, StorageError

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``."""
    if (_MIGRATIONS / "env.py").is_file() and (_MIGRATIONS / "versions").is_dir():
        return _MIGRATIONS
    raise StorageError(
        f"cannot find the Alembic migrations in {_MIGRATIONS}: the package is installed "
        "without its package data; reinstall it from the wheel or the source tree"
    )


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    if head is None:
        raise StorageError("the migrations folder has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", progress: Progress = no_progress) -> str:
    """Apply migrations up to ``revision``; return the revision the database is now at.

    With a ``progress`` to report to, the pending revisions are applied one at a time (each
    in its own transaction where the database has transactional DDL), so a long migration
    of a big database shows which step it is in; a failure leaves the database at the last
    step that finished, which ``mira db upgrade`` resumes from."""
    cfg = alembic_config(engine)
    if progress is no_progress:
        command.upgrade(cfg, revision)
    else:
        script = ScriptDirectory.from_config(cfg)
        current = current_revision(engine)
        pending = list(reversed(list(script.iterate_revisions(revision, current))))
        for done, step in enumerate(pending):
            progress("applying migrations", done, len(pending))
            command.upgrade(cfg, step.revision)
        progress("applying migrations", len(pending), len(pending))
    current = current_revision(engine)
    if current is None:
        raise StorageError("upgrade finished but the database reports no revision")
    return current


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def require_current(engine: Engine) -> None:
    """Refuse to run on a database that is missing or behind the migrations."""
    head = head_revision()
    current = current_revision(engine)
    if current != head:
        raise DatabaseNotMigrated(
            redact(engine.url.render_as_string(hide_password=False)), current, head
        )
