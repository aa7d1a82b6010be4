"""The stream of landed reports (issue 16 item 5), against a real MiraOracle on anvil.

Reports are transmitted on-chain; the node's follower reads them back from the chain and
streams them; clients verify each against the epoch's on-chain group key. A node that
streams a forged or tampered report is refused; slow and surplus clients cost bounded
memory.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from eth_utils.crypto import keccak
from prometheus_client import CollectorRegistry
from web3 import Web3
from web3.contract import Contract

from oracle.api.server import ApiService, NodeView
from oracle.api.stream import ReportStream
from oracle.api.stream_client import (
    ReportStreamClient,
    ReportVerifier,
    StreamError,
    UntrustedReport,
)
from oracle.bench.gas import Committee, start_committee
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.rpc import async_web3
from oracle.config.node import ApiConfig
from oracle.node.landed import LandedReportService
from oracle.reporting.landed import LandedReport, to_json
from oracle.reporting.report import FeedUpdate, Report, digest, encode
from oracle.service import Health

pytestmark = pytest.mark.anvil

FEED_A = keccak(b"A/USD")
FEED_B = keccak(b"B/USD")
NAMES = {"A/USD": FEED_A, "B/USD": FEED_B}


def _transmit(
    w3: Web3, oracle: Contract, committee: Committee, round_: int, values: dict[bytes, int]
) -> bytes:
    """Sign and transmit a report of ``values`` (feed id → value) a block-second after the
    last one (each feed's updates must be newer); its transaction hash."""
    w3.provider.make_request("evm_increaseTime", [1])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    now = int(w3.eth.get_block("latest")["timestamp"])
    updates = tuple(FeedUpdate(f, v, now, keccak(f)) for f, v in values.items())
    report = encode(Report(committee.epoch, round_, updates))
    sig = committee.sign(digest(w3.eth.chain_id, oracle.address, committee.epoch, report))
    tx = oracle.functions.transmit(report, sig).transact()
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return bytes(tx)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def _collect(client: ReportStreamClient, out: list[Any], count: int) -> None:
    async for landed in client.reports():
        out.append(landed)
        if len(out) == count:
            return


@asynccontextmanager
async def _node_api(anvil: Anvil, oracle: str, **stream_args: Any) -> AsyncIterator[Any]:
    stream = ReportStream(CollectorRegistry(), NAMES.get, **stream_args)
    follower = LandedReportService(anvil.url, oracle, stream, poll_s=0.05, rpc_timeout_s=5)
    view = NodeView("t", lambda: Health(True), {}, CollectorRegistry(), reports=stream)
    api = ApiService(ApiConfig("127.0.0.1", 0, 64 * 1024), view)
    await follower.start()
    await api.start()
    try:
        await _until(lambda: follower.scanner.next_block is not None, "the follower's start")
        yield stream, f"http://127.0.0.1:{api.port}", follower
    finally:
        await api.stop()
        await follower.stop()


@pytest.fixture
def chain(anvil: Anvil, w3: Web3) -> tuple[Contract, Committee]:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    for name, fid in NAMES.items():
        w3.eth.wait_for_transaction_receipt(oracle.functions.registerFeed(fid, 8, name).transact())
    return oracle, start_committee(w3, oracle, 4)


async def test_clients_receive_every_landed_report_of_their_feeds_verified(
    anvil: Anvil, w3: Web3, chain: tuple[Contract, Committee]
) -> None:
    oracle, committee = chain
    async with _node_api(anvil, oracle.address, max_clients=2) as (stream, url, _):
        only_a = ReportStreamClient(url, anvil.url, oracle.address, feeds=["A/USD"])
        every = ReportStreamClient(url, anvil.url, oracle.address)
        got_a: list[LandedReport] = []
        got_all: list[LandedReport] = []
        tasks = [
            asyncio.create_task(_collect(only_a, got_a, 2)),
            asyncio.create_task(_collect(every, got_all, 3)),
        ]
        await _until(lambda: stream.clients == 2, "both clients")
        # a third client is one too many
        async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/reports/stream") as r:
            assert r.status == 503
            assert "at most 2 clients" in (await r.json())["error"]["message"]
        hashes = [
            _transmit(w3, oracle, committee, 1, {FEED_A: 100, FEED_B: -7}),
            _transmit(w3, oracle, committee, 2, {FEED_B: 8}),
            _transmit(w3, oracle, committee, 3, {FEED_A: 2**127 - 1}),
        ]
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert [r.round for r in got_all] == [1, 2, 3]
    assert [r.tx_hash for r in got_all] == hashes
    assert [r.round for r in got_a] == [1, 3]  # round 2 carried no A/USD update
    assert [(u.feed_id, u.value) for u in got_all[0].decoded.updates] == [
        (FEED_A, 100),
        (FEED_B, -7),
    ]
    assert got_a[1].decoded.updates[0].value == 2**127 - 1
    assert all(r.epoch == committee.epoch and not r.skipped for r in got_all)
    # what the chain holds is what was streamed
    assert int(oracle.functions.latestRound(FEED_A).call()[1]) == 2**127 - 1


async def test_a_client_closes_its_chain_connections_when_its_stream_ends(
    anvil: Anvil, w3: Web3, chain: tuple[Contract, Committee]
) -> None:
    """The stream client verifies each report on-chain through its own RPC client; when
    the stream ends (here: the consumer stops after one report) those connections close."""
    oracle, committee = chain
    async with _node_api(anvil, oracle.address) as (stream, url, _):
        client = ReportStreamClient(url, anvil.url, oracle.address)
        sessions = client.verifier.w3.provider._request_session_manager
        reports = client.reports()
        first = asyncio.ensure_future(anext(reports))
        await _until(lambda: stream.clients == 1, "the client")
        _transmit(w3, oracle, committee, 1, {FEED_A: 5})
        landed = await asyncio.wait_for(first, 20)
        assert landed.round == 1 and sessions._session is not None  # verified on-chain
        await reports.aclose()
        assert sessions._session is None


async def test_bad_filters_are_refused_with_what_to_change(
    anvil: Anvil, chain: tuple[Contract, Committee]
) -> None:
    oracle, _ = chain
    async with (
        _node_api(anvil, oracle.address) as (_, url, _follower),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{url}/v1/reports/stream?feed=NOPE/USD") as r:
            assert r.status == 400
            message = (await r.json())["error"]["message"]
            assert "unknown feed 'NOPE/USD'" in message and "0x-prefixed" in message
        many = "&".join(f"feed=0x{i:064x}" for i in range(65))
        async with http.get(f"{url}/v1/reports/stream?{many}") as r:
            assert r.status == 400
            assert "at most 64" in (await r.json())["error"]["message"]


async def test_a_slow_client_is_dropped_and_the_api_stops_with_streams_open(
    anvil: Anvil, w3: Web3, chain: tuple[Contract, Committee]
) -> None:
    """Events published faster than a client reads fill its bounded queue: it gets
    ``lagged`` and is disconnected, nothing more is buffered for it. Stopping the API
    ends open streams at once (no shutdown timeout)."""
    oracle, committee = chain
    async with _node_api(anvil, oracle.address, buffer=2) as (stream, url, _follower):
        slow = ReportStreamClient(url, anvil.url, oracle.address)
        got: list[LandedReport] = []
        task = asyncio.create_task(_collect(slow, got, 10))
        await _until(lambda: stream.clients == 1, "the client")
        _transmit(w3, oracle, committee, 1, {FEED_A: 1})
        await _until(lambda: len(got) == 1, "the first report")
        for _ in range(5):  # no await between: the client cannot read in between
            stream.publish(got[0])
        with pytest.raises(StreamError, match="dropped this slow client"):
            await asyncio.wait_for(task, 10)
        assert stream.clients == 0
        # a fresh client, then stop with it connected
        task = asyncio.create_task(_collect(slow, [], 10))
        await _until(lambda: stream.clients == 1, "the second client")
    await asyncio.wait_for(task, 5)  # the stream ended: the client's iteration returns


# -- a lying node ---------------------------------------------------------------------------


@asynccontextmanager
async def _lying_node(payloads: list[Any]) -> AsyncIterator[str]:
    """A 'node' that streams the given payloads as report events."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for p in payloads:
            await resp.write(f"event: report\ndata: {json.dumps(p)}\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_get("/v1/reports/stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _tamper_value(payload: dict[str, Any]) -> None:
    """Change the first update's value in the report bytes *and* in the claimed updates, so
    the payload is self-consistent and only the signature can catch it."""
    report = bytearray(bytes.fromhex(payload["report"][2:]))
    report[16 + 47] ^= 1  # the last byte of the first update's int128 value
    payload["report"] = "0x" + report.hex()
    payload["updates"][0]["value"] = str(int(payload["updates"][0]["value"]) ^ 1)


async def test_forged_and_tampered_reports_are_refused(
    anvil: Anvil, w3: Web3, chain: tuple[Contract, Committee]
) -> None:
    oracle, committee = chain
    async with _node_api(anvil, oracle.address) as (stream, url, _):
        honest = ReportStreamClient(url, anvil.url, oracle.address)
        got: list[LandedReport] = []
        task = asyncio.create_task(_collect(honest, got, 1))
        await _until(lambda: stream.clients == 1, "the client")
        _transmit(w3, oracle, committee, 1, {FEED_A: 500, FEED_B: 600})
        await asyncio.wait_for(task, 20)
    genuine = to_json(got[0])
    reader = async_web3(anvil.url, timeout_s=10, retries=True)
    verifier = ReportVerifier(reader, oracle.address)
    assert (await verifier.verify(copy.deepcopy(genuine))).decoded == got[0].decoded

    # a second committee the oracle never registered signs a report of its own
    other_oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    outsider = start_committee(w3, other_oracle, 4)
    forged_report = encode(
        Report(committee.epoch, 9, (FeedUpdate(FEED_A, 1, 1_700_000_000, keccak(FEED_A)),))
    )
    forged_sig = outsider.sign(
        digest(w3.eth.chain_id, oracle.address, committee.epoch, forged_report)
    )
    forged = copy.deepcopy(genuine) | {
        "round": 9,
        "report": "0x" + forged_report.hex(),
        "signature": {
            "px": hex(forged_sig.px),
            "z": hex(forged_sig.z),
            "commitment": forged_sig.commitment,
            "parity": forged_sig.parity,
        },
        "updates": [
            {
                "feed_id": "0x" + FEED_A.hex(),
                "value": "1",
                "observed_at": 1_700_000_000,
                "model_commitment": "0x" + keccak(FEED_A).hex(),
                "applied": True,
            }
        ],
    }
    tampered = copy.deepcopy(genuine)
    _tamper_value(tampered)
    misdescribed = copy.deepcopy(genuine)  # the bytes are genuine, the description lies
    misdescribed["updates"][1]["value"] = "601"
    wrong_epoch = copy.deepcopy(genuine)
    wrong_epoch["epoch"] = committee.epoch + 1
    # a signature over the genuine report, but presented under a key-less future epoch
    future = copy.deepcopy(genuine)
    future_report = bytearray(bytes.fromhex(genuine["report"][2:]))
    future_report[0:8] = (committee.epoch + 5).to_bytes(8, "big")
    future["report"], future["epoch"] = "0x" + future_report.hex(), committee.epoch + 5

    cases: dict[str, tuple[dict[str, Any], str]] = {
        "forged": (forged, "signed for another key"),
        "tampered": (tampered, "does not verify"),
        "misdescribed": (misdescribed, r"updates\[1\]: differs"),
        "wrong epoch": (wrong_epoch, "epoch: differs"),
        "unknown epoch": (future, "unknown to the oracle"),
    }
    # a genuine report under the wrong transaction, block or applied flags: read back
    # from the chain, the node's account of where and how it landed is refused too
    other_tx = _transmit(w3, oracle, committee, 2, {FEED_A: 501})
    for name, change, reason in (
        ("other tx", {"tx_hash": "0x" + other_tx.hex()}, "landed another report"),
        ("no tx", {"tx_hash": "0x" + "ab" * 32}, "is not on the chain"),
        ("block", {"block_number": genuine["block_number"] + 1}, "is in block"),
        ("a failed transmit", {"tx_hash": _failed_transmit(w3, oracle)}, "landed no report"),
    ):
        cases[name] = (copy.deepcopy(genuine) | change, reason)
    flipped = copy.deepcopy(genuine)
    flipped["updates"][0]["applied"] = False
    cases["applied flags"] = (flipped, "applied flags differ")
    for name, (payload, reason) in cases.items():
        with pytest.raises(UntrustedReport, match=reason):
            await verifier.verify(payload)
        # and over a stream: the client yields nothing from a lying node
        async with _lying_node([payload, genuine]) as liar:
            client = ReportStreamClient(liar, anvil.url, oracle.address)
            seen: list[LandedReport] = []
            with pytest.raises(UntrustedReport, match=reason):
                await asyncio.wait_for(_collect(client, seen, 2), 10)
            assert seen == [], name
    # a genuine report streamed twice: the second is a replay
    async with _lying_node([genuine, genuine]) as liar:
        client = ReportStreamClient(liar, anvil.url, oracle.address)
        seen = []
        with pytest.raises(UntrustedReport, match="streamed before"):
            await asyncio.wait_for(_collect(client, seen, 2), 10)
        assert [r.round for r in seen] == [1]
    # the forgery also keeps the outsider's signature from passing as the real key's
    with_real_key = copy.deepcopy(forged)
    key_x, key_parity = oracle.functions.groupKey(committee.epoch).call()
    with_real_key["signature"] |= {"px": hex(key_x), "parity": key_parity}
    with pytest.raises(UntrustedReport, match="does not verify"):
        await verifier.verify(with_real_key)


async def test_mira_feed_watch_prints_verified_reports_and_refuses_a_liar(
    anvil: Anvil, w3: Web3, chain: tuple[Contract, Committee]
) -> None:
    from click.testing import CliRunner

    from oracle.cli.main import cli

    oracle, committee = chain
    target = ["--rpc-url", anvil.url, "--oracle", oracle.address]
    async with _node_api(anvil, oracle.address) as (stream, url, _):
        args = ["feed", "watch", "--node", url, *target, "--feed", "B/USD", "--count", "1"]
        run = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"]))
        await _until(lambda: stream.clients == 1, "the watcher")
        _transmit(w3, oracle, committee, 1, {FEED_A: 5})  # not B/USD: not printed
        tx = _transmit(w3, oracle, committee, 2, {FEED_A: 6, FEED_B: 7})
        result = await asyncio.wait_for(run, 20)
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert (row["round"], row["tx_hash"]) == (2, "0x" + tx.hex())
    assert [(u["feed_id"], u["value"]) for u in row["updates"]] == [
        ("0x" + FEED_A.hex(), "6"),
        ("0x" + FEED_B.hex(), "7"),
    ]
    genuine = _payload_of(w3, oracle, tx)
    _tamper_value(genuine)
    async with _lying_node([genuine]) as liar:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["feed", "watch", "--node", liar, *target]
        )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: untrusted report: the signature of epoch")
    assert len(result.output.strip().splitlines()) == 1


def _payload_of(w3: Web3, oracle: Contract, tx_hash: bytes) -> dict[str, Any]:
    """The stream payload of the report transmitted in ``tx_hash``, read from the chain."""
    from oracle.reporting.landed import transmit_arguments
    from oracle.reporting.report import decode

    report, sig = transmit_arguments(bytes(w3.eth.get_transaction(tx_hash)["input"]))
    block = int(w3.eth.get_transaction_receipt(tx_hash)["blockNumber"])
    return to_json(LandedReport(report, sig, decode(report), tx_hash, block))


def _failed_transmit(w3: Web3, oracle: Contract) -> str:
    """The hash of a mined transmit transaction that reverted (sent with a fixed gas limit,
    so nothing estimates it first)."""
    data = oracle.encode_abi("transmit", args=[b"\x00" * 20, (1, 1, w3.eth.accounts[0], 0)])
    tx = w3.eth.send_transaction({"to": oracle.address, "data": data, "gas": 200_000})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    return "0x" + bytes(tx).hex()
