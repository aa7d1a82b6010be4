"""``GET /v1/pull`` and ``GET /v1/pull/stream`` (oracle.api.pull) over a real socket, on
roots signed by a FROST committee: payloads decode to the asked values and their
multiproof leads to the signed root; bad queries get 4xx JSON; the stream is bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry

from oracle.api.pull import MAX_PULL_FEEDS, PullApi
from oracle.api.server import ApiService, NodeView
from oracle.config.node import ApiConfig
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.suites import MIRA_EVM
from oracle.reporting import pull
from oracle.reporting.pull_store import PullRoots, SignedRoot
from oracle.reporting.report import FeedUpdate
from oracle.service import Health
from tests.harness.dealer import trusted_dealer_keygen_for_tests

CHAIN_ID = 31337
VERIFIER = bytes.fromhex("e7f1725e7734ce288f8367e1bb143e90bb3f0512")
NAMES = {f"F{i}/USD": keccak(f"F{i}/USD".encode()) for i in range(20)}
PUBLIC, KEYS = trusted_dealer_keygen_for_tests(MIRA_EVM, 3, 4)
SIGNERS = list(make_signers(MIRA_EVM, PUBLIC, KEYS).values())[:3]


def signed_root(round_: int, base: int, names: list[str] | None = None) -> SignedRoot:
    updates = [
        FeedUpdate(NAMES[n], base + i, 1_700_000_000, keccak(NAMES[n]))
        for i, n in enumerate(names or list(NAMES))
    ]
    tree = pull.PullTree.build(round_, updates)
    message = pull.digest(CHAIN_ID, VERIFIER, 1, round_, tree.root, tree.leaf_count)
    encoded = run_signing(MIRA_EVM, PUBLIC, message, SIGNERS).encoded
    px, parity, _, commitment, z = MIRA_EVM.evm_arguments(PUBLIC.group_key, message, encoded)
    sig = pull.PullSignature(px=px, parity=parity, commitment=commitment, z=z)
    return SignedRoot(CHAIN_ID, VERIFIER, 1, tree, sig)


@asynccontextmanager
async def _api(roots: PullRoots, **kw: float) -> AsyncIterator[tuple[str, PullApi]]:
    api = PullApi(roots, NAMES.get, **kw)  # type: ignore[arg-type]
    view = NodeView("n", lambda: Health(True), {}, CollectorRegistry(), pull=api)
    service = ApiService(ApiConfig(host="127.0.0.1", port=0, max_body_bytes=65536), view)
    await service.start()
    try:
        yield f"http://127.0.0.1:{service.port}", api
    finally:
        await service.stop()


async def _get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, await resp.json()


async def test_payload_proves_the_asked_feeds_under_the_signed_root() -> None:
    roots = PullRoots(retention=4)
    roots.add(signed_root(1_000, 100))
    roots.add(signed_root(2_000, 200))
    async with _api(roots) as (base, _):
        status, body = await _get(f"{base}/v1/pull?feeds=F3/USD,0x{NAMES['F7/USD'].hex()}")
        assert status == 200
        assert body["round"] == 2_000 and body["leaf_count"] == 20
        assert [v["value"] for v in body["values"]] == ["203", "207"]
        payload = pull.decode_payload(bytes.fromhex(body["payload"][2:]))
        assert payload.round == 2_000 and payload.verifier == VERIFIER
        assert {u.feed_id for u in payload.proof.updates} == {NAMES["F3/USD"], NAMES["F7/USD"]}
        leaves = [pull.leaf_hash(u, payload.round) for u in payload.proof.updates]
        root = pull.process_multiproof(leaves, payload.proof.proof, payload.proof.flags)
        assert root == payload.root and "0x" + root.hex() == body["root"]
        message = pull.digest(CHAIN_ID, VERIFIER, 1, 2_000, root, 20)
        sig = payload.signature
        assert MIRA_EVM.verify(
            PUBLIC.group_key, message, sig.commitment + sig.z.to_bytes(32, "big")
        )
        # an older kept round, by number
        status, body = await _get(f"{base}/v1/pull?feeds=F3/USD&round=1000")
        assert status == 200 and body["values"][0]["value"] == "103"


async def test_bad_queries_get_json_errors() -> None:
    roots = PullRoots(retention=2)
    async with _api(roots) as (base, _):
        status, body = await _get(f"{base}/v1/pull?feeds=F1/USD")
        assert status == 503 and "no signed root" in body["error"]["message"]
        roots.add(signed_root(1_000, 100, ["F1/USD", "F2/USD"]))
        cases = {
            "": 400,  # no feeds
            "?feeds=": 400,  # an empty name
            "?feeds=F1/USD,,F2/USD": 400,
            "?feeds=F1/USD,F1/USD": 400,  # twice
            "?feeds=F1/USD&feeds=F2/USD": 400,  # the parameter twice
            "?feeds=NOPE/USD": 404,
            "?feeds=0x" + "ab" * 32: 503,  # a well-formed id no kept root carries
            "?feeds=F1/USD&round=abc": 400,
            "?feeds=F1/USD&round=%C2%B2": 400,  # a digit to str.isdigit, not to int()
            "?feeds=F1/USD&round=5": 404,
            "?feeds=F9/USD&round=1000": 404,  # the round does not carry it
            "?feeds=" + ",".join(["F1/USD"] * (MAX_PULL_FEEDS + 1)): 400,
        }
        for query, expected in cases.items():
            status, body = await _get(f"{base}/v1/pull{query}")
            assert (status, body["error"]["status"]) == (expected, expected), query


async def test_retention_keeps_the_newest_roots_only() -> None:
    roots = PullRoots(retention=3)
    for r in range(1, 7):
        roots.add(signed_root(r * 1000, r))
    assert len(roots) == 3 and roots.get(3000) is None and roots.get(6000) is not None
    assert not roots.add(signed_root(1000, 1))  # older than everything kept, when full
    assert not roots.add(signed_root(6000, 9))  # one root per round


async def test_the_stream_sends_each_new_root_and_drops_a_lagging_client() -> None:
    roots = PullRoots(retention=8)
    async with (
        _api(roots, buffer=2, max_clients=1) as (base, _),
        aiohttp.ClientSession() as s,
        s.get(f"{base}/v1/pull/stream") as resp,
    ):
        assert resp.status == 200
        await resp.content.readline()  # the opening comment
        await resp.content.readline()
        status, _ = await _get(f"{base}/v1/pull/stream")  # one client at most
        assert status == 503
        root = signed_root(1_000, 5)
        roots.add(root)
        lines = [await asyncio.wait_for(resp.content.readline(), 5) for _ in range(3)]
        assert lines[0] == b"id: 1000\n" and lines[1] == b"event: root\n"
        event = json.loads(lines[2].removeprefix(b"data: "))
        assert event["root"] == "0x" + root.tree.root.hex() and event["leaf_count"] == 20
        # a client that reads nothing while many roots come is told and closed
        for r in range(2, 8):
            roots.add(signed_root(r * 1000, r))
        rest = await asyncio.wait_for(resp.content.read(), 5)
        assert b"event: lagged" in rest


async def test_a_node_without_pull_answers_404() -> None:
    view = NodeView("n", lambda: Health(True), {}, CollectorRegistry())
    service = ApiService(ApiConfig(host="127.0.0.1", port=0, max_body_bytes=65536), view)
    await service.start()
    try:
        status, body = await _get(f"http://127.0.0.1:{service.port}/v1/pull?feeds=x")
        assert status == 404 and "pull" in body["error"]["message"]
    finally:
        await service.stop()
