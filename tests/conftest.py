"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from web3 import Web3

from oracle.chain.anvil import Anvil

# The database fixtures (``backend``, ``engine``, ``empty_engine``: SQLite, and PostgreSQL
# when MIRA_TEST_DATABASE_URL is set) for every test package, declared once.
pytest_plugins = ["tests.fixtures.db"]


@pytest.fixture(scope="session")
def _structlog_at_start() -> dict[str, Any]:
    return structlog.get_config()


@pytest.fixture(autouse=True)
def _structlog_restored(_structlog_at_start: dict[str, Any]) -> Iterator[None]:
    """Each test ends with the logging configuration the suite started with: a CLI run
    through CliRunner (in a test, or in a module's fixture, which runs before this one)
    configures structlog for the whole process (a level filter at warning, say), and a
    later test capturing a node's info lines saw none of them: which tests ran before it
    decided whether it passed."""
    structlog.configure(**_structlog_at_start)
    yield
    structlog.configure(**_structlog_at_start)


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A real anvil from the pinned toolchain on a kernel-chosen port; always stopped."""
    node = Anvil()
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def w3(anvil: Anvil) -> Web3:
    """A web3 client connected to ``anvil``, its default account funded and unlocked."""
    client = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))
    assert client.is_connected()
    client.eth.default_account = client.eth.accounts[0]
    return client
