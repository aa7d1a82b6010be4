from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.storage import make_engine, upgrade
from tests.transmission.helpers import Chain, start_chain


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (chain tests that are not about storage use this)."""
    e = make_engine(f"sqlite:///{tmp_path / 'tx.sqlite'}")
    upgrade(e)
    yield e
    e.dispose()


@pytest.fixture
def chain() -> Iterator[Chain]:
    """Anvil with automine, the probe contract deployed by account 0."""
    with Anvil() as node:
        yield start_chain(node)


@pytest.fixture
def manual_chain() -> Iterator[Chain]:
    """Anvil that mines only on evm_mine: transactions wait in the mempool."""
    with Anvil(AnvilConfig(extra_args=["--no-mining"])) as node:
        yield start_chain(node)
