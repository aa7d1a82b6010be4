"""Errors raised by the storage layer."""

from __future__ import annotations

from oracle.errors import MiraError


class StorageError(MiraError):
    """The database is unreachable, misconfigured or refused an operation."""


class DatabaseNotMigrated(StorageError):
    """The database schema is missing or behind the code's migrations.

    Carries the current and expected revisions and the command that fixes it.
    """

    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.url = url
        self.current = current
        self.head = head
        state = "has no Mira schema" if current is None else f"is at revision {current}"
        super().__init__(
            f"database {url} {state}, but this node needs revision {head}; "
            f"run `mira db upgrade --database-url {url}` (or `mira db upgrade --config node.toml`)"
        )
