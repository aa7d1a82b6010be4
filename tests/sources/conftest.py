from tests.fixtures.db import backend, empty_engine, engine

__all__ = ["backend", "empty_engine", "engine"]
