"""free_port: the ports the harness hands to the node processes it starts."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator

import pytest

from oracle.devnet import processes
from oracle.devnet.processes import free_port


def _ephemeral_low() -> int:
    return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])


def test_ports_are_distinct_free_and_below_the_kernels_own_range() -> None:
    # a port of the ephemeral range can be taken by any outgoing connection before the
    # child binds it; below the range, only by a bind that names it
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    low = _ephemeral_low()
    assert all(10_000 <= p < low for p in ports), [p for p in ports if not 10_000 <= p < low]
    for p in ports[:20]:
        with socket.create_server(("127.0.0.1", p)):  # nothing listens there: binds
            pass


@contextlib.contextmanager
def _listening_below_range() -> Iterator[int]:
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(10_000, low)
        with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)):
            yield port
            return
    raise AssertionError("no port to listen on")


def test_a_port_someone_listens_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with _listening_below_range() as taken:
        spare = free_port()
        picks = iter([taken, taken, *(p for p in range(spare + 1, spare + 100) if p != taken)])
        monkeypatch.setattr(processes.random, "randrange", lambda *_: next(picks))
        got = free_port()
        assert got not in (taken, spare)
