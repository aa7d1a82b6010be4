"""Floods against a node's p2p endpoint over real sockets on loopback: a member replaying
PINGs, and unauthenticated bytes from many source addresses. The structures that
remember senders stay bounded and members' messages are still served."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
import coincurve
import pytest

from oracle.p2p.auth import Authenticator
from oracle.p2p.errors import PeerUnavailable
from oracle.p2p.transport import MESSAGE_PATH, Peer, Transport
from oracle.p2p.wire import HEADER_LEN, Envelope, MsgType, seal
from tests.p2p.helpers import EPOCH, authenticator, header, keys, rejected

KEYS = keys(4)


@contextlib.asynccontextmanager
async def _node(auth: Authenticator, key: coincurve.PrivateKey) -> AsyncIterator[Transport]:
    t = Transport(key.secret, auth, host="127.0.0.1", port=0)

    async def observe(_: Envelope) -> bytes | None:
        return None  # any request type with a handler: 204, served

    t.on(MsgType.OBSERVE, observe)
    await t.start()
    try:
        yield t
    finally:
        await t.stop()


async def _served(client: Transport, server: Transport, round_: int, attempt: int = 0) -> bool:
    try:
        await client.send(
            Peer(0, server.url, KEYS[0].public_key.format(compressed=True)),
            header(MsgType.OBSERVE, sender=1, round_=round_, attempt=attempt),
            b"",
            timeout=2.0,
        )
    except PeerUnavailable:
        return False
    return True


async def test_a_member_replaying_pings_keeps_the_replay_window_bounded() -> None:
    """PINGs had a window of 10⁹ rounds and were never pruned: a member could make a node
    remember every (round, attempt) it ever sent."""
    server_auth = authenticator(KEYS, replay_window=16, peer_rate=100_000, peer_burst=100_000)
    client_auth = authenticator(KEYS)
    async with _node(server_auth, KEYS[0]) as server, _node(client_auth, KEYS[1]) as client:
        peer = Peer(0, server.url, KEYS[0].public_key.format(compressed=True))

        async def ping(round_: int, attempt: int) -> None:
            with contextlib.suppress(PeerUnavailable):  # no PING handler: 400 after auth
                await client.send(
                    peer,
                    header(MsgType.PING, sender=1, round_=round_, attempt=attempt),
                    b"",
                    timeout=2.0,
                )

        sizes = []
        # rising rounds (nothing older than the window may be kept), then every attempt of
        # a few rounds inside the window (more than any honest member sends)
        floods = [[(r, 0) for r in range(k * 300, (k + 1) * 300)] for k in range(2)]
        rounds = server_auth.replay.max_seen // 256 + 2  # past the bound, inside the window
        assert rounds <= 16
        floods.append([(700 + r, a) for r in range(rounds) for a in range(256)])
        for flood in floods:
            for i in range(0, len(flood), 32):
                await asyncio.gather(*(ping(r, a) for r, a in flood[i : i + 32]))
            sizes.append(len(server_auth.replay))
        bound = server_auth.replay.max_seen
        assert all(size <= bound for size in sizes), sizes
        assert rejected(server_auth, "replay_window_full") > 0
        # the member's other traffic is still served
        assert await _served(client, server, round_=10_000)


def garbage(rng: bytes, epoch: int = EPOCH) -> bytes:
    """Bytes that pass every header check (member 0 of a served epoch) but carry a random
    signature: each costs the receiver a signature recovery."""
    msg = bytearray(seal(header(MsgType.OBSERVE, sender=0, epoch=epoch), b"x" * 8, KEYS[0]))
    msg[HEADER_LEN + 8 : HEADER_LEN + 8 + 32] = rng[:32]  # r
    msg[HEADER_LEN + 8 + 32 : HEADER_LEN + 8 + 64] = b"\x01" + rng[33:64]  # low s
    return bytes(msg)


async def test_unauthenticated_bytes_from_many_sources_do_not_starve_members() -> None:
    """40 loopback addresses send malformed bytes and messages with valid headers but
    random signatures. Before, every one spent the node-wide bucket in front of the
    signature check, so members were refused once it ran dry."""
    server_auth = authenticator(KEYS, global_rate=50, source_rate=5, source_burst=10, max_sources=8)
    async with _node(server_auth, KEYS[0]) as server, _node(authenticator(KEYS), KEYS[1]) as client:
        assert await _served(client, server, round_=1)  # a member, from 127.0.0.1

        async def flood(source: str) -> None:
            connector = aiohttp.TCPConnector(local_addr=(source, 0))
            async with aiohttp.ClientSession(connector=connector) as session:
                for i in range(30):
                    body = garbage(os.urandom(64)) if i % 2 else os.urandom(150)
                    async with session.post(server.url + MESSAGE_PATH, data=body) as resp:
                        assert resp.status == 400

        sources = [f"127.0.0.{i}" for i in range(2, 42)]
        await asyncio.gather(*(flood(s) for s in sources[:20]))
        size_after_half = len(server_auth.sources)
        await asyncio.gather(*(flood(s) for s in sources[20:]))
        # the member is still served, round after round
        for r in range(2, 12):
            assert await _served(client, server, round_=r)
        # the source tables stay within their bound, and the flood was refused by source
        assert size_after_half <= 2 * 8
        assert len(server_auth.sources) <= 2 * 8
        assert rejected(server_auth, "source_rate_limited") > 0


@pytest.mark.parametrize("remote", ["2001:db8::1", "2001:db8::ffff:1"])
def test_an_ipv6_host_is_one_source_per_64(remote: str) -> None:
    from oracle.p2p.auth import source_key

    assert source_key(remote) == "2001:db8::/64"
    assert source_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_key("10.0.0.1") == "10.0.0.1"
