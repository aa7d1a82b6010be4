"""listen_socket: the p2p port a node takes at start (oracle.p2p.transport)."""

from __future__ import annotations

import socket

import pytest

from oracle.p2p.transport import ListenError, listen_socket


def _ipv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


def test_an_ipv4_address_and_a_name_bind() -> None:
    for host in ("127.0.0.1", "localhost"):
        with listen_socket(host, 0) as s:
            assert s.getsockname()[1] > 0


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback here")
def test_an_ipv6_address_binds_in_its_own_family() -> None:
    with listen_socket("::1", 0) as s:
        assert s.family == socket.AF_INET6


def test_a_port_in_use_is_named_with_the_config_keys() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as caught:
            listen_socket("127.0.0.1", port)
    assert str(caught.value) == (
        f"cannot listen for p2p on 127.0.0.1:{port} ([network] listen_host, listen_port): "
        "Address already in use"
    )


def test_a_name_that_does_not_resolve_is_named() -> None:
    with pytest.raises(ListenError, match=r"cannot listen for p2p on no-such-host\.invalid:7701"):
        listen_socket("no-such-host.invalid", 7701)
