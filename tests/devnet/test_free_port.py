"""free_port and free_block: the ports the harness hands to the processes it starts."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle.devnet import processes
from oracle.devnet.processes import free_block, free_port, port_free


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


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


def test_blocks_are_consecutive_free_and_never_overlap() -> None:
    bases = [free_block(16) for _ in range(50)]
    taken = [p for b in bases for p in range(b, b + 16)]
    assert len(set(taken)) == len(taken)  # no port in two blocks
    assert max(taken) < _ephemeral_low()
    assert all(port_free(p) for p in range(bases[0], bases[0] + 16))


@contextlib.contextmanager
def _listening_below_range() -> Iterator[int]:
    """A port below the ephemeral range someone listens on, its neighbours free."""
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(10_010, low - 200)
        if all(port_free(p) for p in range(port - 5, port + 20)):
            with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)):
                yield port
                return
    raise AssertionError("no port to listen on")


def test_a_port_someone_listens_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing handed out before in this process (other tests of this worker): the picks
    # below are refused for the listener alone, not for a port an earlier test was given
    monkeypatch.setattr(processes, "_handed_out", set())
    with _listening_below_range() as taken:
        assert not port_free(taken)
        # the search lands on the taken port, then on a block holding it, then past it
        picks = iter([taken, taken - 1, taken + 1, taken, taken + 10])
        monkeypatch.setattr(processes.random, "randrange", lambda *_: next(picks))
        assert free_block(2) == taken + 1
        assert free_port() == taken + 10
